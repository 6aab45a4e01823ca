import type { GatewayError } from '../core/errors.js';

/**
 * What an upstream exchange listens to and is stopped through: an abort signal and the first
 * error that stopped it. The proxy's RequestScope (proxy/scope.ts) has this shape, and so does
 * LegScope below, which the PD leg runner uses for a pair and its prefill leg.
 */
export interface Scope {
  readonly signal: AbortSignal;
  /** Why it was stopped; undefined while it runs. */
  readonly stopped: GatewayError | undefined;
  /** Stops it with `error` (the first stop wins). */
  stop(error: GatewayError): void;
}

/** The reason a LegScope was stopped, carried as its AbortSignal's reason. */
class LegStopped extends Error {
  constructor(readonly error: GatewayError) {
    super(error.message);
  }
}

/** A Scope of its own (a prefill/decode pair, a prefill leg): stopping it aborts its signal with the error. */
export class LegScope implements Scope {
  readonly #controller = new AbortController();

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get stopped(): GatewayError | undefined {
    const reason: unknown = this.#controller.signal.reason;
    return reason instanceof LegStopped ? reason.error : undefined;
  }

  stop(error: GatewayError): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(new LegStopped(error));
  }
}
