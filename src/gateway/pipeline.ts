import type { Criticality } from '../api/types.js';
import type { RouteRequest } from '../config/route-table.js';
import { BASE_MODEL_NAME_HEADER, MODEL_NAME_HEADER, type BackendTarget, type PoolConfig, type RuleConfig } from '../config/snapshot.js';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import type { Random } from '../core/weighted.js';
import type { Ticket } from '../flowcontrol/admission.js';
import { estimateTokens, promptOf } from '../prefix/prompt-text.js';
import { CycleState } from '../scheduling/cycle-state.js';
import type { SchedulingRequest, SchedulingResult } from '../scheduling/types.js';
import { chooseBackend, type PoolModels } from './backend-choice.js';
import { parseInferenceBody, type InferenceBody } from './body.js';
import { clientWantsUsage, includeUsageOptions } from './include-usage.js';
import { editTopLevel } from './json-scan.js';
import { resolveTarget, type ModelTarget, type TargetSource } from './model-target.js';
import { CONTROL_HEADERS, controlHeader, fairnessId } from './control-headers.js';
import { GATEWAY_OWNED_FIELDS } from './owned-fields.js';
import { emptyBodyError, needsInferenceBody, refuseUnreadableBody } from './inference-paths.js';
import { acceptStreamUsage, poolAcceptsStreamUsage, streamUsageSetting } from './stream-usage.js';
import { restrictTo } from './subset.js';
import { serviceRuntimeKey, type BackendRuntime, type PoolRuntime, type Runtime } from './runtime.js';

export type ResolvedBackend = Exclude<BackendTarget, { type: 'invalid' }>;

/** Header naming an InferenceObjective of the pool (its priority sets the request's band). */
export const OBJECTIVE_HEADER = CONTROL_HEADERS.objective[0];

/** A request after its body was read and its model resolved: what admission and scheduling need. */
export interface Prepared {
  /** The pool or Service the request goes to. */
  readonly backend: BackendRuntime;
  /** Pool or Service as `namespace/name`. */
  readonly backendName: string;
  /** The body to forward (model rewritten, usage requested, gateway-owned fields removed: owned-fields.ts); undefined if bodyless. */
  readonly body: Buffer | undefined;
  readonly model: string | undefined;
  readonly targetModel: string | undefined;
  /** The model name the answers carry (model-target.ts); undefined when the body has none. */
  readonly answerModel: string | undefined;
  /** What chose `targetModel`, and the InferenceModelRewrite (name, generic or exact) when one did. */
  readonly targetSource: TargetSource;
  readonly rewrite: { readonly name: string; readonly generic: boolean } | undefined;
  readonly criticality: Criticality | undefined;
  /** The InferenceObjective named by the request header, when it named a known one. */
  readonly objective: string | undefined;
  /** The request's fairness id (control-headers.ts), when it sent one. */
  readonly fairnessId?: string;
  readonly stream: boolean;
  /** The gateway asked for the usage event; it must be removed before the client sees it. */
  readonly stripUsage: boolean;
  /**
   * A stream that will carry no usage event (the client did not ask and the runtime cannot be
   * asked): the gateway counts the answer's chunks instead.
   */
  readonly countTokens: boolean;
  /**
   * Set when whether to ask for usage depends on the endpoints the request may go to (their
   * dialects: stream-usage.ts): the body with (`true`) or without the usage request.
   * `Pipeline.forEndpoints` applies it once they are chosen.
   */
  readonly usageBody?: (ask: boolean) => Buffer;
  readonly request: SchedulingRequest;
}

/** InferenceObjective priority → band: negative is Sheddable, positive Critical, 0 Standard. */
function bandOf(priority: number): Criticality {
  return priority < 0 ? 'Sheddable' : priority > 0 ? 'Critical' : 'Standard';
}

function schedulingRequest(fields: Omit<SchedulingRequest, 'promptText' | 'state'>, text: string | undefined): SchedulingRequest {
  return { ...fields, state: new CycleState(), promptText: () => text };
}

