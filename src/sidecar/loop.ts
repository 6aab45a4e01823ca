import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../core/errors.js';

/**
 * The sidecar's `Via` entry (RFC 9110 §7.6.3: "used to detect and avoid request loops"). Every
 * request the sidecar sends on carries it, and a request that arrives carrying it has already
 * passed a sidecar: a `--decode-url` that points back at a sidecar (itself, or another whose
 * decode server is this one) would otherwise relay one request forever, a socket per turn.
 */
export const VIA_ENTRY = '1.1 infergate-pd-sidecar';

/** The request already passed a sidecar: 508 `forwarding_loop`, before anything is sent. */
export function loopOf(headers: IncomingHttpHeaders): GatewayError | undefined {
  const via = headers['via'];
  if (via === undefined) return undefined;
  const text = Array.isArray(via) ? via.join(',') : via;
  if (!text.includes('infergate-pd-sidecar')) return undefined;
  return new GatewayError('forwarding_loop', 'the request already passed a pd-sidecar: a --decode-url leads back to a sidecar instead of a decode server');
}

/** The `Via` value to send on: what arrived, then this sidecar's entry. */
export function viaWith(prior: string | string[] | undefined): string {
  const before = prior === undefined ? '' : Array.isArray(prior) ? prior.join(', ') : prior;
  return before === '' ? VIA_ENTRY : `${before}, ${VIA_ENTRY}`;
}
