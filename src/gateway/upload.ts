import { GatewayError } from '../core/errors.js';
import { BodyBudget } from './body-budget.js';

/**
 * How long a client may take to send its request body. Defaults are documented in
 * docs/configuration.md ("Limits"); `infergate serve --body-idle-timeout` overrides `idleMs`.
 */
export interface UploadTimeouts {
  /**
   * Silence between two reads of the body, in ms. Default 30 000: nginx's `client_body_timeout`
   * (the same rule, between two successive reads) is 60 s, but here a stalled upload also holds
   * its share of the body budget (its declared length), so the gateway gives it back sooner. SDKs
   * write a body in one go; a client silent for 30 s mid-body has stalled or is hostile.
   */
  readonly idleMs: number;
  /**
   * The whole body, in ms. Default 300 000: Node's HTTP/1.1 `requestTimeout` default, which also
   * bounds the headers.
   */
  readonly totalMs: number;
}

export const DEFAULT_UPLOAD_TIMEOUTS: UploadTimeouts = { idleMs: 30_000, totalMs: 300_000 };

/** The refusal of an upload that stalled (`idle`) or took too long (`total`): 408, the connection closes. */
export function uploadTimedOut(which: 'idle' | 'total', t: UploadTimeouts): GatewayError {
  return which === 'idle'
    ? new GatewayError('request_body_timeout', `the client sent no request body bytes for ${t.idleMs} ms (body idle timeout)`)
    : new GatewayError('request_body_timeout', `the request body did not arrive within ${t.totalMs} ms`);
}

/** How request bodies are bounded across the gateway; unset fields keep their defaults. */
export interface UploadOptions {
  /** The global body budget in body bytes (BodyBudget). Default `defaultBodyBudgetBytes()`. */
  readonly budgetBytes?: number;
  readonly timeouts?: Partial<UploadTimeouts>;
}

/** The bounds every data plane applies while it reads a request body. */
export interface UploadPolicy {
  readonly budget: BodyBudget;
  readonly timeouts: UploadTimeouts;
}

export function uploadPolicy(options: UploadOptions = {}): UploadPolicy {
  return { budget: new BodyBudget(options.budgetBytes), timeouts: { ...DEFAULT_UPLOAD_TIMEOUTS, ...options.timeouts } };
}

/**
 * The upload timeouts as timers, for a data plane that is handed a body piece by piece (the
 * endpoint picker gets Envoy's body messages): `touch()` on every piece, `stop()` once the body is
 * whole or the request ended. Past either timeout `onExpired` gets the 408 (`uploadTimedOut`) once;
 * the data plane then releases what the upload holds (its body budget share) and ends the request.
 */
export class UploadClock {
  readonly #timeouts: UploadTimeouts;
  readonly #onExpired: (error: GatewayError) => void;
  #idle: NodeJS.Timeout | undefined;
  #total: NodeJS.Timeout | undefined;

  constructor(timeouts: UploadTimeouts, onExpired: (error: GatewayError) => void) {
    this.#timeouts = timeouts;
    this.#onExpired = onExpired;
    this.#total = setTimeout(() => this.#expire('total'), timeouts.totalMs);
    this.#total.unref();
    this.touch();
  }

  /** A piece of the body arrived: the idle timeout starts again. */
  touch(): void {
    if (this.#total === undefined) return;
    if (this.#idle === undefined) {
      this.#idle = setTimeout(() => this.#expire('idle'), this.#timeouts.idleMs);
      this.#idle.unref();
    } else this.#idle.refresh();
  }

  stop(): void {
    clearTimeout(this.#idle);
    clearTimeout(this.#total);
    this.#idle = undefined;
    this.#total = undefined;
  }

  #expire(which: 'idle' | 'total'): void {
    if (this.#total === undefined) return;
    this.stop();
    this.#onExpired(uploadTimedOut(which, this.#timeouts));
  }
}