/**
 * The transport-neutral decision stages: route → backend → prepare → admit → schedule. The
 * request handle (request.ts) runs them for every data plane; none of them touches sockets.
 *
 * ```
 * route()      route_not_found 404; on model-header routes, the body's 400 when a rule would
 *              have matched a readable body (invalid_json / invalid_body / missing_model)
 * backend()    backend_not_found 500 (invalid ref, or a rule with no usable backends),
 *              model_not_found 404 (no backend of the rule serves the model)
 * prepare()    invalid_json / invalid_body / missing_model (also an inference request without a
 *              body) / invalid_header 400, no_ready_endpoint 503
 * admit()      request_shed / queue_full 429, queue_timeout 503 (with Retry-After)
 * schedule()   no_ready_endpoint 503; forEndpoints() then settles the usage request by the
 *              chosen endpoints' dialects
 * ```
 */
export class Pipeline {
  readonly #random: Random;

  constructor(random: Random = Math.random) {
    this.#random = random;
  }

  /**
   * The matching rule. When the port's routes match on `X-Gateway-Model-Name` (model-based
   * routing), the header is filled from the body's `model` first, replacing any the client sent,
   * and `X-Gateway-Base-Model-Name` with the adapter's base model when the pods list it; `parsed`
   * is the body parsed for it (undefined when it is not an inference body).
   */
  route(runtime: Runtime, port: number, req: RouteRequest, body?: Buffer, baseModelOf?: (model: string) => string | undefined): { rule: RuleConfig; parsed: InferenceBody | undefined } {
    const listener = runtime.snapshot.listeners.get(port);
    let parsed: InferenceBody | undefined;
    if (listener?.matchesModelHeaders === true) {
      const headers: Record<string, string | string[] | undefined> = { ...req.headers };
      delete headers[MODEL_NAME_HEADER];
      delete headers[BASE_MODEL_NAME_HEADER];
      parsed = tryParse(body);
      if (parsed !== undefined) {
        headers[MODEL_NAME_HEADER] = parsed.model;
        const base = baseModelOf?.(parsed.model);
        if (base !== undefined) headers[BASE_MODEL_NAME_HEADER] = base;
      }
      req = { ...req, headers };
    }
    const rule = listener?.routes.match(req);
    if (rule === undefined) {
      // The model headers come from the body: when a rule matching on them would have matched, a
      // body the gateway could not read is the reason, and the client gets its 400.
      if (listener?.matchesModelHeaders === true && parsed === undefined && listener.routes.matchGiven(req, MODEL_HEADERS) !== undefined) {
        refuseUnreadableBody(req.method, req.path, body);
      }
      throw new GatewayError('route_not_found', `no route matches ${req.method} ${req.path}`);
    }
    return { rule, parsed };
  }

  /**
   * The body parsed for the backend choice, when the rule reaches an InferencePool (a Service
   * backend is plain balancing: its body is never read); undefined when it is no inference body
   * (`prepare` refuses it then with its 400). `prepare` reuses it, so a body is parsed once.
   */
  parseForChoice(rule: RuleConfig, body: Buffer | undefined): InferenceBody | undefined {
    return rule.backends.items.some((b) => b.type === 'pool') ? tryParse(body) : undefined;
  }

