import { isIP } from 'node:net';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import { planPair } from './pd.js';
import { handleInternals, type RequestHandle } from './request.js';
import type { Decision } from './request-types.js';

/**
 * The header by which an endpoint picker names a disaggregated request's prefill endpoint to the
 * decode pod's sidecar (llm-d's routing sidecar: pkg/common/routing/common.go, `ip:port`).
 */
export const PREFILLER_HEADER = 'x-prefiller-host-port';

/**
 * Longest value read: a bracketed IPv6 literal with a zone is at most ~60 characters and a port
 * 6 more; anything longer is not an endpoint key.
 */
const MAX_PREFILLER_VALUE_CHARS = 128;

/** An endpoint key as `x-prefiller-host-port` carries it: an IP literal and a port. */
export interface HostPort {
  /** The IP address, IPv6 without brackets and in its canonical (compressed, lower-case) form. */
  readonly host: string;
  readonly port: number;
}

/**
 * Reads `x-prefiller-host-port`: undefined when absent (the request runs on the local decode
 * server alone); one `ip:port` (IPv4, or IPv6 in brackets; optional surrounding whitespace, as
 * HTTP field values allow) otherwise. Anything else (several values or a list, a host name, a
 * port out of 1–65535, inner whitespace, over 128 characters) is `invalid_header` (400): the
 * header names an endpoint, never a URL, so nothing else is ever dialled.
 */
export function parsePrefillerHostPort(value: string | readonly string[] | undefined): HostPort | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') {
    if (value.length === 0) return undefined;
    if (value.length > 1) throw invalid('it was sent more than once');
    value = value[0] as string;
  }
  if (value.length > MAX_PREFILLER_VALUE_CHARS) throw invalid(`longer than ${MAX_PREFILLER_VALUE_CHARS} characters`);
  const v = value.trim();
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(v);
  if (m === null) throw invalid('expected one ip:port (IPv6 in brackets)');
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw invalid('port out of range');
  const v6 = m[1];
  if (v6 !== undefined) {
    if (isIP(v6) !== 6) throw invalid('not an IPv6 address');
    return { host: canonicalV6(v6), port };
  }
  const v4 = m[2] as string;
  if (isIP(v4) !== 4) throw invalid('not an IPv4 address');
  return { host: v4, port };
}

/**
 * The prefill endpoint a PD sidecar may send a request's prefill leg to: the one named by
 * `x-prefiller-host-port` among `members` (the decode pod's own pool) that can play the prefill
 * role (`prefill` or `both`). An allow-list, never an open relay: a well-formed key of no such
 * member (another pool's pod, a decode pod, a pod that just left) is `prefill_not_allowed` (403;
 * the endpoint picker and the sidecar disagree on the pool, or someone else set the header);
 * undefined when the header is absent. Throws `invalid_header` (400) for a malformed value.
 */
export function pinnedPrefill(value: string | readonly string[] | undefined, members: readonly Endpoint[]): Endpoint | undefined {
  const key = parsePrefillerHostPort(value);
  if (key === undefined) return undefined;
  for (const e of members) {
    if (e.port !== key.port || hostOf(e.address) !== key.host) continue;
    if (e.role === 'prefill' || e.role === 'both') return e;
    break;
  }
  throw new GatewayError('prefill_not_allowed', `${PREFILLER_HEADER} names ${key.host.includes(':') ? `[${key.host}]` : key.host}:${key.port}, which is not a prefill endpoint of this pool`);
}

/**
 * A decided request's pinned pair (a PD sidecar beside `decode`): the prefill named by
 * `x-prefiller-host-port`, validated against the pool's members (pinnedPrefill), and the PD plan
 * for it (SGLang: bootstrap fields naming that prefill; vLLM: the prefill body), as the Decision
 * the PD machine (PdRun) runs. Without the header, or when the pool is not a PD pool the gateway
 * speaks, the decision runs on `decode` alone. Call after `handle.decide()` (a sidecar calls
 * `handle.decidePinned`, which needs no decision before it). Throws
 * `invalid_header` (400) or `prefill_not_allowed` (403).
 */
export function pinnedPair(handle: RequestHandle, value: string | readonly string[] | undefined, decode: Endpoint): Decision {
  const h = handleInternals(handle);
  const prepared = h.prepared;
  if (prepared === undefined) throw new Error('pinnedPair() before decide() or decidePinned()');
  const members = prepared.backend.kind === 'pool' ? prepared.backend.members.endpoints : [];
  const prefill = pinnedPrefill(value, members);
  const plan = prefill === undefined || prefill === decode ? undefined : planPair(prepared, prefill, decode);
  return h.pin(decode, plan);
}

function invalid(why: string): GatewayError {
  return new GatewayError('invalid_header', `${PREFILLER_HEADER}: ${why}`);
}

function hostOf(address: string): string {
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  return isIP(bare) === 6 ? canonicalV6(bare) : bare;
}

/** An IPv6 literal in the WHATWG URL parser's canonical form (RFC 5952: compressed, lower case). */
function canonicalV6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}
