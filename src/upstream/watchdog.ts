import type { GatewayError } from '../core/errors.js';
import { phaseTimeout, type PhaseFacts, type RequestDeadline, type UpstreamTimeouts } from '../gateway/index.js';
import type { Scope } from './scope.js';

/** A whole-request deadline and the setting it comes from (the core's RequestDeadline). */
export type Deadline = RequestDeadline;

/** One upstream exchange in flight, as the watchdog sees it. */
export interface Watched {
  /** The exchange's facts (an UpstreamAttempt has them). */
  readonly attempt: PhaseFacts;
  readonly timeouts: UpstreamTimeouts;
  readonly deadline: Deadline | undefined;
  /** Stopped with the timeout's error when one fires. */
  readonly scope: Scope;
  /**
   * The first body byte must arrive by then (a disaggregated request's decode leg: the KV
   * handshake and transfer); its error is the one given.
   */
  readonly firstByte?: { readonly at: number; readonly error: () => GatewayError };
  /**
   * Called instead of `scope.stop` when a timeout fires; `whole` is the core's verdict that the
   * timeout ends the whole request (its deadline, a stalled client), not one leg of a pair.
   */
  readonly stop?: (error: GatewayError, whole: boolean) => void;
}

/** The timeout `w` has passed at `now`, as the error that ends it (the core's `phaseTimeout`); undefined while on time. */
export function overdue(w: Watched, now: number): GatewayError | undefined {
  return phaseTimeout(w.attempt, w, now)?.error;
}

/** How often the watchdog looks at every attempt in flight; a timeout fires up to this late. */
export const WATCHDOG_INTERVAL_MS = 250;

/**
 * One coarse timer for every upstream attempt in flight, instead of timers per request and per
 * chunk: each sweep asks the core which phase timeout each attempt passed (`phaseTimeout`) and stops the request of
 * any that passed one. The timer runs only while something is watched, and never keeps the
 * process alive.
 */
export class Watchdog {
  readonly #watched = new Set<Watched>();
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(intervalMs = WATCHDOG_INTERVAL_MS) {
    this.#intervalMs = intervalMs;
  }

  get size(): number {
    return this.#watched.size;
  }

  watch(w: Watched): void {
    this.#watched.add(w);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.sweep(performance.now()), this.#intervalMs);
      this.#timer.unref();
    }
  }

  unwatch(w: Watched): void {
    this.#watched.delete(w);
    if (this.#watched.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Stops every watched request whose attempt is overdue at `now`. */
  sweep(now: number): void {
    for (const w of this.#watched) {
      if (w.scope.stopped !== undefined) continue;
      // The core decides which timeout passed and whom it ends; the loop only stops.
      const verdict = phaseTimeout(w.attempt, w, now);
      if (verdict === undefined) continue;
      if (w.stop === undefined) w.scope.stop(verdict.error);
      else w.stop(verdict.error, verdict.whole);
    }
  }

  close(): void {
    this.#watched.clear();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
