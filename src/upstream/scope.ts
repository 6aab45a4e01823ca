import type { GatewayError } from '../core/errors.js';

/**
 * What an upstream exchange listens to and is stopped through: its stop (listened to with
 * `onStop`, or an abort signal) and the first error that stopped it. The core's RequestScope has this shape; the PD leg runner uses one for a
 * pair and one for its prefill leg.
 */
export interface Scope extends StopSource {
  /** Aborted when it stops, for APIs that take a signal (RequestScope makes it on first read). */
  readonly signal: AbortSignal;
  /** Stops it with `error` (the first stop wins). */
  stop(error: GatewayError): void;
}

/** What listens to a scope's stop needs of it: cheaper than the signal's listeners (request-scope.ts). */
export interface StopSource {
  /** Why it was stopped; undefined while it runs. */
  readonly stopped: GatewayError | undefined;
  /** The error the stop is carried as (the signal's reason); undefined while it runs. */
  readonly reason: Error | undefined;
  /** Calls `listener` with `reason` when it stops (never if it stopped already: check `stopped` first). */
  onStop(listener: (reason: Error) => void): void;
  offStop(listener: (reason: Error) => void): void;
}
