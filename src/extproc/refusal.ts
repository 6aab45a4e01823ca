import { asGatewayError } from '../core/errors.js';
import { errorResponse } from '../gateway/index.js';
import type { HeaderEdit } from '../core/headers.js';

/**
 * An answer the picker gives the client itself, instead of routing: sent as Envoy's
 * `immediate_response` (status, headers, body), which Envoy returns as is.
 */
export interface Refusal {
  /** HTTP status, 200–599. */
  readonly status: number;
  /** Response headers (names lower-case); `content-type` is the caller's to set. */
  readonly headers: readonly HeaderEdit[];
  readonly body: Buffer | string;
  /** For Envoy's access log (`%RESPONSE_CODE_DETAILS%`): the stable error code. */
  readonly details?: string;
}

/**
 * A thrown value as a Refusal: a GatewayError with the status, OpenAI-style body and headers
 * (`Retry-After`, `Allow`) the core renders for every data plane (errorResponse), so a client
 * sees the same answer from the picker as from the standalone proxy; anything else as a 500
 * `internal_error` that leaks nothing. `requestId`: the request's `x-request-id`, echoed as the
 * standalone proxy does (unknown when the stream failed before a request began).
 */
export function refusalOf(err: unknown, requestId?: string): Refusal {
  const e = asGatewayError(err);
  const answer = errorResponse(e, requestId ?? '');
  const headers: HeaderEdit[] = [];
  // Envoy sets the length of an immediate_response itself; the request id only when the request has one.
  for (const [name, value] of Object.entries(answer.headers)) if (name !== 'content-length' && (name !== 'x-request-id' || requestId !== undefined)) headers.push({ op: 'set', name, value });
  return { status: answer.status, headers, body: answer.body, details: e.code };
}
