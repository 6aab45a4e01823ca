import { ROUTING_CONFIG_ANNOTATION, type InferencePool, type InferenceTrafficPolicy, type PrefixCacheModeSettings, type Resource, type TokenizerRef } from '../api/types.js';

/**
 * A pool's prefix-cache mode (docs/routing.md "Estimate and precise"): where its settings come
 * from, the defaults, and the warnings a half-configured precise mode gets. Pure; compile.ts
 * calls it per pool.
 */

/** A pool whose prefix affinity runs in precise mode, defaults applied (what the KV-event subscriptions and the precise scorer need). */
export interface PrecisePrefixConfig {
  /** Tokens per block (default 16: vLLM's default block size on CUDA, vllm/config/cache.py). */
  readonly blockSize: number;
  /** Each pod's events socket, a pattern over `{ip}` and `{port}` (kvEvents.endpoint). */
  readonly events: string;
  /** Each pod's replay socket pattern, or undefined when replay is off. */
  readonly replay: string | undefined;
  /** The topic pattern over `{ip}`, `{port}` and `{model}`. */
  readonly topic: string;
  readonly tokenizers: readonly TokenizerRef[];
}

/** Why a pool asked for precise mode runs in estimate mode (said at load time, shown in `/debug/endpoints` and `infergate_prefix_cache_mode`). */
export type PreciseUnavailable = 'no_tokenizer' | 'no_prefix_affinity';

/** vLLM's `--kv-events-config` endpoint default `tcp://*:5557` (vllm/config/kv_events.py), as a subscriber reaches it. */
export const DEFAULT_KV_EVENTS_ENDPOINT = 'tcp://{ip}:5557';
/** vLLM has no replay socket unless `replay_endpoint` is set; the port after the events port is the convention here (docs/routing.md). */
export const DEFAULT_KV_REPLAY_ENDPOINT = 'tcp://{ip}:5558';
/** llm-d's topic convention (llm-d-router precise scorer README; llm-d-inference-sim): `kv@<pod-ip>:<port>@<model>`. */
export const DEFAULT_KV_TOPIC = 'kv@{ip}:{port}@{model}';
/** vLLM's default KV block size on CUDA, and llm-d's `blockSizeTokens` default. */
export const DEFAULT_BLOCK_SIZE_TOKENS = 16;

type Warn = (r: Resource, path: string, message: string) => void;

/**
 * The precise settings of `pool`; undefined when it runs in estimate mode as configured; why not,
 * when precise mode was asked for and cannot run (warned).
 * `policy`: the pool's InferenceTrafficPolicy when it disaggregates prefill/decode (its
 * `trafficPolicy.prefixCache` wins over the annotation's `prefix`); `prefixScored`: the pool's
 * policy has prefix affinity at all.
 */
export function precisePrefixConfig(pool: InferencePool, policy: InferenceTrafficPolicy | undefined, prefixScored: boolean, warn: Warn): PrecisePrefixConfig | PreciseUnavailable | undefined {
  const fromPolicy = policy?.spec.profile?.pd?.trafficPolicy?.prefixCache;
  const fromAnnotation = pool.routing?.prefix;
  const settings: PrefixCacheModeSettings = { ...pickMode(fromAnnotation), ...pickMode(fromPolicy) };
  if (settings.mode !== 'precise') return undefined;
  const [resource, field] =
    fromPolicy?.mode === 'precise' && policy !== undefined
      ? [policy as Resource, 'spec.profile.pd.trafficPolicy.prefixCache']
      : [pool as Resource, `metadata.annotations["${ROUTING_CONFIG_ANNOTATION}"].prefix`];
  if (!prefixScored) {
    warn(resource, `${field}.mode`, 'precise mode has no effect: the pool has no prefix affinity (routing strategy PREFIX_CACHE, a prefix scorer weight, or a PD policy ref naming prefixCache)');
    return 'no_prefix_affinity';
  }
  const tokenizers = settings.tokenizers ?? [];
  if (tokenizers.length === 0) {
    warn(resource, `${field}.tokenizers`, 'precise mode needs the tokenizer of each served model (a directory with tokenizer.json and tokenizer_config.json); without one the pool runs in estimate mode');
    return 'no_tokenizer';
  }
  const ev = settings.kvEvents;
  return {
    blockSize: settings.blockSize ?? DEFAULT_BLOCK_SIZE_TOKENS,
    events: ev?.endpoint ?? DEFAULT_KV_EVENTS_ENDPOINT,
    replay: ev?.replayEndpoint === '' ? undefined : (ev?.replayEndpoint ?? DEFAULT_KV_REPLAY_ENDPOINT),
    topic: ev?.topic ?? DEFAULT_KV_TOPIC,
    tokenizers,
  };
}

function pickMode(s: PrefixCacheModeSettings | undefined): PrefixCacheModeSettings {
  if (s === undefined) return {};
  const out: { -readonly [K in keyof PrefixCacheModeSettings]: PrefixCacheModeSettings[K] } = {};
  if (s.mode !== undefined) out.mode = s.mode;
  if (s.blockSize !== undefined) out.blockSize = s.blockSize;
  if (s.kvEvents !== undefined) out.kvEvents = s.kvEvents;
  if (s.tokenizers !== undefined) out.tokenizers = s.tokenizers;
  return out;
}
