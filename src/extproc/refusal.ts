import { asGatewayError, toOpenAIError } from '../core/errors.js';
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
 * A thrown value as a Refusal: a GatewayError with its status, OpenAI-style body and
 * `Retry-After`, anything else as a 500 `internal_error` that leaks nothing.
 *
 * Integration phase: the core gains one `GatewayError → {status, headers, body}` renderer shared by
 * every data plane; this function then calls it instead of building the answer here.
 */
export function refusalOf(err: unknown): Refusal {
  const e = asGatewayError(err);
  const headers: HeaderEdit[] = [{ op: 'set', name: 'content-type', value: 'application/json' }];
  if (e.retryAfterSeconds !== undefined) headers.push({ op: 'set', name: 'retry-after', value: String(e.retryAfterSeconds) });
  if (e.allow !== undefined) headers.push({ op: 'set', name: 'allow', value: e.allow });
  return { status: e.status, headers, body: JSON.stringify(toOpenAIError(e)), details: e.code };
}
