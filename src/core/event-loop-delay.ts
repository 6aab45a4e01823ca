import { monitorEventLoopDelay, type Histogram, type IntervalHistogram } from 'node:perf_hooks';

/**
 * The monitor's sampling period, ms: a libuv timer due every 10 ms (Node's default). Each sample is
 * the time between two of its ticks, so a tick that came on time reads ~10 ms: the delay is what
 * exceeds it. A synchronous task of B ms shows as a delay between B − 10 and B ms (it may have
 * started anywhere between two ticks); over many samples the worst approaches B. A finer period
 * would wake an idle process more often (0.4 points of a core at 10 ms, docs/benchmarks.md).
 */
export const LOOP_DELAY_RESOLUTION_MS = 10;

/**
 * Upper bounds of the delay buckets, seconds. Dense around 10 ms, the stall worth alerting on (a
 * streamed token's gap is tens of ms; issue 21's goal is no stall over 10 ms), sparse above.
 */
export const LOOP_DELAY_BUCKETS_S: readonly number[] = [0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

/** Delay samples since the monitor started: counts at or below each bound of LOOP_DELAY_BUCKETS_S (cumulative, as Prometheus's `le`), their total and sum. */
export interface LoopDelayTotals {
  /** `cumulative[i]`: samples with a delay ≤ LOOP_DELAY_BUCKETS_S[i]. */
  readonly cumulative: readonly number[];
  readonly count: number;
  /** Sum of the delays, seconds. */
  readonly sumS: number;
}

/**
 * How late this process's event loop runs, from one `perf_hooks.monitorEventLoopDelay` (one per
 * gateway, shared by its readers). Two readers:
 *
 * - `recentMaxMs()`, the scraper's: the worst delay over the current and the previous one-second
 *   window. A scrape that timed out while the gateway itself was starved (a flood of large bodies
 *   to parse and hash, a long GC) says nothing about the model server: its answer may have been
 *   waiting in the socket for the loop.
 * - `totals()`, the `/metrics` histogram's: every sample since start in fixed buckets.
 *
 * The monitor's own histogram is folded into the totals and reset at each read, so it never grows
 * past the samples between two reads. Node gives no per-value counts, only percentiles, so a
 * bucket's count is found by bisecting `percentile()` over the samples' ranks; buckets outside the
 * samples' [min, max] need none. A fold costs about a millisecond, once per scrape (0.5–1.5 ms on a
 * busy 2-core machine, from 3,000 samples to 360,000 with outliers).
 */
export class EventLoopDelay {
  readonly #monitor: IntervalHistogram = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  readonly #cumulative = new Array<number>(LOOP_DELAY_BUCKETS_S.length).fill(0);
  #count = 0;
  #sumS = 0;
  #windowStart = performance.now();
  /** Worst raw sample (ns) folded since the window started. */
  #windowMaxNs = 0;
  #previousMaxNs = 0;

  constructor() {
    this.#monitor.enable();
  }

  /** The worst event-loop delay, ms, seen in the last one to two seconds (0 when every tick came on time). */
  recentMaxMs(): number {
    const now = performance.now();
    if (now - this.#windowStart >= 1000) {
      this.#fold();
      this.#previousMaxNs = this.#windowMaxNs;
      this.#windowMaxNs = 0;
      this.#windowStart = now;
    }
    return delayMs(Math.max(this.#previousMaxNs, this.#windowMaxNs, this.#monitor.max));
  }

  /** Every sample since start, bucketed (see LoopDelayTotals). */
  totals(): LoopDelayTotals {
    this.#fold();
    return { cumulative: [...this.#cumulative], count: this.#count, sumS: this.#sumS };
  }

  close(): void {
    this.#monitor.disable();
  }

  /** Moves the monitor's samples into the totals and the window's max, then empties it. */
  #fold(): void {
    const h = this.#monitor;
    const n = h.count;
    if (n === 0) return;
    const offsetNs = LOOP_DELAY_RESOLUTION_MS * 1e6;
    this.#windowMaxNs = Math.max(this.#windowMaxNs, h.max);
    let below = 0; // samples ≤ the previous bound: a lower bound for the next one
    for (let i = 0; i < LOOP_DELAY_BUCKETS_S.length; i++) {
      const boundNs = (LOOP_DELAY_BUCKETS_S[i] as number) * 1e9 + offsetNs;
      if (h.max <= boundNs) below = n;
      else if (h.min <= boundNs) below = ranksAtOrBelow(h, n, boundNs, below);
      this.#cumulative[i] = (this.#cumulative[i] as number) + below;
    }
    this.#count += n;
    // Delays below 0 (a tick a little early) count as 0; the mean is over raw samples.
    this.#sumS += (Math.max(0, h.mean - offsetNs) * n) / 1e9;
    h.reset();
  }
}

/** A raw sample (ns between ticks) as a delay, ms. */
function delayMs(rawNs: number): number {
  return Math.max(0, rawNs / 1e6 - LOOP_DELAY_RESOLUTION_MS);
}

/**
 * How many of the `n` samples of `h` are ≤ `boundNs`, given that at least `from` are: the largest
 * rank k whose value (`percentile` of the k-th smallest) is ≤ the bound, by bisection. The histogram keeps 3
 * significant digits, so a sample within 0.1 % of the bound may count above it. The rank's percentile is taken half a rank low so that floating-point
 * rounding never lands on the next rank. Exported for tests.
 */
export function ranksAtOrBelow(h: Histogram, n: number, boundNs: number, from = 0): number {
  let lo = from; // known ≤ bound (0: none)
  let hi = n; // not known
  while (lo < hi) {
    const k = Math.ceil((lo + hi) / 2);
    if (h.percentile(((k - 0.5) / n) * 100) <= boundNs) lo = k;
    else hi = k - 1;
  }
  return lo;
}
