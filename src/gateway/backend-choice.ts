import { poolTakesModel, type BackendTarget, type RuleConfig } from '../config/snapshot.js';
import type { Endpoint, MetricsDialect } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import type { Random } from '../core/weighted.js';
import { isPoolRule, poolKeyOf } from './pool-entry.js';
import type { Runtime } from './runtime.js';

/**
 * What one pool's pods serve, from their own `GET /v1/models` (base models and LoRA adapters).
 * Built when a model list, the pool's membership or the configuration changes, never per request.
 */
export interface PodModels {
  /** Every model id some pod of the pool lists. */
  readonly names: ReadonlySet<string>;
  /**
   * Every pod of the pool has listed a non-empty model list, and its runtime refuses a name it
   * does not list: a name outside `names` is known not to be served there. False for a pool
   * without pods, or with a pod that has not listed yet (just started, no `/v1/models`, an empty
   * or unreadable list), or whose runtime may serve names it does not list, or is not known yet
   * (neither configured nor seen on its /metrics page): the gateway does not know.
   */
  readonly complete: boolean;
}

/**
 * Runtimes whose servers refuse a `model` they do not list: vLLM (404 "The model `X` does not
 * exist.", serving_engine.py `_check_model`) and Triton's OpenAI frontend (400 "Unknown model").
 * SGLang is left out (which versions check `model` differs; older ones ignore it and answer with
 * their one model), and so is trtllm-serve: their lists say what they serve, not what they refuse.
 */
const REFUSES_UNLISTED: ReadonlySet<MetricsDialect> = new Set<MetricsDialect>(['vllm', 'trt-llm']);

/** Pool key (`namespace/name`) → what its pods serve. */
export type PoolModels = ReadonlyMap<string, PodModels>;

const UNKNOWN: PodModels = { names: new Set(), complete: false };

/** What each pool of `runtime` serves by its pods' lists (one pass over the pools' members). */
export function poolModels(runtime: Runtime | undefined): Map<string, PodModels> {
  const out = new Map<string, PodModels>();
  for (const pool of runtime?.pools.values() ?? []) out.set(pool.config.key, podModels(pool.members.endpoints));
  return out;
}

/** What one pool serves by its members' lists. */
export function podModels(endpoints: readonly Endpoint[]): PodModels {
  if (endpoints.length === 0) return UNKNOWN;
  const names = new Set<string>();
  let complete = true;
  for (const e of endpoints) {
    const list = e.servedModels;
    // A default dialect is a guess: an unannotated pool's SGLang pods are `vllm` until scraped.
    if (list === undefined || list.length === 0 || !e.dialectKnown() || !REFUSES_UNLISTED.has(e.dialect)) complete = false;
    for (const m of list ?? []) names.add(m.id);
  }
  return { names, complete };
}

/** What the gateway knows of one backend and one model name. */
type Knowledge = 'serves' | 'lacks' | 'unknown';

/**
 * A pool serves `model` when one of its InferenceModels has it as `modelName`, or one of its pods
 * lists it; it lacks it when every pod listed its models and none names it. Services (plain
 * balancing) and unresolved backendRefs are never known to serve or lack anything.
 */
function knowledge(b: BackendTarget, model: string, pods: PoolModels): Knowledge {
  if (b.type !== 'pool') return 'unknown';
  if (poolTakesModel(b.pool, model)) return 'serves';
  const listed = pods.get(b.pool.key);
  if (listed === undefined) return 'unknown';
  if (listed.names.has(model)) return 'serves';
  return listed.complete ? 'lacks' : 'unknown';
}

/**
 * The backendRef of `rule` a request for `model` goes to (docs/routing.md, "Which backend of a
 * rule"):
 *
 * - some backends are known to serve `model`: a draw among those, by their weights renormalised;
 * - none is, some are not known either way: a draw among those, by their weights (never refused
 *   on ignorance);
 * - every backend is known not to serve it: `model_not_found` 404, from the gateway.
 *
 * `model` undefined (a bodyless request, a body that is not an inference body) draws among all.
 * A rule of one backend costs one lookup; a split rule one per backend and no allocation beyond
 * a small array. Returns undefined when the rule has no backend of non-zero weight.
 */
export function chooseBackend(rule: RuleConfig, model: string | undefined, pods: PoolModels, random: Random): BackendTarget | undefined {
  const table = rule.backends;
  if (model === undefined || table.size === 0) return table.pick(random);
  const items = table.items;
  if (items.length === 1) {
    const only = items[0] as BackendTarget;
    if (knowledge(only, model, pods) === 'lacks') throw notServed(rule, model);
    return only;
  }
  const known = items.map((b) => knowledge(b, model, pods));
  if (known.includes('serves')) return table.pickWhere(random, (_, i) => known[i] === 'serves');
  if (known.includes('unknown')) return table.pickWhere(random, (_, i) => known[i] === 'unknown');
  throw notServed(rule, model);
}

function notServed(rule: RuleConfig, model: string): GatewayError {
  const shown = model.length > 256 ? `${model.slice(0, 256)}…` : model;
  const pools = rule.backends.items.map((b) => (b.type === 'pool' ? b.pool.name : '?')).join(', ');
  // Envoy routed a picker's request: there is no HTTPRoute of ours to name, only the pool.
  const where = isPoolRule(rule) ? `InferencePool ${poolKeyOf(rule)} has no InferenceModel or pod serving it` : `no InferencePool of HTTPRoute ${rule.routeName}'s rule (${pools}) has an InferenceModel or a pod serving it`;
  return new GatewayError('model_not_found', `The model \`${shown}\` is not served here: ${where} (GET /v1/models lists the models served).`);
}
