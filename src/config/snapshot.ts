import type {
  Criticality,
  HeaderModifier,
  InferencePool,
  InferenceTrafficPolicy,
  ModelServerRuntime,
  Problem,
  RoutingConfig,
  RoutingStrategy,
} from '../api/types.js';
import type { WeightedTable } from '../core/weighted.js';
import type { PrecisePrefixConfig, PreciseUnavailable } from './prefix-mode.js';
import type { RouteTable } from './route-table.js';

/**
 * The compiled, immutable configuration a request runs against. Built from resources by
 * `compileSnapshot`, deep-frozen, and swapped as a whole on reload; a request keeps the snapshot
 * it started with. Pods are not part of it: endpoint discovery follows them incrementally.
 */
export interface Snapshot {
  /** Increases by one on every successful reload. */
  readonly version: number;
  readonly createdAt: Date;
  /** One entry per listening port (listeners of several Gateways on one port share it). */
  readonly listeners: ReadonlyMap<number, ListenerConfig>;
  readonly pools: ReadonlyMap<string, PoolConfig>;
  readonly services: ReadonlyMap<string, ServiceConfig>;
  /** Accepted with a documented behaviour; errors never reach a snapshot. */
  readonly warnings: readonly Problem[];
  readonly resourceCount: number;
}

export interface ListenerConfig {
  readonly port: number;
  /** `gateway/listener` names bound to this port, for logs and status. */
  readonly names: readonly string[];
  readonly routes: RouteTable;
  /** Model names routable on this port, for `GET /v1/models`. */
  readonly models: readonly string[];
  /** The largest request body any rule on this port accepts (the rule's own limit applies after routing). */
  readonly maxBodyBytes: number;
  /**
   * Some rule matches on `X-Gateway-Model-Name` or `X-Gateway-Base-Model-Name`: the body's model
   * must be known before route matching (model-based routing).
   */
  readonly matchesModelHeaders: boolean;
}

/** Header filled from the body's `model` before route matching (upstream's body-based routing, ACK). */
export const MODEL_NAME_HEADER = 'x-gateway-model-name';
/** Header filled with the base model of a LoRA adapter, where the pools' models are known. */
export const BASE_MODEL_NAME_HEADER = 'x-gateway-base-model-name';

export interface ModelConfig {
  readonly modelName: string;
  /** The InferenceModel's name, for logs. */
  readonly resourceName: string;
  /** Unset in the resource means Standard: unlabelled traffic is never shed. */
  readonly criticality: Criticality;
  readonly targets: WeightedTable<string>;
}

/** One InferenceModelRewrite rule as a request meets it: the weighted targets to draw from. */
export interface RewriteRuleConfig {
  /** The InferenceModelRewrite's name (the metric's `model_rewrite_name`, logs). */
  readonly resourceName: string;
  /** Matches every model (no `matches`). */
  readonly generic: boolean;
  /** Never empty: a rule has at least one target, and all-unweighted targets share equally. */
  readonly targets: WeightedTable<string>;
}

/**
 * A pool's InferenceModelRewrite rules, precedence already applied (exact beats generic, then the
 * oldest resource, then list order): a lookup is one map read, then the generic rule.
 */
export interface RewriteTable {
  readonly exact: ReadonlyMap<string, RewriteRuleConfig>;
  readonly generic: RewriteRuleConfig | undefined;
}

export interface PoolConfig {
  /** `namespace/name`. */
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly apiVersion: string;
  readonly selector: Readonly<Record<string, string>>;
  readonly targetPorts: readonly number[];
  readonly runtime: ModelServerRuntime;
  /** The runtime was named (annotation or InferenceTrafficPolicy), not defaulted to vLLM. */
  readonly runtimeConfigured: boolean;
  readonly routingStrategy: RoutingStrategy;
  /** The pool's `infergate.dev/routing` tunables, if any. */
  readonly routing: RoutingConfig | undefined;
  readonly models: ReadonlyMap<string, ModelConfig>;
  /** InferenceModelRewrite rules (names an InferenceModel serves are decided by it, never by a rule). */
  readonly rewrites: RewriteTable;
  /** InferenceObjective name → priority (bound by the `x-gateway-inference-objective` header). */
  readonly objectives: ReadonlyMap<string, number>;
  readonly trafficPolicy?: InferenceTrafficPolicy['spec'];
  /** Set when the pool's prefix affinity runs in precise mode (from the engines' KV events); absent: estimate mode. */
  readonly precise?: PrecisePrefixConfig;
  /** Precise mode was asked for and cannot run (config/prefix-mode.ts): the pool runs in estimate mode. */
  readonly preciseUnavailable?: PreciseUnavailable;
  readonly resource: InferencePool;
}

export interface ServiceConfig {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly selector: Readonly<Record<string, string>>;
  readonly ports: ReadonlyArray<{ readonly port: number; readonly targetPort: number | string; readonly name?: string }>;
}

/** What a route rule forwards to, chosen per request by backendRef weight. */
export type BackendTarget =
  | { readonly type: 'pool'; readonly pool: PoolConfig }
  | { readonly type: 'service'; readonly service: ServiceConfig; readonly targetPort: number | string }
  /** A backendRef that could not be resolved: requests drawn to it get 500, as Gateway API requires. */
  | { readonly type: 'invalid'; readonly reason: string };

export interface RuleConfig {
  /** `namespace/route#ruleIndex`, for logs. */
  readonly id: string;
  readonly routeName: string;
  readonly backends: WeightedTable<BackendTarget>;
  readonly requestHeaders: HeaderModifier | null;
  readonly responseHeaders: HeaderModifier | null;
  /** Whole-request deadline; undefined means none (undici's idle timeouts still apply). */
  readonly requestTimeoutMs: number | undefined;
  /** The setting `requestTimeoutMs` comes from, as a user would find it (for error messages). */
  readonly requestTimeoutSetting: string | undefined;
  /** Request bodies above this many bytes are refused with 413. */
  readonly bufferLimitBytes: number;
}

/**
 * The pool's own resources take `model`: an InferenceModel of that name, or an InferenceModelRewrite
 * rule that rewrites it (a generic rule takes every name) to a target of the pool's.
 */
export function poolTakesModel(pool: PoolConfig, model: string): boolean {
  return pool.models.has(model) || pool.rewrites.exact.has(model) || pool.rewrites.generic !== undefined;
}
