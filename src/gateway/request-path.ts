import { GatewayError } from '../core/errors.js';

/**
 * Request targets (RFC 9112 §3.2) made canonical before anything matches on them, the way Envoy
 * does with `normalize_path`, `merge_slashes` and `path_with_escaped_slashes_action:
 * REJECT_REQUEST` (Envoy Gateway, the Gateway API implementation it follows, sets the first
 * two by default): so that
 * `/v1/../admin`, `/v1/%2e%2e/metrics` or `/v1//x` match the route they mean, and the model server
 * receives the path the gateway routed on. Both data planes call it (the standalone proxy on its
 * request line, the ext_proc server on the `:path` header).
 */

/**
 * Longest request target accepted, in bytes: nginx's default `large_client_header_buffers`
 * (8 KiB, over which a request line gets 414). OpenAI paths are a few dozen bytes.
 */
export const MAX_REQUEST_TARGET_BYTES = 8 * 1024;

/** A normalised request target. */
export interface RequestTarget {
  /** The canonical path: what routes match on, and what is forwarded. */
  readonly path: string;
  /** The query string as received (without `?`); undefined when the target has none. */
  readonly query: string | undefined;
  /** What to send upstream: `path`, then `?query` when there was one. */
  readonly target: string;
}

/** RFC 3986 §2.3 unreserved characters: percent-encoded, they mean themselves and are decoded. */
function unreserved(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

function invalid(why: string): GatewayError {
  return new GatewayError('invalid_path', `invalid request path: ${why}`);
}

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/**
 * Percent-escapes checked and made canonical (RFC 3986 §6.2.2): unreserved characters decoded
 * (so `%2e` is a dot before dot segments are removed), other escapes upper-cased. Encoded `/`
 * and `\` are refused (they would split or join segments differently for the gateway and the
 * server), so are control bytes raw or encoded (NUL included), a raw `\` (not a URI character;
 * some servers read it as `/`) and malformed escapes.
 */
function canonicalEscapes(path: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) throw invalid('control character');
    if (c === 0x5c) throw invalid('backslash');
    if (c !== 0x25) continue;
    const hi = hex(path.charCodeAt(i + 1));
    const lo = hex(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) throw invalid('malformed percent-encoding');
    const byte = hi * 16 + lo;
    if (byte === 0x2f || byte === 0x5c) throw invalid('encoded slash or backslash (%2F, %5C)');
    if (byte < 0x20 || byte === 0x7f) throw invalid('encoded control character');
    out += path.slice(from, i) + (unreserved(byte) ? String.fromCharCode(byte) : `%${path.slice(i + 1, i + 3).toUpperCase()}`);
    from = i + 3;
    i += 2;
  }
  return from === 0 ? path : out + path.slice(from);
}

/**
 * RFC 3986 §5.2.4 remove_dot_segments for an absolute path: `.` segments go, `..` removes the
 * segment before it, and never climbs above the root (`/..` is `/`). A path ending in a dot
 * segment keeps its trailing slash (`/a/b/..` is `/a/`).
 */
export function removeDotSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i] as string;
    const last = i === segments.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  return `/${out.join('/')}`;
}

/**
 * A path that normalisation leaves as it is (what clients send almost always): non-empty
 * segments of unreserved and sub-delim characters, none of them `.` or `..`, no escapes, no
 * backslash. One test instead of the three passes.
 */
const CANONICAL_PATH = /^(?:\/(?!\.\.?(?:\/|$))[A-Za-z0-9._~!$&'()*+,;=:@-]+)*\/?$/;

/**
 * The normalised form of a request target as it came on the request line (or in `:path`):
 * origin form `/path?query`, or absolute form `scheme://authority/path?query` (its path is
 * taken; what the scheme means is for the caller to judge). In Envoy's order: escapes made
 * canonical, dot segments removed, adjacent slashes merged. The query is passed on untouched. The
 * asterisk form `*` is returned as it is (only `OPTIONS` uses it; no route serves it).
 *
 * Throws GatewayError: `path_too_long` (414) over MAX_REQUEST_TARGET_BYTES; `invalid_path` (400)
 * for a target that is not a path, a fragment (`#`, never sent by a conforming client; Envoy
 * refuses it by default), and what `canonicalEscapes` refuses.
 */
export function normalizeRequestTarget(raw: string): RequestTarget {
  if (Buffer.byteLength(raw, 'latin1') > MAX_REQUEST_TARGET_BYTES) {
    throw new GatewayError('path_too_long', `the request target is longer than ${MAX_REQUEST_TARGET_BYTES} bytes`);
  }
  if (raw === '*') return { path: raw, query: undefined, target: raw };
  let t = raw;
  const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(t);
  if (absolute !== null) {
    t = t.slice(absolute[0].length);
    if (!t.startsWith('/')) t = `/${t}`;
  }
  if (!t.startsWith('/')) throw invalid('the target must be a path beginning with "/"');
  if (t.includes('#')) throw invalid('fragment (#) in the request target');
  const q = t.indexOf('?');
  const rawPath = q === -1 ? t : t.slice(0, q);
  const query = q === -1 ? undefined : t.slice(q + 1);
  const path = CANONICAL_PATH.test(rawPath) ? rawPath : removeDotSegments(canonicalEscapes(rawPath)).replace(/\/{2,}/g, '/');
  return { path, query, target: query === undefined ? path : `${path}?${query}` };
}

/** `normalizeRequestTarget` without throwing: the target, or the error that refuses it. */
export function parseRequestTarget(raw: string): RequestTarget | GatewayError {
  try {
    return normalizeRequestTarget(raw);
  } catch (err) {
    if (err instanceof GatewayError) return err;
    throw err;
  }
}
