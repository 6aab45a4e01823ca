import type { RoutingConfig } from '../api/types.js';
import { SchedulerProfile } from './profile.js';
import { createRegistry, type PluginRegistry } from './registry.js';
import { createInflightScorer, INFLIGHT_SCORER } from './plugins/inflight-scorer.js';
import { createKvCacheScorer, KV_CACHE_SCORER } from './plugins/kv-cache-scorer.js';
import { createLoraAffinityScorer, LORA_AFFINITY_SCORER } from './plugins/lora-affinity-scorer.js';
import { createMaxScorePicker, MAX_SCORE_PICKER } from './plugins/max-score-picker.js';
import { createPrefillLoadScorer, PREFILL_LOAD_SCORER } from './plugins/prefill-load-scorer.js';
import { createPrefixCacheScorer, PREFIX_CACHE_SCORER } from './plugins/prefix-cache-scorer.js';
import { createQueueScorer, QUEUE_SCORER } from './plugins/queue-scorer.js';
import { createRoundRobinPicker, ROUND_ROBIN_PICKER } from './plugins/round-robin-picker.js';
import type { Filter, Picker, PluginHandle, Scorer, WeightedScorer } from './types.js';

/** A registry holding every built-in plugin. */
export function builtinRegistry(): PluginRegistry {
  const registry = createRegistry();
  registry.register(INFLIGHT_SCORER, createInflightScorer);
  registry.register(QUEUE_SCORER, createQueueScorer);
  registry.register(KV_CACHE_SCORER, createKvCacheScorer);
  registry.register(LORA_AFFINITY_SCORER, createLoraAffinityScorer);
  registry.register(PREFILL_LOAD_SCORER, createPrefillLoadScorer);
  registry.register(PREFIX_CACHE_SCORER, createPrefixCacheScorer);
  registry.register(MAX_SCORE_PICKER, createMaxScorePicker);
  registry.register(ROUND_ROBIN_PICKER, createRoundRobinPicker);
  return registry;
}

export interface ScorerSpec {
  readonly type: string;
  /** Instance name; the key in the log line's `scores`. */
  readonly name: string;
  readonly weight: number;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** A policy is data: plugin types with weights, instantiated through a registry. */
export interface PolicySpec {
  readonly filters: readonly string[];
  readonly scorers: readonly ScorerSpec[];
  readonly picker: { readonly type: string; readonly parameters?: Readonly<Record<string, unknown>> };
}

/** Policy names: the two of the routing-strategy annotation, and two baselines for benchmarks. */
export type PolicyName = 'DEFAULT' | 'PREFIX_CACHE' | 'RANDOM' | 'ROUND_ROBIN';

/**
 * The default weights. Queue and KV carry the load signal from the server (weight 2 each, as
 * upstream's default profile since v1.2); the gateway's exact in-flight count (1) spreads
 * requests among equally idle endpoints and between scrapes; LoRA affinity (1) only separates
 * endpoints for a known adapter; prefix affinity (3) outweighs one load signal but not both, so
 * a cache hit wins unless the endpoint is clearly busier (the scorer's hot-spot guard handles
 * the clear cases).
 */
const DEFAULT_SCORERS: readonly ScorerSpec[] = [
  { type: QUEUE_SCORER, name: 'queue', weight: 2 },
  { type: KV_CACHE_SCORER, name: 'kvCache', weight: 2 },
  { type: INFLIGHT_SCORER, name: 'inflight', weight: 1 },
  { type: PREFILL_LOAD_SCORER, name: 'prefill', weight: 2 },
  { type: LORA_AFFINITY_SCORER, name: 'lora', weight: 1 },
];

export const POLICIES: Readonly<Record<PolicyName, PolicySpec>> = {
  DEFAULT: { filters: [], scorers: DEFAULT_SCORERS, picker: { type: MAX_SCORE_PICKER } },
  PREFIX_CACHE: { filters: [], scorers: [...DEFAULT_SCORERS, { type: PREFIX_CACHE_SCORER, name: 'prefix', weight: 3 }], picker: { type: MAX_SCORE_PICKER } },
  // No scorer: every endpoint scores 0 and the max-score picker's random tie-break is a uniform draw.
  RANDOM: { filters: [], scorers: [], picker: { type: MAX_SCORE_PICKER } },
  ROUND_ROBIN: { filters: [], scorers: [], picker: { type: ROUND_ROBIN_PICKER } },
};

/**
 * The policy of a pool: its routing strategy, with the weights and parameters of the pool's
 * `infergate.dev/routing` annotation applied (a weight of 0 removes a scorer; naming a scorer
 * the strategy lacks adds it).
 */
export function policyFor(strategy: 'DEFAULT' | 'PREFIX_CACHE', routing: RoutingConfig | undefined): { name: PolicyName; spec: PolicySpec } {
  if (routing?.policy === 'random') return { name: 'RANDOM', spec: POLICIES.RANDOM };
  if (routing?.policy === 'round-robin') return { name: 'ROUND_ROBIN', spec: POLICIES.ROUND_ROBIN };
  const base = POLICIES[strategy];
  const weights = routing?.scorers;
  const all: ScorerSpec[] = [...DEFAULT_SCORERS, { type: PREFIX_CACHE_SCORER, name: 'prefix', weight: 3 }];
  const scorers = all
    .map((s) => {
      const inBase = base.scorers.some((b) => b.name === s.name);
      const override = weights?.[s.name as keyof NonNullable<RoutingConfig['scorers']>];
      const weight = override ?? (inBase ? s.weight : 0);
      const parameters = s.type === PREFIX_CACHE_SCORER ? { ...(routing?.prefix ?? {}) } : undefined;
      return { ...s, weight, ...(parameters === undefined ? {} : { parameters }) };
    })
    .filter((s) => s.weight > 0);
  return { name: strategy, spec: { ...base, scorers } };
}

export function buildProfile(name: string, spec: PolicySpec, registry: PluginRegistry, handle: PluginHandle): SchedulerProfile {
  const filters = spec.filters.map((type) => registry.create(type, handle) as Filter);
  const scorers: WeightedScorer[] = spec.scorers.map((s) => ({ scorer: registry.create(s.type, handle, s.name, s.parameters ?? {}) as Scorer, weight: s.weight }));
  const picker = registry.create(spec.picker.type, handle, spec.picker.type, spec.picker.parameters ?? {}) as Picker;
  return new SchedulerProfile(name, filters, scorers, picker);
}
