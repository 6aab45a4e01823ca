/*
 * A proxy's event-loop delay over a measured run, from its own `/metrics`: the gateway and the
 * endpoint picker export `infergate_event_loop_delay_seconds`, a histogram of how late a timer due
 * every 10 ms fired (docs/metrics.md). Read before and after the run, the difference is the run's.
 */

const METRIC = 'infergate_event_loop_delay_seconds';

/** One reading of the histogram: cumulative counts by upper bound (seconds; Infinity for +Inf). */
export interface LoopDelayReading {
  readonly buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>;
}

/** The run's delays as the buckets bound them: never finer than a bucket. */
export interface LoopDelayStats {
  /** Samples in the run (~100 per second). */
  readonly samples: number;
  /** Upper bound of the bucket holding the 99th percentile, ms (Infinity: over the last bound). */
  readonly p99Ms: number;
  /** Upper bound of the highest bucket that gained a sample, ms (Infinity: over the last bound). */
  readonly maxMs: number;
  /** Samples over 10 ms: stalls of at least that long (issue 21's goal is none). */
  readonly over10Ms: number;
}

/** The histogram's buckets in a Prometheus text page; undefined when the page has none. */
export function parseLoopDelay(page: string): LoopDelayReading | undefined {
  const buckets: Array<{ le: number; count: number }> = [];
  const re = new RegExp(`^${METRIC}_bucket\\{le="([^"]+)"\\} (\\S+)$`, 'gm');
  for (const m of page.matchAll(re)) buckets.push({ le: m[1] === '+Inf' ? Infinity : Number(m[1]), count: Number(m[2]) });
  if (buckets.length === 0) return undefined;
  buckets.sort((a, b) => a.le - b.le);
  return { buckets };
}

/** Reads `url` (a `/metrics` page); undefined when it cannot be read or has no such histogram. */
export async function readLoopDelay(url: string): Promise<LoopDelayReading | undefined> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
    return r.ok ? parseLoopDelay(await r.text()) : undefined;
  } catch {
    return undefined;
  }
}

/** What happened between two readings of one process; undefined without both. */
export function loopDelayBetween(before: LoopDelayReading | undefined, after: LoopDelayReading | undefined): LoopDelayStats | undefined {
  if (before === undefined || after === undefined) return undefined;
  const earlier = new Map(before.buckets.map((b) => [b.le, b.count]));
  const run = after.buckets.map((b) => ({ le: b.le, count: b.count - (earlier.get(b.le) ?? 0) }));
  const samples = run.at(-1)?.count ?? 0;
  if (samples <= 0) return { samples: 0, p99Ms: 0, maxMs: 0, over10Ms: 0 };
  let p99 = Infinity;
  let max = 0;
  let previous = 0;
  for (const b of run) {
    if (p99 === Infinity && b.count >= 0.99 * samples) p99 = b.le;
    if (b.count > previous) max = b.le;
    previous = b.count;
  }
  const at10 = run.find((b) => b.le === 0.01)?.count ?? 0;
  return { samples, p99Ms: p99 * 1000, maxMs: max * 1000, over10Ms: samples - at10 };
}
