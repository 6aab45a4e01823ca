/*
 * Descriptive statistics for benchmark samples. Everything is exact (computed from all samples,
 * sorted once), because a benchmark's samples fit in memory and approximate sketches would make
 * the published p99 depend on the sketch's error.
 */

/** The quantiles every benchmark table reports. */
export interface Distribution {
  readonly count: number;
  readonly mean: number;
  readonly min: number;
  readonly max: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

/** An ascending copy of `values` (non-finite values dropped: a NaN would poison every quantile). */
export function sortedAscending(values: Iterable<number>): number[] {
  const out: number[] = [];
  for (const v of values) if (Number.isFinite(v)) out.push(v);
  return out.sort((a, b) => a - b);
}

/**
 * The `p`-th percentile (0..100) of ascending `sorted` samples, by **linear interpolation between
 * closest ranks** (Hyndman & Fan type 7: rank h = (n − 1)·p/100, value = x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋])).
 * This is numpy.percentile's default, so our numbers compare with Python benchmark tools that
 * report numpy percentiles; unlike nearest-rank, p99 of few samples moves smoothly between them.
 * One sample ⇒ that sample; no samples ⇒ `undefined`.
 * @throws RangeError when p is outside 0..100.
 */
export function percentile(sorted: readonly number[], p: number): number | undefined {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100 (got ${p})`);
  const n = sorted.length;
  if (n === 0) return undefined;
  const h = ((n - 1) * p) / 100;
  const lo = Math.floor(h);
  const a = sorted[lo] as number;
  const b = sorted[Math.min(lo + 1, n - 1)] as number;
  return a + (h - lo) * (b - a);
}

/** Arithmetic mean; `undefined` for no samples. */
export function mean(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** count, mean, min, max, p50, p90, p99 of the finite samples; `undefined` when there are none. */
export function distribution(values: Iterable<number>): Distribution | undefined {
  const sorted = sortedAscending(values);
  if (sorted.length === 0) return undefined;
  return {
    count: sorted.length,
    mean: mean(sorted) as number,
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
    p50: percentile(sorted, 50) as number,
    p90: percentile(sorted, 90) as number,
    p99: percentile(sorted, 99) as number,
  };
}

/** Equal-width bins: `edges` has `counts.length + 1` entries. */
export interface Histogram {
  readonly edges: readonly number[];
  readonly counts: readonly number[];
}

/** Options of {@link histogram}. */
export interface HistogramOptions {
  /** Number of bins (default 20). */
  readonly bins?: number;
  /** Lower edge (default: the smallest sample). */
  readonly min?: number;
  /** Upper edge (default: the largest sample). */
  readonly max?: number;
}

/**
 * Counts samples into equal-width bins over [min, max]. Bins are half-open [lo, hi) except the last,
 * which includes `max`, so every sample within range is counted exactly once; samples outside
 * [min, max] are left out (an explicit range is a zoom, not a clamp). All samples equal ⇒ one
 * unit-wide range around them, so the chart still has a bar.
 */
export function histogram(values: readonly number[], options: HistogramOptions = {}): Histogram {
  const bins = options.bins ?? 20;
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`bins must be a positive integer (got ${bins})`);
  const finite = values.filter((v) => Number.isFinite(v));
  let lo = options.min ?? (finite.length > 0 ? Math.min(...finite) : 0);
  let hi = options.max ?? (finite.length > 0 ? Math.max(...finite) : 1);
  if (hi < lo) throw new RangeError(`histogram max ${hi} is below min ${lo}`);
  if (hi === lo) {
    lo -= 0.5;
    hi += 0.5;
  }
  const width = (hi - lo) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? hi : lo + i * width));
  const counts = new Array<number>(bins).fill(0);
  for (const v of finite) {
    if (v < lo || v > hi) continue;
    const i = v === hi ? bins - 1 : Math.min(bins - 1, Math.floor((v - lo) / width));
    counts[i] = (counts[i] ?? 0) + 1;
  }
  return { edges, counts };
}

/**
 * The empirical CDF as step points `{ x, y }`: for each distinct sample x, y is the fraction of
 * samples ≤ x. At most `maxPoints` points are kept (evenly by rank, always the last), so a chart of
 * a 100k-request run stays small.
 */
export function ecdf(sorted: readonly number[], maxPoints = 400): Array<{ x: number; y: number }> {
  const n = sorted.length;
  const points: Array<{ x: number; y: number }> = [];
  if (n === 0) return points;
  const step = Math.max(1, Math.ceil(n / maxPoints));
  for (let i = 0; i < n; i++) {
    const x = sorted[i] as number;
    const last = i === n - 1;
    // Only the last of equal samples carries the step's full height.
    if (!last && sorted[i + 1] === x) continue;
    if (!last && (i + 1) % step !== 0) continue;
    points.push({ x, y: (i + 1) / n });
  }
  return points;
}
