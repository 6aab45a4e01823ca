import type { GatewayError } from '../core/errors.js';

/**
 * What an upstream exchange listens to and is stopped through: an abort signal and the first
 * error that stopped it. The core's RequestScope has this shape; the PD leg runner uses one for a
 * pair and one for its prefill leg.
 */
export interface Scope {
  readonly signal: AbortSignal;
  /** Why it was stopped; undefined while it runs. */
  readonly stopped: GatewayError | undefined;
  /** Stops it with `error` (the first stop wins). */
  stop(error: GatewayError): void;
}
