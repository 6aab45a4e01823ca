/**
 * Every refusal the gateway makes has a stable code, an HTTP status and an OpenAI-style body.
 * The table below is the single place codes are defined; docs/errors.md lists them for users.
 * Match on `code`, never on message text. Retired codes are never reused.
 */

export interface ErrorSpec {
  readonly status: number;
  /** OpenAI `error.type`. */
  readonly type: string;
}

export const ERROR_CODES = {
  invalid_json: { status: 400, type: 'invalid_request_error' },
  invalid_body: { status: 400, type: 'invalid_request_error' },
  missing_model: { status: 400, type: 'invalid_request_error' },
  invalid_path: { status: 400, type: 'invalid_request_error' },
  path_too_long: { status: 414, type: 'invalid_request_error' },
  route_not_found: { status: 404, type: 'not_found_error' },
  model_not_found: { status: 404, type: 'not_found_error' },
  method_not_allowed: { status: 405, type: 'invalid_request_error' },
  /** The request target is not one a model server serves (`*` beyond OPTIONS, another scheme, authority-form). */
  invalid_request_target: { status: 400, type: 'invalid_request_error' },
  /** The request has a method, target or header the upstream HTTP client refuses to send. */
  unforwardable_request: { status: 400, type: 'invalid_request_error' },
  body_too_large: { status: 413, type: 'invalid_request_error' },
  /** Request headers past the endpoint picker's bounds (their count or total size). */
  request_headers_too_large: { status: 431, type: 'invalid_request_error' },
  /** A request `Content-Encoding` the gateway does not decode. */
  unsupported_content_encoding: { status: 415, type: 'invalid_request_error' },
  unsupported_transfer_encoding: { status: 501, type: 'invalid_request_error' },
  /** A request body that its `Content-Encoding` does not describe (corrupt, truncated, or not compressed). */
  invalid_content_encoding: { status: 400, type: 'invalid_request_error' },
  /** Bytes Node's HTTP/1.1 parser refuses (a folded or malformed header line, a bad chunk size or Content-Length, bare LF line ends, …). */
  malformed_request: { status: 400, type: 'invalid_request_error' },
  /** An HTTP version other than 1.0 and 1.1 on an HTTP/1 connection (HTTP/2 is its own framing, chosen by its preface). */
  http_version_not_supported: { status: 505, type: 'invalid_request_error' },
  /** An `Expect` other than `100-continue` (RFC 9110 §10.1.1). */
  expectation_failed: { status: 417, type: 'invalid_request_error' },
  /** A request (its headers, or headers and body) that did not arrive within the listener's bound. */
  request_timeout: { status: 408, type: 'invalid_request_error' },
  /** No `Host` on HTTP/1.1, more than one, one that is not a host and port, or one that contradicts the request target's authority. */
  invalid_host: { status: 400, type: 'invalid_request_error' },
  /** A control header the gateway reads (`x-gateway-model-name-rewrite`) has a value it does not accept. */
  invalid_header: { status: 400, type: 'invalid_request_error' },
  /** The client stopped sending its body (idle between reads), or took longer than the upload bound. */
  request_body_timeout: { status: 408, type: 'invalid_request_error' },
  /** The gateway already holds as many request bodies as its memory budget allows. */
  body_budget_exhausted: { status: 503, type: 'service_unavailable_error' },
  /** A PD sidecar was asked (`x-prefiller-host-port`) to send a prefill leg to an endpoint that is not a prefill endpoint of its pool. */
  prefill_not_allowed: { status: 403, type: 'permission_error' },
  backend_not_found: { status: 500, type: 'server_error' },
  request_shed: { status: 429, type: 'rate_limit_error' },
  queue_full: { status: 429, type: 'rate_limit_error' },
  queue_timeout: { status: 503, type: 'service_unavailable_error' },
  no_ready_endpoint: { status: 503, type: 'service_unavailable_error' },
  /** An endpoint picker was asked for a pool its configuration does not hold (Envoy routed to a pool the gateway does not serve). */
  pool_not_found: { status: 503, type: 'service_unavailable_error' },
  upstream_unavailable: { status: 502, type: 'upstream_error' },
  upstream_reset: { status: 502, type: 'upstream_error' },
  /** The model server's answer broke a bound the gateway holds servers to (a compressed answer decoding past its limits). */
  upstream_invalid_response: { status: 502, type: 'upstream_error' },
  upstream_event_too_large: { status: 502, type: 'upstream_error' },
  upstream_timeout: { status: 504, type: 'timeout_error' },
  /** A disaggregated request's prefill and decode legs did not complete their KV handshake in time. */
  kv_handshake_timeout: { status: 502, type: 'upstream_error' },
  /** A request came back to a pd-sidecar it already passed (a `--decode-url` pointing at a sidecar). */
  forwarding_loop: { status: 508, type: 'server_error' },
  gateway_shutting_down: { status: 503, type: 'service_unavailable_error' },
  internal_error: { status: 500, type: 'server_error' },
  /** Never sent (nobody is listening): the status logged when the client left first (nginx's 499). */
  client_gone: { status: 499, type: 'client_closed_request' },
  /** Never sent (the client reads nothing): logged when the gateway ended a request whose client stopped reading. */
  client_stalled: { status: 499, type: 'client_closed_request' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly type: string;
  /** Seconds for a `Retry-After` header, when the client may retry later. */
  readonly retryAfterSeconds: number | undefined;
  /** The methods for an `Allow` header (a 405 must send one, RFC 9110 §15.5.6). */
  readonly allow: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfterSeconds?: number; allow?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.type = ERROR_CODES[code].type;
    this.retryAfterSeconds = options?.retryAfterSeconds;
    this.allow = options?.allow;
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}

/** Any thrown value as a GatewayError; unknown failures become `internal_error` without leaking details. */
export function asGatewayError(err: unknown): GatewayError {
  if (isGatewayError(err)) return err;
  return new GatewayError('internal_error', 'internal gateway error', { cause: err });
}

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: ErrorCode };
}

export function toOpenAIError(err: GatewayError): OpenAIErrorBody {
  return { error: { message: err.message, type: err.type, param: null, code: err.code } };
}
