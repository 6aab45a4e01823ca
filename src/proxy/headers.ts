import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { HeaderModifier } from '../api/types.js';

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
 * Headers for the upstream request: the client's, minus hop-by-hop and `host` (the upstream client
 * sets it), minus the gateway's own `x-gateway-*` control headers (they are for the gateway, not
 * the model server), plus request id and forwarding headers, with the route's modifier applied.
 */
export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  opts: { requestId: string; clientAddress: string | undefined; bodyLength: number | undefined; modifier: HeaderModifier | null },
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const dropByConnection = connectionTokens(incoming['connection']);
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || dropByConnection.has(name)) continue;
    if (name === 'host' || name === 'content-length' || name.startsWith('x-gateway-')) continue;
    out[name] = value;
  }
  out['x-request-id'] = opts.requestId;
  if (opts.clientAddress !== undefined) {
    const prior = incoming['x-forwarded-for'];
    out['x-forwarded-for'] = prior === undefined ? opts.clientAddress : `${String(prior)}, ${opts.clientAddress}`;
  }
  if (opts.bodyLength !== undefined) out['content-length'] = String(opts.bodyLength);
  if (opts.modifier !== null) applyModifier(out, opts.modifier);
  return out;
}

/** Response headers for the client: upstream's, minus hop-by-hop, with the route's modifier applied. */
export function clientResponseHeaders(
  upstream: Readonly<Record<string, string | string[] | undefined>>,
  requestId: string,
  modifier: HeaderModifier | null,
): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  const dropByConnection = connectionTokens(upstream['connection']);
  for (const [name, value] of Object.entries(upstream)) {
    if (value === undefined || HOP_BY_HOP.has(name) || dropByConnection.has(name)) continue;
    out[name] = value;
  }
  out['x-request-id'] = requestId;
  if (modifier !== null) applyModifier(out, modifier);
  return out;
}

function connectionTokens(value: string | string[] | undefined): Set<string> {
  if (value === undefined) return new Set();
  const joined = Array.isArray(value) ? value.join(',') : value;
  return new Set(joined.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== ''));
}

function applyModifier(headers: Record<string, string | string[]>, m: HeaderModifier): void {
  for (const { name, value } of m.set) headers[name.toLowerCase()] = value;
  for (const { name, value } of m.add) {
    const key = name.toLowerCase();
    const prior = headers[key];
    headers[key] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value];
  }
  for (const name of m.remove) delete headers[name.toLowerCase()];
}
