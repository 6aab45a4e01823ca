import type { Random } from '../core/weighted.js';

/*
 * When requests are sent. Open loop (Poisson at a rate, or a sweep of rates in stages) sends on a
 * clock that ignores how fast the server answers, as real users do; closed loop keeps N clients
 * busy, each sending its next request when the previous one completes, which measures capacity.
 * Open-loop schedules are pure functions of a seeded PRNG so a run's send times repeat exactly.
 */

export { seededRandom, type Random } from '../core/weighted.js';

/** One stage of a sweep: Poisson arrivals at `rate` req/s for `seconds`. */
export interface RateStage {
  readonly rate: number;
  readonly seconds: number;
}

/** How requests arrive. */
export type ArrivalSpec =
  | { readonly kind: 'poisson'; readonly rate: number }
  | { readonly kind: 'sweep'; readonly stages: readonly RateStage[] }
  | { readonly kind: 'closed'; readonly concurrency: number };

/** A planned send: milliseconds after the run's start, and the sweep stage it belongs to (0 otherwise). */
export interface Arrival {
  readonly atMs: number;
  readonly stage: number;
}

/**
 * An exponential variate with mean 1/rate (seconds): the gap between Poisson arrivals.
 * Uses 1 − u so u = 0 (which the PRNG can return) never gives log(0).
 * @throws RangeError when rate is not a positive finite number.
 */
export function exponentialGap(random: Random, rate: number): number {
  if (!(rate > 0 && Number.isFinite(rate))) throw new RangeError(`rate must be a positive number (got ${rate})`);
  return -Math.log(1 - random()) / rate;
}

/**
 * Poisson arrivals at `rate` req/s from t = 0, forever (the runner stops taking them). The first
 * arrival is one gap after the start, not at 0, so the process is stationary from the beginning.
 */
export function* poissonArrivals(rate: number, random: Random): Generator<Arrival, void, void> {
  let t = 0;
  for (;;) {
    t += exponentialGap(random, rate) * 1000;
    yield { atMs: t, stage: 0 };
  }
}

/**
 * A rate sweep: each stage is a Poisson process at its rate over its own time window, stages back
 * to back. At a stage boundary the next gap is drawn afresh from the boundary (exponential gaps are
 * memoryless, so this is still exactly Poisson within each stage). Ends after the last stage.
 */
export function* sweepArrivals(stages: readonly RateStage[], random: Random): Generator<Arrival, void, void> {
  let stageStart = 0;
  for (const [index, stage] of stages.entries()) {
    if (!(stage.seconds > 0)) throw new RangeError(`stage ${index}: seconds must be positive (got ${stage.seconds})`);
    const end = stageStart + stage.seconds * 1000;
    let t = stageStart;
    for (;;) {
      t += exponentialGap(random, stage.rate) * 1000;
      if (t >= end) break;
      yield { atMs: t, stage: index };
    }
    stageStart = end;
  }
}

/** The open-loop schedule of `spec`; `undefined` for closed loop, which has no schedule. */
export function arrivalSchedule(spec: ArrivalSpec, random: Random): Iterator<Arrival> | undefined {
  switch (spec.kind) {
    case 'poisson':
      return poissonArrivals(spec.rate, random);
    case 'sweep':
      return sweepArrivals(spec.stages, random);
    case 'closed':
      return undefined;
  }
}

/** Total length of a sweep in seconds (the natural duration bound of a sweep run). */
export function sweepSeconds(stages: readonly RateStage[]): number {
  return stages.reduce((sum, s) => sum + s.seconds, 0);
}

/** A short human description: `poisson 4 req/s`, `sweep 2,4,8 req/s × 30 s`, `closed loop, 8 clients`. */
export function describeArrivals(spec: ArrivalSpec): string {
  switch (spec.kind) {
    case 'poisson':
      return `poisson ${spec.rate} req/s`;
    case 'sweep': {
      const secs = new Set(spec.stages.map((s) => s.seconds));
      const rates = spec.stages.map((s) => s.rate).join(',');
      return secs.size === 1 ? `sweep ${rates} req/s × ${[...secs][0]} s` : `sweep ${spec.stages.map((s) => `${s.rate} req/s × ${s.seconds} s`).join(', ')}`;
    }
    case 'closed':
      return `closed loop, ${spec.concurrency} client${spec.concurrency === 1 ? '' : 's'}`;
  }
}
