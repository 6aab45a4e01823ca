import { getHeapStatistics } from 'node:v8';
import { GatewayError } from '../core/errors.js';

/**
 * What one byte of a buffered request body costs in memory while its request is in flight, about:
 * the raw bytes, the string `JSON.parse` reads (transient), the parsed object (its strings are
 * copies), the prompt text the scheduler judges, and a rewritten body (a new `model`, a
 * prefill/decode leg's body). Token-id arrays and many small objects cost more per byte; one long
 * string costs about this.
 */
export const BODY_MEMORY_FACTOR = 4;

/**
 * The share of the V8 heap that buffered bodies may take, at BODY_MEMORY_FACTOR bytes per body
 * byte: the rest is for everything else (the prefix index, streams, connections) and for the
 * garbage collector's headroom.
 */
export const BODY_HEAP_SHARE = 0.25;

/**
 * How long a client refused for lack of budget is asked to wait (`Retry-After`, seconds): bodies
 * are held for the life of their requests, which turn over in seconds.
 */
export const BODY_BUDGET_RETRY_AFTER_S = 1;

/**
 * The default budget, in body bytes: `heapLimitBytes` × BODY_HEAP_SHARE ÷ BODY_MEMORY_FACTOR,
 * i.e. 1/16 of the V8 heap limit (`v8.getHeapStatistics().heap_size_limit`, which follows
 * `--max-old-space-size`). Node 20 on a machine with 16 GiB or more has a 4 GiB heap: 259 MiB of
 * bodies, seventeen 15 MiB bodies or about two thousand of 128 KiB at once.
 */
export function defaultBodyBudgetBytes(heapLimitBytes: number = getHeapStatistics().heap_size_limit): number {
  return Math.floor((heapLimitBytes * BODY_HEAP_SHARE) / BODY_MEMORY_FACTOR);
}

/** The refusal of a body the budget cannot hold now (503, `Retry-After`). */
export function bodyBudgetExhausted(limitBytes: number): GatewayError {
  return new GatewayError(
    'body_budget_exhausted',
    `the gateway is holding as many request bodies as its memory budget allows (${limitBytes} bytes in flight, --body-budget); retry shortly`,
    { retryAfterSeconds: BODY_BUDGET_RETRY_AFTER_S },
  );
}

/**
 * A global budget for the request bodies buffered across all requests in flight, in body bytes.
 * Every per-request body limit holds, yet a few hundred in-limit bodies at once would exhaust the
 * heap (each costs several times its size once parsed): past this budget a new body is refused
 * with 503 `body_budget_exhausted` before it is read, instead of the process dying. A body is
 * reserved against its declared length before its first byte is read, and grows its reservation
 * as bytes arrive when no length was declared (chunked HTTP/1.1, HTTP/2); the reservation is held
 * until the request ends (its parsed form lives as long) and released on every path.
 *
 * One body always fits when the budget holds nothing else, so a budget smaller than a listener's
 * body limit slows such bodies down to one at a time but never refuses them for good.
 */
export class BodyBudget {
  readonly limitBytes: number;
  #reserved = 0;

  /** `limitBytes`: the budget, in body bytes (a positive integer); default `defaultBodyBudgetBytes()`. */
  constructor(limitBytes: number = defaultBodyBudgetBytes()) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0) throw new RangeError(`body budget must be a positive integer of bytes (got ${limitBytes})`);
    this.limitBytes = limitBytes;
  }

  /** Body bytes reserved by requests in flight. */
  get reservedBytes(): number {
    return this.#reserved;
  }

  /** Reserves `bytes` for a new body; throws `body_budget_exhausted` when they do not fit. */
  reserve(bytes: number): BodyReservation {
    const r = new BodyReservation(this);
    r.cover(bytes);
    return r;
  }

  /** @internal Takes `more` bytes for a reservation now holding `own`; false if they do not fit. */
  take(own: number, more: number): boolean {
    const others = this.#reserved - own;
    if (more > 0 && others > 0 && this.#reserved + more > this.limitBytes) return false;
    this.#reserved += more;
    return true;
  }

  /** @internal Gives `bytes` back. */
  give(bytes: number): void {
    this.#reserved -= bytes;
  }
}

/** One request's share of the BodyBudget. `release` is idempotent; a released reservation holds nothing. */
export class BodyReservation {
  readonly #budget: BodyBudget;
  #bytes = 0;
  #released = false;

  constructor(budget: BodyBudget) {
    this.#budget = budget;
  }

  /** Body bytes held. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Makes the reservation at least `bytes` (a body that has grown to that size); throws
   * `body_budget_exhausted` when the budget cannot hold the difference.
   */
  cover(bytes: number): void {
    if (this.#released || bytes <= this.#bytes) return;
    if (!this.#budget.take(this.#bytes, bytes - this.#bytes)) throw bodyBudgetExhausted(this.#budget.limitBytes);
    this.#bytes = bytes;
  }

  /** Shrinks the reservation to `bytes` (a buffer that is no longer held, e.g. the compressed form). */
  shrinkTo(bytes: number): void {
    if (this.#released || bytes >= this.#bytes) return;
    this.#budget.give(this.#bytes - Math.max(0, bytes));
    this.#bytes = Math.max(0, bytes);
  }

  /** Gives everything back. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#budget.give(this.#bytes);
    this.#bytes = 0;
  }
}
