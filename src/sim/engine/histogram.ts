/**
 * Prometheus-style histograms in seconds, with vLLM V1's bucket boundaries (vLLM vllm/v1/metrics/loggers.py, docs/design/metrics.md,
 * vllm/v1/metrics/loggers.py), so a /metrics face can print them unchanged.
 */

/** vLLM V1 `time_to_first_token_seconds` buckets. */
export const TTFT_BUCKETS_S: readonly number[] = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560,
];
/** vLLM V1 `inter_token_latency_seconds` / `time_per_output_token_seconds` buckets. */
export const ITL_BUCKETS_S: readonly number[] = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80,
];
/** vLLM V1 request latency buckets (`e2e_request_latency_seconds`, `request_queue_time_seconds`, …). */
export const REQUEST_LATENCY_BUCKETS_S: readonly number[] = [
  0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680,
];

/** A histogram snapshot: cumulative counts per upper bound (the last bucket is +Inf). */
export interface HistogramSnapshot {
  /** `le` upper bounds in seconds, ascending, ending with `Infinity`; `count` is cumulative. */
  readonly buckets: ReadonlyArray<{ readonly le: number; readonly count: number }>;
  /** Sum of observed values, seconds. */
  readonly sum: number;
  /** Number of observations (equals the +Inf bucket). */
  readonly count: number;
}

/** A fixed-bucket histogram; `observe` is O(log buckets) and allocation-free. */
export class Histogram {
  readonly #bounds: readonly number[];
  readonly #counts: Float64Array; // per bucket, not cumulative; last = +Inf
  #sum = 0;
  #count = 0;

  /** @param bounds ascending finite upper bounds in seconds (+Inf is implied) */
  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.#counts = new Float64Array(bounds.length + 1);
  }

  /** Records one value in seconds. */
  observe(seconds: number): void {
    const b = this.#bounds;
    let lo = 0;
    let hi = b.length; // first bound >= value (Prometheus buckets are `le`)
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seconds <= b[mid]!) hi = mid;
      else lo = mid + 1;
    }
    this.#counts[lo]! += 1;
    this.#sum += seconds;
    this.#count++;
  }

  /** Cumulative snapshot. */
  snapshot(): HistogramSnapshot {
    const buckets: { le: number; count: number }[] = [];
    let acc = 0;
    for (let i = 0; i <= this.#bounds.length; i++) {
      acc += this.#counts[i]!;
      buckets.push({ le: i < this.#bounds.length ? this.#bounds[i]! : Infinity, count: acc });
    }
    return { buckets, sum: this.#sum, count: this.#count };
  }
}
