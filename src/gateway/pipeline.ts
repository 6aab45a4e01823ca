import type { Criticality } from '../api/types.js';
import type { RouteRequest } from '../config/route-table.js';
import type { BackendTarget, RuleConfig } from '../config/snapshot.js';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import type { Random } from '../core/weighted.js';
import { parseInferenceBody } from './body.js';
import { spliceModel } from './model-splice.js';
import { serviceRuntimeKey, type Runtime } from './runtime.js';

export type ResolvedBackend = Exclude<BackendTarget, { type: 'invalid' }>;

/** The outcome of the decision stages for one request: where to send what. */
export interface Decision {
  readonly backend: 'pool' | 'service';
  /** Pool or Service as `namespace/name`. */
  readonly backendName: string;
  /** Primary endpoint first, then fallbacks. */
  readonly endpoints: readonly Endpoint[];
  readonly scores: readonly number[];
  /** The body to forward (with `model` rewritten when the target differs); undefined if bodyless. */
  readonly body: Buffer | undefined;
  readonly model: string | undefined;
  readonly targetModel: string | undefined;
  readonly criticality: Criticality | undefined;
  readonly stream: boolean;
}

/**
 * The transport-neutral decision stages: route → backend → body → model → schedule. Both data
 * planes call these; none of them touches sockets.
 *
 * ```
 * route()      route_not_found 404
 * backend()    backend_not_found 500 (invalid ref, or a rule with no usable backends)
 * decide()     invalid_json / invalid_body / missing_model 400, no_ready_endpoint 503
 * ```
 */
export class Pipeline {
  readonly #random: Random;

  constructor(random: Random = Math.random) {
    this.#random = random;
  }

  route(runtime: Runtime, port: number, req: RouteRequest): RuleConfig {
    const rule = runtime.snapshot.listeners.get(port)?.routes.match(req);
    if (rule === undefined) throw new GatewayError('route_not_found', `no route matches ${req.method} ${req.path}`);
    return rule;
  }

  /** Draws a backendRef by weight. Gateway API: traffic drawn to an invalid backend gets 500. */
  backend(rule: RuleConfig): ResolvedBackend {
    const target = rule.backends.pick(this.#random);
    if (target === undefined) throw new GatewayError('backend_not_found', `route rule ${rule.id} has no backend with a non-zero weight`);
    if (target.type === 'invalid') throw new GatewayError('backend_not_found', `route rule ${rule.id}: ${target.reason}`);
    return target;
  }

  decide(runtime: Runtime, target: ResolvedBackend, body: Buffer | undefined, requestId: string): Decision {
    if (target.type === 'service') {
      const svc = runtime.services.get(serviceRuntimeKey(target.service, target.targetPort));
      const endpoints = svc?.endpoints ?? [];
      if (svc === undefined || endpoints.length === 0) throw new GatewayError('no_ready_endpoint', `Service ${target.service.key} has no ready endpoint`);
      const result = svc.profile.schedule({ requestId, model: '', targetModel: '', criticality: 'Standard' }, endpoints, this.#random);
      return { backend: 'service', backendName: target.service.key, ...result, body, model: undefined, targetModel: undefined, criticality: undefined, stream: false };
    }

    const pool = runtime.pools.get(target.pool.key);
    if (pool === undefined || pool.endpoints.length === 0) {
      throw new GatewayError('no_ready_endpoint', `InferencePool ${target.pool.key} has no ready endpoint`);
    }
    // Bodyless requests (GET /health, /v1/models passed to a pool…) are balanced without a model.
    if (body === undefined || body.length === 0) {
      const result = pool.profile.schedule({ requestId, model: '', targetModel: '', criticality: 'Standard' }, pool.endpoints, this.#random);
      return { backend: 'pool', backendName: pool.config.key, ...result, body, model: undefined, targetModel: undefined, criticality: undefined, stream: false };
    }

    const parsed = parseInferenceBody(body);
    const modelConfig = pool.config.models.get(parsed.model);
    // No InferenceModel: the model passes through at Standard criticality (never shed).
    const targetModel = modelConfig?.targets.pick(this.#random) ?? parsed.model;
    const criticality: Criticality = modelConfig?.criticality ?? 'Standard';
    let forwarded = parsed.raw;
    if (targetModel !== parsed.model) {
      forwarded = spliceModel(parsed.raw, targetModel) ?? Buffer.from(JSON.stringify({ ...parsed.json, model: targetModel }), 'utf8');
    }
    const result = pool.profile.schedule({ requestId, model: parsed.model, targetModel, criticality }, pool.endpoints, this.#random);
    return { backend: 'pool', backendName: pool.config.key, ...result, body: forwarded, model: parsed.model, targetModel, criticality, stream: parsed.stream };
  }
}
