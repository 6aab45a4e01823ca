import type { HeaderModifier } from '../api/types.js';
import type { HeaderEdit } from '../core/headers.js';
import { isControlHeader, isControlHeaderBehindEnvoy } from './control-headers.js';

type Incoming = Readonly<Record<string, string | string[] | undefined>>;

/** The edits of a Gateway API RequestHeaderModifier / ResponseHeaderModifier filter: set, add, remove. */
export function modifierEdits(m: HeaderModifier | null): HeaderEdit[] {
  if (m === null) return [];
  return [
    ...m.set.map((h): HeaderEdit => ({ op: 'set', name: h.name.toLowerCase(), value: h.value })),
    ...m.add.map((h): HeaderEdit => ({ op: 'add', name: h.name.toLowerCase(), value: h.value })),
    ...m.remove.map((name): HeaderEdit => ({ op: 'remove', name: name.toLowerCase() })),
  ];
}

/**
 * What the gateway changes in the request headers before the model server: its control headers
 * go (every `x-gateway-*` and llm-d's `x-llm-d-*` names of control-headers.ts: they are for the gateway), `content-length` follows the body actually sent
 * and `content-encoding` goes (the body is forwarded decoded),
 * the request id, `accept-encoding: identity` and `x-forwarded-for` are set, then the route's
 * RequestHeaderModifier applies.
 */
export function upstreamHeaderEdits(
  incoming: Incoming,
  opts: {
    readonly requestId: string;
    readonly clientAddress: string | undefined;
    readonly bodyLength: number | undefined;
    readonly modifier: HeaderModifier | null;
    /** Envoy forwards (the endpoint picker): the route-matching headers stay, X-Forwarded-For is Envoy's. */
    readonly forwarder?: 'gateway' | 'envoy';
  },
): HeaderEdit[] {
  const edits: HeaderEdit[] = [];
  const envoy = opts.forwarder === 'envoy';
  const removed = envoy ? isControlHeaderBehindEnvoy : isControlHeader;
  // The body goes on decoded (identity): its coding and length are the gateway's to state.
  for (const name of Object.keys(incoming)) if (removed(name) || name === 'content-length' || name === 'content-encoding') edits.push({ op: 'remove', name });
  edits.push({ op: 'set', name: 'x-request-id', value: opts.requestId });
  // The gateway reads and edits answers (usage, model names, error bodies): they must arrive
  // uncompressed. Identity is always acceptable to the client in turn (RFC 9110 §12.5.3).
  edits.push({ op: 'set', name: 'accept-encoding', value: 'identity' });
  if (opts.clientAddress !== undefined && !envoy) {
    const prior = incoming['x-forwarded-for'];
    edits.push({ op: 'set', name: 'x-forwarded-for', value: prior === undefined ? opts.clientAddress : `${String(prior)}, ${opts.clientAddress}` });
  }
  if (opts.bodyLength !== undefined) edits.push({ op: 'set', name: 'content-length', value: String(opts.bodyLength) });
  edits.push(...modifierEdits(opts.modifier));
  return edits;
}

/** What the gateway changes in the response headers: the request id, then the route's ResponseHeaderModifier. */
export function responseHeaderEdits(requestId: string, modifier: HeaderModifier | null): HeaderEdit[] {
  return [{ op: 'set', name: 'x-request-id', value: requestId }, ...modifierEdits(modifier)];
}
