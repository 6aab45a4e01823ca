import type { BenchSummary } from './summary.js';
import type { Distribution } from './stats.js';

/*
 * The summary as a terminal table: what `infergate bench` prints when a run ends.
 */

function ms(v: number | undefined): string {
  if (v === undefined) return '–';
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(1)} ms`;
}

function row(label: string, d: Distribution | undefined): string {
  const cells = d === undefined ? ['–', '–', '–', '–', '–'] : [ms(d.p50), ms(d.p90), ms(d.p99), ms(d.mean), String(d.count)];
  return `  ${label.padEnd(6)}${cells.map((c) => c.padStart(11)).join('')}`;
}

/** A multi-line plain-text summary (ends with a newline). */
export function formatSummaryText(name: string, s: BenchSummary): string {
  const lines = [
    `${name}: ${s.requests} requests, ${s.ok} ok, ${s.failed} failed in ${s.durationS.toFixed(2)} s`,
    `  ${s.requestsPerS.toFixed(2)} req/s, ${s.outputTokensPerS.toFixed(1)} output tok/s (${s.outputTokens} output tokens)`,
    `  ${''.padEnd(6)}${['p50', 'p90', 'p99', 'mean', 'samples'].map((h) => h.padStart(11)).join('')}`,
    row('TTFT', s.ttftMs),
    row('ITL', s.itlMs),
    row('E2E', s.e2eMs),
  ];
  const errors = Object.entries(s.errorsByKind);
  if (errors.length > 0) lines.push(`  errors: ${errors.map(([k, n]) => `${k}: ${n}`).join(', ')}`);
  if (s.endpoints.length > 0) lines.push(`  endpoints: ${s.endpoints.map((e) => `${e.endpoint} ${(e.share * 100).toFixed(1)}%`).join(', ')}`);
  if (s.prefixCache !== undefined) {
    const p = s.prefixCache;
    lines.push(`  prefix cache: ${p.hitRate === undefined ? 'no lookups' : `${(p.hitRate * 100).toFixed(1)}% hit rate`} (${p.hits} / ${p.queries} tokens, ${p.servers} server${p.servers === 1 ? '' : 's'})`);
  }
  return `${lines.join('\n')}\n`;
}
