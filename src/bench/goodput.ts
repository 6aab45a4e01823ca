import { arrivalSchedule, seededRandom, type RateStage } from './arrivals.js';
import type { RequestRecord } from './runner.js';
import { summarize } from './summary.js';

/*
 * Goodput: the highest load a system carries while its users still get the service level they
 * were promised. A sweep offers rising load in stages; each stage either meets the SLO or not; a
 * system's goodput is the highest stage it meets, with every lower stage met too (so one lucky
 * stage above a failed one does not count). The definitions here are the ones docs/benchmarks.md
 * states, computed from the records alone so they can be recomputed from a results file.
 */

/** A service-level objective on the client-side latencies (modelled ms). */
export interface Slo {
  /** Most TTFT p90 allowed, ms. */
  readonly ttftP90Ms: number;
  /** Most ITL p99 allowed (over every token gap of the stage's requests), ms. */
  readonly itlP99Ms: number;
}

/** A stage must complete at least this share of its requests (the rest failed or never finished). */
export const MIN_COMPLETED_SHARE = 0.95;

/** One stage of a sweep, measured. */
export interface StagePoint {
  readonly stage: number;
  /** Offered load: Poisson req/s (open loop), or the achieved rate for a closed loop. */
  readonly rate: number;
  /** Closed-loop stages: clients (conversations) kept busy. */
  readonly concurrency?: number;
  /** Requests that arrived in the stage, and how many completed successfully. */
  readonly requests: number;
  readonly ok: number;
  readonly ttftP50Ms: number | undefined;
  readonly ttftP90Ms: number | undefined;
  /** ITL percentiles over every token gap of the stage's successful requests. */
  readonly itlP50Ms: number | undefined;
  readonly itlP99Ms: number | undefined;
  /** Output tokens of the stage's successful requests per second of the stage. */
  readonly outputTokensPerS: number;
}

/** Requests planned per stage of a sweep, recomputed from its seeded schedule (the runner's). */
export function plannedPerStage(stages: readonly RateStage[], seed: number): number[] {
  const counts = stages.map(() => 0);
  const schedule = arrivalSchedule({ kind: 'sweep', stages }, seededRandom(seed));
  if (schedule === undefined) return counts;
  for (let next = schedule.next(); next.done !== true; next = schedule.next()) counts[next.value.stage] = (counts[next.value.stage] ?? 0) + 1;
  return counts;
}

/**
 * The stage points of an open-loop sweep: records grouped by the stage they arrived in. A stage
 * the run never reached (stopped early) is left out; `planned` counts requests that were never
 * sent against the stage's completed share.
 */
export function sweepPoints(records: readonly RequestRecord[], stages: readonly RateStage[], planned: readonly number[]): StagePoint[] {
  const points: StagePoint[] = [];
  stages.forEach((stage, index) => {
    const own = records.filter((r) => r.stage === index);
    if (own.length === 0) return;
    const s = summarize(own);
    points.push({
      stage: index,
      rate: stage.rate,
      requests: Math.max(own.length, planned[index] ?? 0),
      ok: s.ok,
      ttftP50Ms: s.ttftMs?.p50,
      ttftP90Ms: s.ttftMs?.p90,
      itlP50Ms: s.itlMs?.p50,
      itlP99Ms: s.itlMs?.p99,
      outputTokensPerS: s.outputTokens / stage.seconds,
    });
  });
  return points;
}

/** One closed-loop stage (a run of its own): the rate is what the system achieved. */
export function closedLoopPoint(records: readonly RequestRecord[], stage: number, concurrency: number): StagePoint {
  const s = summarize(records);
  return {
    stage,
    rate: s.requestsPerS,
    concurrency,
    requests: s.requests,
    ok: s.ok,
    ttftP50Ms: s.ttftMs?.p50,
    ttftP90Ms: s.ttftMs?.p90,
    itlP50Ms: s.itlMs?.p50,
    itlP99Ms: s.itlMs?.p99,
    outputTokensPerS: s.outputTokensPerS,
  };
}

/** Whether a stage meets `slo`: TTFT p90 and ITL p99 within it, ≥ 95 % of its requests completed. */
export function meetsSlo(point: StagePoint, slo: Slo): boolean {
  return (
    point.requests > 0 &&
    point.ok >= MIN_COMPLETED_SHARE * point.requests &&
    point.ttftP90Ms !== undefined &&
    point.ttftP90Ms <= slo.ttftP90Ms &&
    (point.itlP99Ms === undefined || point.itlP99Ms <= slo.itlP99Ms)
  );
}

/** A system's goodput under one SLO. */
export interface Goodput {
  /** The highest rate sustained (req/s); undefined when even the first stage misses the SLO. */
  readonly rate: number | undefined;
  /** Output tokens/s at that stage. */
  readonly outputTokensPerS: number | undefined;
  /** true when a higher stage was measured and missed the SLO (the knee was found), false when the top stage was met. */
  readonly bounded: boolean;
}

/** The highest stage that meets `slo` with every stage below it meeting it too. */
export function goodput(points: readonly StagePoint[], slo: Slo): Goodput {
  const sorted = [...points].sort((a, b) => a.rate - b.rate);
  let best: StagePoint | undefined;
  for (const p of sorted) {
    if (!meetsSlo(p, slo)) return { rate: best?.rate, outputTokensPerS: best?.outputTokensPerS, bounded: true };
    best = p;
  }
  return { rate: best?.rate, outputTokensPerS: best?.outputTokensPerS, bounded: false };
}

/**
 * Watches a sweep's records as they complete and says when a stage has certainly missed the SLO:
 * more than 10 % of its planned requests with TTFT over the SLO (so its p90 is over) or more than
 * 5 % failed. ITL is not watched: its p99 needs every gap. After `stopAfter` such stages
 * `onStop` is called once (the sweep stops: higher stages only get worse).
 */
export class SloWatch {
  readonly #planned: readonly number[];
  readonly #slo: Slo;
  readonly #late: number[];
  readonly #failed: number[];
  readonly #missed = new Set<number>();
  readonly #stopAfter: number;
  readonly #onStop: () => void;
  #stopped = false;

  constructor(planned: readonly number[], slo: Slo, stopAfter: number, onStop: () => void) {
    this.#planned = planned;
    this.#slo = slo;
    this.#late = planned.map(() => 0);
    this.#failed = planned.map(() => 0);
    this.#stopAfter = stopAfter;
    this.#onStop = onStop;
  }

  /** Stages known to have missed the SLO so far. */
  get missed(): number {
    return this.#missed.size;
  }

  add(record: RequestRecord): void {
    const i = record.stage;
    const planned = this.#planned[i] ?? 0;
    if (!record.ok) this.#failed[i] = (this.#failed[i] ?? 0) + 1;
    else if (record.ttftMs !== undefined && record.ttftMs > this.#slo.ttftP90Ms) this.#late[i] = (this.#late[i] ?? 0) + 1;
    if ((this.#late[i] ?? 0) > 0.1 * planned || (this.#failed[i] ?? 0) > (1 - MIN_COMPLETED_SHARE) * planned) this.#missed.add(i);
    if (!this.#stopped && this.#missed.size >= this.#stopAfter) {
      this.#stopped = true;
      this.#onStop();
    }
  }
}
