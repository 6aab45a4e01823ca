import type { Endpoint } from '../core/endpoint.js';
import { statusShare, type ShareOutcome } from '../endpoints/passive-health.js';

/**
 * What counts against a model server (passive health, docs/routing.md "Passive health"): only
 * evidence that it misbehaved while it had the request. Every judgement the request handle makes
 * goes through here, so each data plane blames alike.
 *
 * | evidence against the server                | never evidence                                           |
 * |--------------------------------------------|----------------------------------------------------------|
 * | `upstream_unavailable` (refused, unreachable, a non-2xx SGLang prefill) | the gateway refused or could not build the request (`unforwardable_request`, `internal_error`, any 4xx code of ours) |
 * | `upstream_reset` (closed under the request, an undecodable answer), `upstream_invalid_response` (a compressed answer past its bounds) | `client_gone` (the client left: its legs were cut) |
 * | `upstream_timeout`, `kv_handshake_timeout` | `gateway_shutting_down`, `queue_timeout`, `no_ready_endpoint` |
 * | an answer 5xx (but 501, 505)               | an answer 4xx: the server judged the client's request (429 and outliers back off instead) |
 *
 * The error share that backs off outliers (`answerShare`) counts 5xx and a 404 for a model the
 * server is supposed to have, never another 4xx (request validation: 400, 413, 422, …) nor a
 * request the client left: affinity sends one client's requests to one pod, so those would single
 * out a healthy server.
 */

/** Error codes that are evidence the endpoint holding the request misbehaved. */
const SERVER_FAULTS: ReadonlySet<string> = new Set(['upstream_unavailable', 'upstream_reset', 'upstream_invalid_response', 'upstream_timeout', 'kv_handshake_timeout']);

/** True when a failure with `code` counts against the endpoint that had the request. */
export function isServerFault(code: string | undefined): boolean {
  return code !== undefined && SERVER_FAULTS.has(code);
}

/**
 * What an answer with `status` adds to the endpoint's error share (endpoints/passive-health.ts,
 * `ShareOutcome`). `clientGone`: the client left before the answer was complete — whatever the
 * server was doing, it says nothing about the server (no share either way; a 429 still backs off).
 * A 404 is evidence only for a model the server may be expected to have: when its own
 * `GET /v1/models` is known and does not list `model`, the client asked for something the server
 * never claimed.
 */
export function answerShare(status: number, endpoint: Pick<Endpoint, 'servedModels'>, model: string | undefined, clientGone: boolean): ShareOutcome {
  if (clientGone) return 'none';
  if (status === 404 && model !== undefined && endpoint.servedModels !== undefined && !endpoint.servedModels.some((m) => m.id === model)) return 'none';
  return statusShare(status);
}

/** Longest `Retry-After` believed, in seconds (a server asking for more is backed off this long). */
const MAX_RETRY_AFTER_S = 3600;

/**
 * A `Retry-After` header (RFC 9110 §10.2.3: delay-seconds or an HTTP-date) in ms from `nowMs`
 * (epoch ms, for the date form); undefined when absent or unreadable.
 */
export function retryAfterMs(value: string | string[] | undefined, nowMs: number = Date.now()): number | undefined {
  const v = (Array.isArray(value) ? value[0] : value)?.trim();
  if (v === undefined || v === '') return undefined;
  if (/^\d+$/.test(v)) return Math.min(MAX_RETRY_AFTER_S, Number(v)) * 1000;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return undefined;
  return Math.min(MAX_RETRY_AFTER_S * 1000, Math.max(0, at - nowMs));
}