  /**
   * Draws a backendRef by weight, among those that serve `model` when the gateway knows
   * (backend-choice.ts; `pods`: what each pool's pods list). Gateway API: traffic drawn to an
   * invalid backend gets 500. Throws `model_not_found` when no backend of the rule serves `model`.
   */
  backend(rule: RuleConfig, model?: string, pods: PoolModels = NO_POOL_MODELS): ResolvedBackend {
    const target = chooseBackend(rule, model, pods, this.#random);
    if (target === undefined) throw new GatewayError('backend_not_found', `route rule ${rule.id} has no backend with a non-zero weight`);
    if (target.type === 'invalid') throw new GatewayError('backend_not_found', `route rule ${rule.id}: ${target.reason}`);
    return target;
  }

  /**
   * Resolves the backend and reads the body: model, target model, criticality, what to forward.
   * `path` and `method` are the request's (what usage handling applies depends on the route; an
   * inference request must have a body: inference-paths.ts); `parsed` is the body already parsed
   * for model-based routing, so it is parsed once.
   */
  prepare(runtime: Runtime, target: ResolvedBackend, body: Buffer | undefined, headers: Readonly<Record<string, string | string[] | undefined>>, requestId: string, path = '/v1/completions', parsed?: InferenceBody, pinned = false, method = 'POST'): Prepared {
    const backend = this.#resolve(runtime, target);
    const plain = (): Prepared => ({
      backend,
      backendName: backend.config.key,
      body,
      model: undefined,
      targetModel: undefined,
      answerModel: undefined,
      targetSource: 'none',
      rewrite: undefined,
      criticality: undefined,
      objective: undefined,
      stream: false,
      stripUsage: false,
      countTokens: false,
      request: schedulingRequest({ requestId, model: '', targetModel: '', criticality: 'Standard', promptTokens: 0, body: undefined }, undefined),
    });
    // Services are plain balancing; bodyless requests (GET /health, …) are balanced without a
    // model, but an inference request (inference-paths.ts) without a body is the client's 400.
    if (backend.kind === 'service') return plain();
    if (body === undefined || body.length === 0) {
      if (needsInferenceBody(method, path)) throw emptyBodyError(method, path);
      return plain();
    }

    const inference = parsed?.raw === body ? parsed : parseInferenceBody(body);
    return this.#preparePool(backend, inference, headers, requestId, path, pinned);
  }

  /**
   * `pinned`: a PD sidecar's request, already prepared by the endpoint picker in front of it (the
   * model step, the usage request and the priority are the picker's, and the answer goes back
   * through it): the body's model is the target as it stands, nothing is asked or stripped again.
   */
  #preparePool(backend: PoolRuntime, parsed: InferenceBody, headers: Readonly<Record<string, string | string[] | undefined>>, requestId: string, path: string, pinned: boolean): Prepared {
    const pool = backend.config;
    const modelConfig = pool.models.get(parsed.model);
    // No InferenceModel: Standard criticality (never shed); the target from a rewrite rule, the
    // header, or the client's name unchanged.
    const chosen = pinned ? asSent(parsed.model) : resolveTarget(pool, parsed.model, modelConfig, controlHeader(headers, 'modelRewrite')?.value, this.#random);
    const targetModel = chosen.target;
    const { criticality, objective } = pinned ? { criticality: undefined, objective: undefined } : this.#criticality(pool, modelConfig?.criticality, controlHeader(headers, 'objective')?.value);
    const flow = fairnessId(headers);

    // One edit of the client's bytes: the target model, the usage request, and no field that only
    // the gateway may set (owned-fields.ts); keys are matched by decoded name and unique (body.ts),
    // so the server reads what the gateway read.
    // Whether to ask for usage is the answering endpoints' to say (their dialect, configured or
    // detected): guessed here from the pool's configured runtime, settled by forEndpoints once they
    // are chosen. Not known is not asked (stream-usage.ts).
    const unasked = parsed.stream && !clientWantsUsage(parsed.json);
    const setting = pinned || !unasked ? 'off' : streamUsageSetting(pool.routing, path);
    const stripUsage = setting === 'inject' || (setting === 'endpoint' && poolAcceptsStreamUsage(pool.runtime, pool.runtimeConfigured));
    const set = new Map<string, string>();
    if (targetModel !== parsed.model) set.set('model', JSON.stringify(targetModel));
    const edit = (ask: boolean): Buffer => {
      if (ask) set.set('stream_options', includeUsageOptions(parsed.json));
      else set.delete('stream_options');
      return editTopLevel(parsed.raw, parsed.scanned, set, GATEWAY_OWNED_FIELDS);
    };
    const forwarded = edit(stripUsage);

    // Only the prompt's first blocks are hashed: the text is built that far, its length counted whole.
    const prompt = promptOf(parsed.json);
    const request = schedulingRequest(
      { requestId, model: parsed.model, targetModel, criticality: criticality ?? 'Standard', promptTokens: estimateTokens(prompt?.chars ?? parsed.raw.length), body: parsed.json },
      prompt?.text,
    );
    const rewrite = chosen.rule === undefined ? undefined : { name: chosen.rule.resourceName, generic: chosen.rule.generic };
    return { backend, backendName: pool.key, body: forwarded, model: parsed.model, targetModel, answerModel: chosen.answerModel, targetSource: chosen.source, rewrite, criticality, objective, ...(flow === undefined ? {} : { fairnessId: flow }), stream: parsed.stream, stripUsage, countTokens: unasked && !stripUsage, ...(setting === 'endpoint' ? { usageBody: edit } : {}), request };
  }

  /**
   * The request as it goes to `endpoints` (the primary and its fallbacks, or a prefill/decode
   * pair): the usage request is added only when every one of them accepts it (stream-usage.ts),
   * else the answer's chunks are counted. Unchanged when the pool's routing settles it, the client
   * asked, or the request is no stream on a chat or completions route.
   */
  forEndpoints(prepared: Prepared, endpoints: readonly Endpoint[]): Prepared {
    const rebody = prepared.usageBody;
    if (rebody === undefined || endpoints.length === 0) return prepared;
    const ask = acceptStreamUsage(endpoints);
    if (ask === prepared.stripUsage) return prepared;
    return { ...prepared, body: rebody(ask), stripUsage: ask, countTokens: !ask };
  }

  #resolve(runtime: Runtime, target: ResolvedBackend): BackendRuntime {
    if (target.type === 'service') {
      const svc = runtime.services.get(serviceRuntimeKey(target.service, target.targetPort));
      if (svc === undefined || svc.members.endpoints.length === 0) throw new GatewayError('no_ready_endpoint', `Service ${target.service.key} has no ready endpoint`);
      return svc;
    }
    const pool = runtime.pools.get(target.pool.key);
    if (pool === undefined || pool.members.endpoints.length === 0) throw new GatewayError('no_ready_endpoint', `InferencePool ${target.pool.key} has no ready endpoint`);
    return pool;
  }

