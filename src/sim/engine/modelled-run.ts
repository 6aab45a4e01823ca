/**
 * Runs a synthetic workload on one engine in modelled time, as fast as the CPU allows, and
 * measures it the way vLLM's benchmarks do (TTFT per request, ITL per token gap, output tokens per
 * second). No HTTP and no wall clock: every submission happens inside a clock callback at its
 * exact modelled time, and every timing is read from the modelled clock, so a run's numbers are a
 * pure function of the profile and the workload. The calibration (calibration.ts) is built on it.
 */

import { seededRandom } from '../../core/weighted.js';
import { SimClock } from './clock.js';
import { Engine } from './engine.js';
import type { EngineProfile } from './profiles.js';

/** How requests arrive in a {@link modelledRun}. */
export type ModelledArrivals =
  /** `count` requests at once at time 0 (a batch). */
  | { readonly kind: 'batch' }
  /** `concurrency` clients, each sending its next request when the previous one finishes. */
  | { readonly kind: 'closed'; readonly concurrency: number }
  /** Poisson arrivals at `rate` requests per modelled second (seeded). */
  | { readonly kind: 'poisson'; readonly rate: number; readonly seed?: number }
  /** One after the other, each submitted when the previous finished (e.g. the same prompt twice). */
  | { readonly kind: 'sequential' };

/** A workload of a {@link modelledRun}. */
export interface ModelledWorkload {
  /** Requests to send. */
  readonly count: number;
  /** Prompt token ids of request `i` (distinct ids ⇒ no prefix-cache hits between requests). */
  readonly prompt: (i: number) => readonly number[];
  /** Output tokens of every request (generated exactly: `ignore_eos`). */
  readonly outputTokens: number;
  readonly arrivals: ModelledArrivals;
}

/** What a {@link modelledRun} measured, in modelled ms. */
export interface ModelledRunResult {
  /** TTFT of each request, in submission order. */
  readonly ttftMs: readonly number[];
  /** Every inter-token gap of every request. */
  readonly itlMs: readonly number[];
  /** Arrival to finish of each request, in submission order. */
  readonly e2eMs: readonly number[];
  /** Output tokens per modelled second from the first arrival to the last finish. */
  readonly outputTokensPerS: number;
  /** Mean requests in the engine (arrival to finish) over the run: Σ e2e / span (Little's law). */
  readonly meanInFlight: number;
  /** Steps the engine ran. */
  readonly steps: number;
}

/** `n` token ids unique to `key` (a different key shares none of them, so nothing hits the cache). */
export function distinctTokens(n: number, key: number): number[] {
  const random = seededRandom(0x9e3779b9 ^ key);
  return Array.from({ length: n }, () => Math.floor(random() * 150_000));
}

/**
 * Runs `workload` on a fresh engine with `profile` and resolves with its measurements, on a
 * virtual clock (timers drained back to back from modelled time 0, no wall clock).
 */
export async function modelledRun(profile: EngineProfile, workload: ModelledWorkload): Promise<ModelledRunResult> {
  const clock = new SimClock({ virtual: true, epochMs: 0 });
  const engine = new Engine({ model: 'calibration', profile, clock });
  // The clock's timers are unref'd; keep the process alive until the run ends.
  const keepAlive = setInterval(() => undefined, 60_000);
  const ttft: number[] = [];
  const e2e: number[] = [];
  const itl: number[] = [];
  let outputTokens = 0;
  let firstArrival = Number.POSITIVE_INFINITY;
  let lastFinish = 0;
  let steps = 0;
  try {
    await new Promise<void>((resolve) => {
      let submitted = 0;
      let finished = 0;
      const submit = (): void => {
        const i = submitted++;
        let last = 0;
        const now = clock.now();
        firstArrival = Math.min(firstArrival, now);
        engine.submit(
          { model: 'calibration', promptTokens: workload.prompt(i), maxTokens: workload.outputTokens, ignoreEos: true },
          {
            onToken: (_text, index) => {
              const t = clock.now();
              if (index > 0) itl.push(t - last);
              last = t;
              outputTokens++;
            },
            onFinish: (r) => {
              ttft[i] = r.ttftMs ?? Number.NaN;
              e2e[i] = r.e2eMs;
              lastFinish = Math.max(lastFinish, r.finishMs);
              finished++;
              if (finished === workload.count) {
                resolve();
                return;
              }
              if ((workload.arrivals.kind === 'closed' || workload.arrivals.kind === 'sequential') && submitted < workload.count) {
                clock.setTimeout(submit, 0);
              }
            },
          },
        );
      };
      clock.setTimeout(() => {
        const a = workload.arrivals;
        const start = clock.now();
        if (a.kind === 'batch') for (let i = 0; i < workload.count; i++) submit();
        else if (a.kind === 'closed') for (let i = 0; i < Math.min(a.concurrency, workload.count); i++) submit();
        else if (a.kind === 'sequential') submit();
        else {
          const random = seededRandom(a.seed ?? 1);
          let t = start;
          for (let i = 0; i < workload.count; i++) {
            t += (-Math.log(1 - random()) / a.rate) * 1000;
            clock.at(t, submit);
          }
        }
      }, 0);
    });
  } finally {
    steps = engine.stats().stepsTotal;
    engine.close();
    clock.close();
    clearInterval(keepAlive);
  }
  const span = lastFinish - firstArrival;
  const inFlightArea = e2e.reduce((sum, v) => sum + v, 0);
  return {
    ttftMs: ttft,
    itlMs: itl,
    e2eMs: e2e,
    outputTokensPerS: span > 0 ? (outputTokens / span) * 1000 : 0,
    meanInFlight: span > 0 ? inFlightArea / span : 0,
    steps,
  };
}
