import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';

/**
 * What a data plane may pass to `RequestHandle.decide` beside the body.
 *
 * `only`: the endpoint keys (`ip:port`, Endpoint.key) the picker must choose from. Envoy sends
 * them as the subset hint (the Inference Extension's endpoint picker protocol: filter metadata
 * `envoy.lb.subset_hint`, key `x-gateway-destination-endpoint-subset`, exact `ip:port` strings).
 * Undefined means no restriction; an empty set, or one naming no ready endpoint of the pool, is
 * 503 `no_ready_endpoint`, as the protocol asks.
 */
export interface DecideOptions {
  readonly only?: ReadonlySet<string>;
}

/**
 * The candidates whose key is in `only` (all of them when `only` is undefined). Throws
 * `no_ready_endpoint` when the subset leaves none; `backend` names the pool in the message.
 */
export function restrictTo(candidates: readonly Endpoint[], only: ReadonlySet<string> | undefined, backend: string): readonly Endpoint[] {
  if (only === undefined) return candidates;
  if (only.size === 0) throw new GatewayError('no_ready_endpoint', `the endpoint subset for ${backend} is empty`);
  const chosen = candidates.filter((e) => only.has(e.key));
  if (chosen.length === 0) throw new GatewayError('no_ready_endpoint', `no ready endpoint of ${backend} is in the endpoint subset (${only.size} named)`);
  return chosen;
}
