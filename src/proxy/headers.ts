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
]);

/**
 * The headers of one HTTP hop that may travel to the next: hop-by-hop ones (and those the
 * `Connection` header names) go, and so does `host` (the upstream client sets its own).
 */
export function forwardable(incoming: Readonly<Record<string, string | string[] | undefined>>): HeaderMap {
  const out: HeaderMap = {};
  const dropByConnection = connectionTokens(incoming['connection']);
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || dropByConnection.has(name) || name === 'host') continue;
    out[name] = value;
  }
  return out;
}

/** Headers for the upstream request: the client's forwardable headers with the core's edits applied. */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, edits: readonly HeaderEdit[]): HeaderMap {
  return applyHeaderEdits(forwardable(incoming), edits);
}

/** Response headers for the client: upstream's forwardable headers with the core's edits applied. */
export function clientResponseHeaders(upstream: Readonly<Record<string, string | string[] | undefined>>, edits: readonly HeaderEdit[]): HeaderMap {
  return applyHeaderEdits(forwardable(upstream), edits);
}

function connectionTokens(value: string | string[] | undefined): Set<string> {
  if (value === undefined) return new Set();
  const joined = Array.isArray(value) ? value.join(',') : value;
  return new Set(joined.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
}
