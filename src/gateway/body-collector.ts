import { GatewayError } from '../core/errors.js';
import type { BodyReservation } from './body-budget.js';

/** Where a listener's body limit comes from, as a user would find it (for the 413's message). */
export const LISTENER_LIMIT = 'the listener limit';
const LISTENER_SETTING = 'ClientTrafficPolicy connection.bufferLimit';

/**
 * The refusal of a body over `limit` bytes (413 `body_too_large`). `what` names the limit (the
 * listener's by default: ClientTrafficPolicy `connection.bufferLimit`; a pool's for the endpoint
 * picker), `note` what was measured (e.g. `once decoded (gzip)`).
 */
export function bodyTooLarge(limit: number, what: string = LISTENER_LIMIT, note?: string): GatewayError {
  const setting = what === LISTENER_LIMIT ? ` (${LISTENER_SETTING})` : '';
  return new GatewayError('body_too_large', `request body exceeds ${what} of ${limit} bytes${note === undefined ? '' : ` ${note}`}${setting}`);
}

/**
 * Refuses up front a body whose declared length (`Content-Length`, or Envoy's request headers)
 * is over `limit`: 413 `body_too_large` before a byte is read. An undeclared length passes (the
 * BodyCollector holds it to the limit as it arrives).
 */
export function refuseDeclaredOver(declared: number | undefined, limit: number, what?: string): void {
  if (declared !== undefined && declared > limit) throw bodyTooLarge(limit, what);
}

/** Options of a BodyCollector beside its limit. */
export interface BodyCollectorOptions {
  /**
   * Bytes the request already holds beside this body (a compressed body while its decoded form is
   * collected): the reservation covers them plus the collected bytes. Default 0.
   */
  readonly alsoHeld?: number;
  /** Names the limit in the 413 (bodyTooLarge's `what`); default the listener's. */
  readonly what?: string;
  /** Says what was measured in the 413 (bodyTooLarge's `note`), e.g. `once decoded (gzip)`. */
  readonly note?: string;
}

/**
 * One request body collected in memory, bounded: the one place that says "up to `limit` bytes,
 * else 413 `body_too_large`" for every data plane (the proxy's socket reads and decoders, the
 * endpoint picker's body chunks from Envoy). Each push grows the request's share of the global
 * body budget (`reservation`, when given) to the bytes held, so a body without a declared length
 * is refused with 503 `body_budget_exhausted` as soon as the budget cannot hold it.
 *
 * ```
 * const body = new BodyCollector(limit, reservation);
 * for (const chunk of chunks) body.push(chunk);   // throws body_too_large / body_budget_exhausted
 * const bytes = body.finish();                    // one Buffer (no copy for a single chunk)
 * ```
 */
export class BodyCollector {
  readonly #limit: number;
  readonly #reservation: BodyReservation | undefined;
  readonly #options: BodyCollectorOptions;
  readonly #chunks: Buffer[] = [];
  #size = 0;

  /** `limit`: the largest body accepted, in bytes (a non-negative integer). */
  constructor(limit: number, reservation?: BodyReservation, options: BodyCollectorOptions = {}) {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`body limit must be a non-negative integer of bytes (got ${limit})`);
    this.#limit = limit;
    this.#reservation = reservation;
    this.#options = options;
  }

  /** Bytes collected so far. */
  get size(): number {
    return this.#size;
  }

  /** The limit, in bytes. */
  get limit(): number {
    return this.#limit;
  }

  /**
   * Adds `chunk`. Throws `body_too_large` (413) when the body would pass the limit, and
   * `body_budget_exhausted` (503) when the budget cannot hold it; the chunk is not kept then.
   */
  push(chunk: Buffer): void {
    const size = this.#size + chunk.length;
    if (size > this.#limit) throw bodyTooLarge(this.#limit, this.#options.what, this.#options.note);
    this.#reservation?.cover((this.#options.alsoHeld ?? 0) + size);
    this.#size = size;
    if (chunk.length > 0) this.#chunks.push(chunk);
  }

  /** The body collected: one Buffer of `size` bytes (a single chunk is returned as it is). */
  finish(): Buffer {
    if (this.#chunks.length === 1) return this.#chunks[0] as Buffer;
    return Buffer.concat(this.#chunks, this.#size);
  }
}
