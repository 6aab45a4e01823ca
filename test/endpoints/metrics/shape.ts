import { scanMetrics, type MetricType } from '../../../src/endpoints/metrics/prometheus-text.js';

/** The shape of one metric family: what a scraper depends on besides the values. */
export interface FamilyShape {
  /** The declared `# TYPE`; undefined when the page declares none. */
  readonly type: MetricType | undefined;
  /** Every label key on any of the family's samples (including `le` on histogram buckets). */
  readonly labelKeys: ReadonlySet<string>;
}

/**
 * Family name → shape, for comparing a page (e.g. the simulator's) with the published fixtures.
 * Histogram `_bucket`/`_sum`/`_count` lines fold into their declared family. Families declared
 * by `# TYPE` without samples are included. Throws when the page has malformed lines, because a
 * shape comparison of a broken page means nothing.
 */
export function familiesOf(text: string): Map<string, FamilyShape> {
  const scan = scanMetrics(text, 'all');
  if (scan.malformedLines > 0) {
    throw new Error(`${scan.malformedLines} malformed line(s), first at line ${scan.firstMalformedLine}`);
  }
  const out = new Map<string, FamilyShape>();
  for (const [name, type] of scan.types) out.set(name, { type, labelKeys: new Set() });
  for (const [name, samples] of scan.families) {
    const labelKeys = new Set<string>();
    for (const s of samples) for (const key of Object.keys(s.labels)) labelKeys.add(key);
    out.set(name, { type: scan.types.get(name), labelKeys });
  }
  return out;
}