  /** The request header's InferenceObjective wins over the InferenceModel; unknown or none is Standard. */
  #criticality(pool: PoolConfig, fromModel: Criticality | undefined, header: string | undefined): { criticality: Criticality; objective: string | undefined } {
    const name = header;
    const priority = name === undefined ? undefined : pool.objectives.get(name);
    if (priority !== undefined) return { criticality: bandOf(priority), objective: name };
    return { criticality: fromModel ?? 'Standard', objective: undefined };
  }

  /**
   * The backend scheduler's data producers for the request (scheduling/types.ts `DataProducer`:
   * tokenising the prompt for precise prefix scoring), or undefined when there are none. Never
   * rejects; run it beside admission so the wait in the queue hides its cost.
   */
  prepareData(prepared: Prepared): Promise<void> | undefined {
    return prepared.backend.kind === 'service' || prepared.model === undefined ? undefined : prepared.backend.scheduler.prepare(prepared.request);
  }

  /** Waits for the pool's gate (pools only; Services are plain balancing and never queue). `signal`: see AdmissionGate.admit. */
  admit(prepared: Prepared, signal: AbortSignal | (() => AbortSignal)): Promise<Ticket> {
    if (prepared.backend.kind === 'service') return Promise.resolve(PASS);
    return prepared.backend.gate.admit(prepared.criticality ?? 'Standard', signal);
  }

  /**
   * Runs the backend's scheduler; `exclude`: endpoints that already failed this request (a retry);
   * `only`: when given, the endpoint keys (`ip:port`) the choice is limited to (subset.ts).
   */
  schedule(prepared: Prepared, exclude?: ReadonlySet<Endpoint>, only?: ReadonlySet<string>): SchedulingResult {
    const all = restrictTo(prepared.backend.candidates(), only, prepared.backendName);
    const candidates = exclude === undefined || exclude.size === 0 ? all : all.filter((e) => !exclude.has(e));
    if (candidates.length === 0) throw new GatewayError('no_ready_endpoint', `no endpoint of ${prepared.backendName} is left to try`);
    return prepared.backend.scheduler.schedule(prepared.request, candidates, this.#random);
  }
}

const NO_POOL_MODELS: PoolModels = new Map();

/** The headers model-based routing fills from the body (lower-case). */
const MODEL_HEADERS: ReadonlySet<string> = new Set([MODEL_NAME_HEADER, BASE_MODEL_NAME_HEADER]);

/** The model step of a pinned request: the model as the picker sent it, answered under that name. */
function asSent(model: string): ModelTarget {
  return { target: model, source: 'none', answerModel: model, rule: undefined };
}

const PASS: Ticket = { waitedMs: 0, done: (): void => undefined };

function tryParse(body: Buffer | undefined): InferenceBody | undefined {
  if (body === undefined || body.length === 0) return undefined;
  try {
    return parseInferenceBody(body);
  } catch {
    return undefined; // not an inference body: no model header; the pool refuses it later with 400
  }
}
