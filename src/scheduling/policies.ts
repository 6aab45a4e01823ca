import type { RoutingConfig, RoutingStrategy } from '../api/types.js';
import type { PrecisePrefixConfig } from '../config/prefix-mode.js';
import type { PluginSpec, ProfileSpec, SchedulerConfig } from './config.js';
import { createInflightScorer, INFLIGHT_SCORER } from './plugins/inflight-scorer.js';
import { createKvCacheScorer, KV_CACHE_SCORER } from './plugins/kv-cache-scorer.js';
import { createLoraAffinityScorer, LORA_AFFINITY_SCORER } from './plugins/lora-affinity-scorer.js';
import { createMaxScorePicker, MAX_SCORE_PICKER } from './plugins/max-score-picker.js';
import { createPrefillLoadScorer, PREFILL_LOAD_SCORER } from './plugins/prefill-load-scorer.js';
import { createPrefixCacheScorer, PREFIX_CACHE_SCORER } from './plugins/prefix-cache-scorer.js';
import { createPrecisePrefixScorer, PRECISE_PREFIX_SCORER } from './plugins/precise-prefix-scorer.js';
import { createQueueScorer, QUEUE_SCORER } from './plugins/queue-scorer.js';
import { createRoundRobinPicker, ROUND_ROBIN_PICKER } from './plugins/round-robin-picker.js';
import { createPdProfileHandler, DECODE_PROFILE, PD_PROFILE_HANDLER, PREFILL_PROFILE } from './plugins/pd-profile-handler.js';
import { createRoleFilter, ROLE_FILTER } from './plugins/role-filter.js';
import { createSingleProfileHandler, SINGLE_PROFILE_HANDLER } from './plugins/single-profile-handler.js';
import { createRegistry, type PluginRegistry } from './registry.js';

/** A registry holding every built-in plugin: adding a plugin is one file plus one line here. */
export function builtinRegistry(): PluginRegistry {
  const registry = createRegistry();
  registry.register(INFLIGHT_SCORER, createInflightScorer);
  registry.register(QUEUE_SCORER, createQueueScorer);
  registry.register(KV_CACHE_SCORER, createKvCacheScorer);
  registry.register(LORA_AFFINITY_SCORER, createLoraAffinityScorer);
  registry.register(PREFILL_LOAD_SCORER, createPrefillLoadScorer);
  registry.register(PREFIX_CACHE_SCORER, createPrefixCacheScorer);
  registry.register(PRECISE_PREFIX_SCORER, createPrecisePrefixScorer);
  registry.register(MAX_SCORE_PICKER, createMaxScorePicker);
  registry.register(ROUND_ROBIN_PICKER, createRoundRobinPicker);
  registry.register(SINGLE_PROFILE_HANDLER, createSingleProfileHandler);
  registry.register(PD_PROFILE_HANDLER, createPdProfileHandler);
  registry.register(ROLE_FILTER, createRoleFilter);
  return registry;
}

/** Policy names: the two of the routing-strategy annotation, and two baselines for benchmarks. */
export type PolicyName = 'DEFAULT' | 'PREFIX_CACHE' | 'RANDOM' | 'ROUND_ROBIN' | 'PD';

/** A scorer of the built-in policies: its instance name (the key in the log line's `scores`), type and default weight. */
interface ScorerDefault {
  readonly name: keyof NonNullable<RoutingConfig['scorers']>;
  readonly type: string;
  readonly weight: number;
}

/**
 * The default weights. Queue and KV carry the load signal from the server (weight 2 each, as
 * upstream's default profile since v1.2); the gateway's exact in-flight count (1) spreads
 * requests among equally idle endpoints and between scrapes; pending prefill (2) keeps prefills
 * from piling onto one engine; LoRA affinity (1) only separates endpoints for a known adapter.
 */
const DEFAULT_SCORERS: readonly ScorerDefault[] = [
  { name: 'queue', type: QUEUE_SCORER, weight: 2 },
  { name: 'kvCache', type: KV_CACHE_SCORER, weight: 2 },
  { name: 'inflight', type: INFLIGHT_SCORER, weight: 1 },
  { name: 'prefill', type: PREFILL_LOAD_SCORER, weight: 2 },
  { name: 'lora', type: LORA_AFFINITY_SCORER, weight: 1 },
];

/**
 * Prefix affinity (3) outweighs one load signal but not both, so a cache hit wins unless the
 * endpoint is clearly busier (the scorer's hot-spot guard handles the clear cases).
 */
const PREFIX_SCORER: ScorerDefault = { name: 'prefix', type: PREFIX_CACHE_SCORER, weight: 3 };

const STRATEGY_SCORERS: Readonly<Record<RoutingStrategy, readonly ScorerDefault[]>> = {
  DEFAULT: DEFAULT_SCORERS,
  PREFIX_CACHE: [...DEFAULT_SCORERS, PREFIX_SCORER],
};

/** The one profile of a single-profile pool. */
export const DEFAULT_PROFILE = 'default';

/** A profile without scorers: every endpoint scores 0 and the picker alone decides. */
function baseline(picker: string): SchedulerConfig {
  return { plugins: [{ name: picker, type: picker }], profiles: [{ name: DEFAULT_PROFILE, plugins: [{ pluginRef: picker }] }] };
}

/**
 * The scorers of a strategy with the pool's `infergate.dev/routing` weights applied: a weight of
 * 0 removes a scorer; naming one the strategy lacks adds it. Returns `[instance, weight]` pairs.
 */
