import { GatewayError } from '../core/errors.js';
import type { Outcome } from './request-types.js';

/** The status logged for a client that went away (nginx's 499; core/errors.ts `client_gone`). */
export const CLIENT_GONE_STATUS = new GatewayError('client_gone', '').status;

/**
 * The client went away before its response was complete. Every data plane reports it with this
 * error (its scope stopped, its body read abandoned) and the core logs the request with 499, nginx's
 * "client closed request" (the `client_gone` row of core/errors.ts): the one place where a
 * disconnect becomes a status. `when` says at which step (e.g. `while sending the request body`).
 */
export function clientGone(when?: string, cause?: unknown): GatewayError {
  return new GatewayError('client_gone', when === undefined ? 'the client went away' : `the client went away ${when}`, cause === undefined ? undefined : { cause });
}

/** True for the error (or interruption code) of a client that went away. */
export function isClientGone(err: GatewayError | string | undefined): boolean {
  return (typeof err === 'string' ? err : err?.code) === 'client_gone';
}

/** The outcome of a request whose client went away after `bytesOut` bytes of its answer: 499. */
export function clientGoneOutcome(bytesOut: number): Outcome {
  return { status: CLIENT_GONE_STATUS, bytesOut, interrupted: 'client_gone' };
}
