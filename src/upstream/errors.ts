import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';

/** The first string `code` on an error or its causes (undici wraps socket errors). */
export function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 3 && e instanceof Error; depth++) {
    const code = (e as Error & { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = e.cause;
  }
  return undefined;
}

/** The connection was open and then closed or reset by the model server's side. */
const RESETS: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'ECONNABORTED']);

/**
 * The model server's answer broke HTTP itself: headers over undici's limit, a body longer or
 * shorter than its Content-Length, an answer undici's response checks refuse (`UND_ERR_RESPONSE`,
 * `UND_ERR_INFO`: a 1xx it cannot take), bytes the HTTP parser refuses (llhttp's `HPE_*` codes,
 * undici's `UND_ERR_HTTP_PARSER`).
 */
const MALFORMED_ANSWER: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_OVERFLOW', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_RES_EXCEEDED_MAX_SIZE', 'UND_ERR_HTTP_PARSER', 'UND_ERR_RESPONSE', 'UND_ERR_INFO']);

/**
 * Why the answer is not valid HTTP, or undefined when `err` is no such error. undici's
 * `HTTPParserError` (a bad header byte, a garbage status line, a broken chunk size…) often carries
 * no `code` at all (its llhttp code is looked up and may be missing), so its name counts too; the
 * reason is llhttp's own words ("Invalid header value char"), bounded.
 */
function malformedAnswer(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 3 && e instanceof Error; depth++) {
    const code = (e as Error & { code?: unknown }).code;
    if (e.name === 'HTTPParserError' || (typeof code === 'string' && (MALFORMED_ANSWER.has(code) || code.startsWith('HPE_')))) {
      const said = /\(([^()]{1,80})\)\s*$/.exec(e.message)?.[1];
      return typeof code === 'string' ? (said === undefined ? code : `${code}: ${said}`) : (said ?? 'refused by the HTTP parser');
    }
    e = e.cause;
  }
  return undefined;
}

/**
 * Undici refused the request before writing a byte: a method, target or header value it will not
 * send (`InvalidArgumentError`, `NotSupportedError`: `expect`, `upgrade`, control characters…).
 * The model server never saw it; the input came from the client.
 */
const REFUSED_BY_CLIENT_LIBRARY: ReadonlySet<string> = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);
/** The gateway built a request undici would not send (a body whose length is not the one declared): its own bug. */
const BUILT_WRONG: ReadonlySet<string> = new Set(['UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'UND_ERR_INVALID_RETURN_VALUE']);

/**
 * A failed upstream exchange as the error the client sees: `unforwardable_request` (400) when
 * undici refused the client's method, target or headers before sending anything, and
 * `internal_error` when the gateway built a request undici would not send (neither is the model
 * server's doing: gateway/blame.ts never counts them against it); `upstream_reset` when an open
 * connection was closed under the request (or its compressed answer could not be decoded),
 * `upstream_invalid_response` when a compressed answer decoded past its bounds (decode.ts) or the
 * answer is not valid HTTP (oversized headers, a wrong length, bytes the parser refuses),
 * `upstream_unavailable` when the endpoint could not be reached at all.
 */
export function upstreamFailure(err: unknown, endpoint: Endpoint): GatewayError {
  const code = errorCode(err);
  if (code === 'ERR_DECODED_TOO_LARGE') {
    return new GatewayError('upstream_invalid_response', `the compressed answer of model server ${endpoint.name} was refused: ${(err as Error).message}`, { cause: err });
  }
  if (code !== undefined && REFUSED_BY_CLIENT_LIBRARY.has(code)) {
    const why = err instanceof Error ? err.message.slice(0, 200) : 'refused';
    return new GatewayError('unforwardable_request', `the request cannot be forwarded to a model server: ${why}`, { cause: err });
  }
  if (code !== undefined && BUILT_WRONG.has(code)) return new GatewayError('internal_error', 'internal gateway error', { cause: err });
  const malformed = malformedAnswer(err);
  if (malformed !== undefined) {
    return new GatewayError('upstream_invalid_response', `model server ${endpoint.name} sent an answer that is not valid HTTP (${malformed})`, { cause: err });
  }
  if (code !== undefined && code.startsWith('Z_')) {
    return new GatewayError('upstream_reset', `the answer of model server ${endpoint.name} could not be decoded (${code})`, { cause: err });
  }
  if (code !== undefined && RESETS.has(code)) {
    return new GatewayError('upstream_reset', `model server ${endpoint.name} closed the connection (${code})`, { cause: err });
  }
  return new GatewayError('upstream_unavailable', `model server ${endpoint.name} is unreachable (${code ?? 'error'})`, { cause: err });
}