export function strategyScorers(strategy: RoutingStrategy, routing: RoutingConfig | undefined): Array<{ readonly scorer: ScorerDefault; readonly weight: number }> {
  const base = STRATEGY_SCORERS[strategy];
  return [...DEFAULT_SCORERS, PREFIX_SCORER]
    .map((s) => ({ scorer: s, weight: routing?.scorers?.[s.name] ?? (base.some((b) => b.name === s.name) ? s.weight : 0) }))
    .filter((s) => s.weight > 0);
}

/**
 * The plugin instance of a built-in scorer, with the pool's tunables as its parameters. Prefix
 * affinity is the estimate-mode scorer, or the precise one when the pool runs in precise mode
 * (`precise`, config/prefix-mode.ts), which keeps the estimate tunables for its fallback.
 */
export function scorerPlugin(s: ScorerDefault, routing: RoutingConfig | undefined, name: string = s.name, precise?: PrecisePrefixConfig): { name: string; type: string; parameters?: Readonly<Record<string, unknown>> } {
  if (s.type !== PREFIX_CACHE_SCORER) return { name, type: s.type };
  const { mode: _mode, blockSize: _blockSize, kvEvents: _kvEvents, tokenizers: _tokenizers, ...estimate } = routing?.prefix ?? {};
  if (precise === undefined) return { name, type: s.type, parameters: estimate };
  return { name, type: PRECISE_PREFIX_SCORER, parameters: { ...estimate, blockSize: precise.blockSize, tokenizers: precise.tokenizers } };
}

/**
 * The scheduling configuration of a single-profile pool: its routing strategy (annotation) with
 * the pool's `infergate.dev/routing` tunables, or one of the baselines. Pure data; build it with
 * `buildScheduler`.
 */
export function policyFor(strategy: RoutingStrategy, routing: RoutingConfig | undefined, precise?: PrecisePrefixConfig): { name: PolicyName; config: SchedulerConfig } {
  if (routing?.policy === 'random') return { name: 'RANDOM', config: baseline(MAX_SCORE_PICKER) };
  if (routing?.policy === 'round-robin') return { name: 'ROUND_ROBIN', config: baseline(ROUND_ROBIN_PICKER) };
  const scorers = strategyScorers(strategy, routing);
  return {
    name: strategy,
    config: {
      plugins: scorers.map((s) => scorerPlugin(s.scorer, routing, s.scorer.name, precise)),
      profiles: [{ name: DEFAULT_PROFILE, plugins: scorers.map((s) => ({ pluginRef: s.scorer.name, weight: s.weight })) }],
    },
  };
}

/** What a prefill/decode pool's InferenceTrafficPolicy says (`spec.profile.pd`), as scheduling needs it. */
export interface PdPolicyInput {
  /** `prefillPolicyRef` / `decodePolicyRef`: the named policy under `trafficPolicy` each role uses. */
  readonly prefillPolicy: PdRolePolicy | undefined;
  readonly decodePolicy: PdRolePolicy | undefined;
  /** The decode servers can serve alone (vLLM); SGLang's cannot. */
  readonly decodeCanServeAlone: boolean;
  /** The per-request decider's threshold, when configured. */
  readonly uncachedThresholdTokens?: number;
}

/** A role's policy under `trafficPolicy`: `prefixCache`, i.e. prefix affinity (estimate or precise mode) on top of load. */
export type PdRolePolicy = 'prefixCache';

/**
 * A prefill/decode pool (issue 12): a prefill profile and a decode profile, each a role filter
 * plus the load-aware scorers (and prefix affinity when its policy ref names `prefixCache`), run
 * by the PD profile handler. Without a policy ref a role gets the pool's load-aware default. The
 * pool's `infergate.dev/routing` weights apply to both profiles; instance names are prefixed with
 * the role (`prefill-queue`, `decode-prefix`, …) so each role keeps its own plugin state.
 */
export function pdPolicy(pd: PdPolicyInput, routing: RoutingConfig | undefined, precise?: PrecisePrefixConfig): { name: PolicyName; config: SchedulerConfig } {
  const plugins: PluginSpec[] = [];
  const profile = (role: 'prefill' | 'decode', policy: PdRolePolicy | undefined): ProfileSpec => {
    const filter = `${role}-filter`;
    plugins.push({ name: filter, type: ROLE_FILTER, parameters: { role } });
    const scorers = strategyScorers(policy === 'prefixCache' ? 'PREFIX_CACHE' : 'DEFAULT', routing);
    for (const s of scorers) plugins.push(scorerPlugin(s.scorer, routing, `${role}-${s.scorer.name}`, precise));
    return { name: role === 'prefill' ? PREFILL_PROFILE : DECODE_PROFILE, plugins: [{ pluginRef: filter }, ...scorers.map((s) => ({ pluginRef: `${role}-${s.scorer.name}`, weight: s.weight }))] };
  };
  const profiles = [profile('prefill', pd.prefillPolicy), profile('decode', pd.decodePolicy)];
  plugins.push({
    name: PD_PROFILE_HANDLER,
    type: PD_PROFILE_HANDLER,
    parameters: {
      decodeCanServeAlone: pd.decodeCanServeAlone,
      ...(pd.uncachedThresholdTokens === undefined ? {} : { uncachedThresholdTokens: pd.uncachedThresholdTokens }),
      ...(routing?.saturation?.queueDepth === undefined ? {} : { queueDepth: routing.saturation.queueDepth }),
    },
  });
  return { name: 'PD', config: { plugins, profiles, profileHandler: PD_PROFILE_HANDLER } };
}

/** A Service backend is plain balancing: fewest requests in flight, ties at random. */
export const SERVICE_POLICY: SchedulerConfig = {
  plugins: [{ name: 'inflight', type: INFLIGHT_SCORER }],
  profiles: [{ name: DEFAULT_PROFILE, plugins: [{ pluginRef: 'inflight', weight: 1 }] }],
};
