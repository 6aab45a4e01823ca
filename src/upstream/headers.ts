import type { IncomingHttpHeaders } from 'node:http';
import { applyHeaderEdits, type HeaderEdit, type HeaderMap } from '../core/headers.js';

/** Connection-scoped headers (RFC 9110 §7.6.1) that a proxy must not forward. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // Answered by the gateway itself (100 Continue): the upstream client does not support it, and
  // the model server gets the body at once anyway.
  'expect',
  // HTTP/2's connection-specific header (RFC 9113 §8.2.2).
  'http2-settings',
]);

/**
 * The headers of one HTTP hop that may travel to the next: hop-by-hop ones (and those the
 * `Connection` header names) go, and so do `host` (the upstream client sets its own) and HTTP/2
 * pseudo-headers (`:authority`, `:path`, …). `removed`: more names to leave out (the leading
 * `remove` edits of `upstreamRequestHeaders`).
 */
export function forwardable(incoming: Readonly<Record<string, string | string[] | undefined>>, removed: readonly HeaderEdit[] = NO_EDITS): HeaderMap {
  const out: HeaderMap = {};
  const connection = incoming['connection'];
  const dropByConnection = connection === undefined ? NO_TOKENS : connectionTokens(connection);
  for (const name of Object.keys(incoming)) {
    const value = incoming[name];
    if (value === undefined || HOP_BY_HOP.has(name) || dropByConnection.has(name) || name === 'host' || name.startsWith(':') || removed.some((e) => e.name === name)) continue;
    out[name] = value;
  }
  return out;
}

const NO_EDITS: readonly HeaderEdit[] = [];
const NO_TOKENS: ReadonlySet<string> = new Set();

/**
 * Headers for the upstream request: the client's forwardable headers with the core's edits
 * applied. The edits' leading removes (the gateway's control headers, the body's length) are
 * left out of the copy instead of deleted from it: a deleted property turns the object into a
 * slow dictionary for undici to read. The result is the same headers in the same order.
 */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, edits: readonly HeaderEdit[]): HeaderMap {
  let leading = 0;
  while (leading < edits.length && (edits[leading] as HeaderEdit).op === 'remove') leading++;
  return applyHeaderEdits(forwardable(incoming, leading === 0 ? NO_EDITS : edits.slice(0, leading)), edits, leading);
}

/**
 * Client headers a prefill/decode leg gets, as SGLang's model gateway forwards them (SMG
 * model_gateway/src/routers/http/pd_router.rs): credentials, request ids and trace context, plus what describes the body. Anything else a
 * client sends (cookies, its own caching or encoding preferences) stays at the gateway: a PD leg
 * is the gateway's own request to a server that answers the gateway, not the client.
 */
const PD_LEG_HEADERS = new Set(['authorization', 'content-type', 'accept', 'x-request-id', 'x-correlation-id', 'traceparent', 'tracestate', 'baggage', 'via']);

/** Headers for a prefill or decode leg: the client's, filtered as SGLang's router does, with the core's edits applied. */
export function pdLegRequestHeaders(incoming: IncomingHttpHeaders, edits: readonly HeaderEdit[]): HeaderMap {
  const out: HeaderMap = {};
  for (const [name, value] of Object.entries(forwardable(incoming))) {
    if (PD_LEG_HEADERS.has(name) || name.startsWith('x-request-id-')) out[name] = value;
  }
  return applyHeaderEdits(out, edits);
}

/** Response headers for the client: upstream's forwardable headers with the core's edits applied. */
export function clientResponseHeaders(upstream: Readonly<Record<string, string | string[] | undefined>>, edits: readonly HeaderEdit[]): HeaderMap {
  return applyHeaderEdits(forwardable(upstream), edits);
}

function connectionTokens(value: string | string[]): Set<string> {
  const joined = Array.isArray(value) ? value.join(',') : value;
  return new Set(joined.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
}
