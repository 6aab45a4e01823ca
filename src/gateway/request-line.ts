import { GatewayError } from '../core/errors.js';

/**
 * Requests no model server serves, answered by the gateway itself before routing: never
 * forwarded, so never a model server's failure (docs/errors.md, "Requests answered at the
 * gateway").
 */

/** The methods the gateway forwards, for `Allow` (an OpenAI-compatible API uses GET, POST and DELETE). */
export const FORWARDED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';

/** An answer the gateway gives itself: a status with headers and no body. */
export interface OwnAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** Characters of a request target the upstream HTTP client (undici) refuses to send: controls, space, DEL, beyond Latin-1. */
const UNSENDABLE_TARGET = /[^\u0021-\u007e\u0080-\u00ff]/;
/** RFC 3986 scheme, at the start of an absolute-form target. */
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/**
 * What to do with a request line (`method`, the raw request target) before anything else:
 * undefined to go on (an origin-form target, `/…`, or an absolute-form `http(s)://…` one), an
 * OwnAnswer (`OPTIONS *`: 200 with `Allow`, RFC 9110 §9.3.7's "server in general"), or throws:
 * `method_not_allowed` 405 with `Allow` for CONNECT (a tunnel: the gateway is no forward proxy)
 * and TRACE (it would echo the request, credentials included: cross-site tracing);
 * `invalid_request_target` 400 for an asterisk-form target on another method, an absolute-form
 * target of another scheme (`ftp:`, `file:`, …), an authority-form one, or a target with
 * characters no HTTP/1.1 request line may carry (an HTTP/2 `:path` can).
 */
export function requestLineAnswer(method: string, target: string): OwnAnswer | undefined {
  const m = method.toUpperCase();
  if (m === 'CONNECT' || m === 'TRACE') {
    throw new GatewayError('method_not_allowed', `the gateway does not serve ${m} requests; allowed: ${FORWARDED_METHODS}`, { allow: FORWARDED_METHODS });
  }
  if (target === '*') {
    if (m === 'OPTIONS') return { status: 200, headers: { allow: FORWARDED_METHODS } };
    throw new GatewayError('invalid_request_target', `the asterisk-form target "*" is only for OPTIONS (RFC 9112 §3.2.4), not ${m}`);
  }
  if (UNSENDABLE_TARGET.test(target)) throw new GatewayError('invalid_request_target', 'the request target has characters a request line may not carry (RFC 3986)');
  if (target.startsWith('/')) return undefined;
  const scheme = SCHEME.exec(target)?.[1]?.toLowerCase();
  if (scheme === 'http' || scheme === 'https') return undefined;
  // `host:443` (authority-form) also starts like a scheme: a port is all digits.
  if (scheme !== undefined && !/^\d*$/.test(target.slice(scheme.length + 1))) {
    throw new GatewayError('invalid_request_target', `absolute-form targets of scheme "${scheme.slice(0, 32)}" are not served; only http and https`);
  }
  throw new GatewayError('invalid_request_target', 'the request target must be a path ("/…") or an http(s) URL');
}

/**
 * The refusal of an HTTP/1 request line's version other than 1.0 and 1.1: 505 (RFC 9110 §15.6.6).
 * Node's parser reads any one-digit `HTTP/x.y` (`GET / HTTP/2.0` reached the handler and was
 * served as HTTP/1.1), so the version it read is judged here; HTTP/2 arrives on its own framing.
 */
export function httpVersionProblem(major: number, minor: number): GatewayError | undefined {
  if (major === 1 && (minor === 0 || minor === 1)) return undefined;
  return new GatewayError('http_version_not_supported', `HTTP/${major}.${minor} is not supported on an HTTP/1 connection; send HTTP/1.1 (or HTTP/2 with its connection preface)`);
}
