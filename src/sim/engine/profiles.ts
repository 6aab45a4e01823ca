/**
 * Latency and capacity profiles of simulated model servers.
 *
 * Sources are PROTOCOLS.md §i (simulator realism); each number says where it comes from. The
 * step-time model (§i.1, vllm-project.github.io "Anatomy of vLLM": a decode step is HBM-bound and
 * nearly flat below a saturation batch, then grows about linearly) is
 *
 *     step_ms = max(decodeFloorMs, decodeTokens × decodePerTokenMs + prefillTokens × prefillPerTokenMs)
 *               + newlyLoadedLoras × loraLoadMs
 *
 * i.e. §i.1's derived `max(t_weights, a·d + b·p) + overhead` with the per-step overhead folded into
 * the floor. A request scheduled for exactly one token counts as a decode token, more than one as
 * prefill tokens (a one-token prefill costs what a decode costs). LoRA loads are charged to the
 * step that first runs the adapter, because vLLM loads adapters inside the forward pass and every
 * request in that batch waits. Before a request reaches the scheduler it spends
 * `requestOverheadMs` in the API server (HTTP, tokenisation), per llm-d-inference-sim's model.
 */

/** Everything that sizes and times one simulated server. All times are modelled ms. */
export interface EngineProfile {
  /** Profile id, e.g. "llama-3.1-8b-h100". */
  readonly name: string;
  /** One line for humans. */
  readonly description: string;
  /** API-server time before a request reaches the scheduler (counts in TTFT, not in queue time). */
  readonly requestOverheadMs: number;
  /** Cost per uncached prompt token in a step (compute-bound slope). */
  readonly prefillPerTokenMs: number;
  /** Minimum step time: reading the weights once (ITL at low batch). */
  readonly decodeFloorMs: number;
  /** Cost per decode token in a step, above the saturation batch `decodeFloorMs / decodePerTokenMs`. */
  readonly decodePerTokenMs: number;
  /** vLLM `max_num_seqs`: most requests running at once. */
  readonly maxNumSeqs: number;
  /** vLLM `max_num_batched_tokens`: token budget of one step (chunked prefill). */
  readonly maxNumBatchedTokens: number;
  /** KV blocks on the GPU(s). */
  readonly numGpuBlocks: number;
  /** Tokens per KV block (vLLM CUDA default 16). */
  readonly blockSize: number;
  /** vLLM `max_model_len`: prompt + completion limit. Must fit in numGpuBlocks × blockSize. */
  readonly maxModelLen: number;
  /** Modelled time to load a LoRA adapter into a GPU slot. */
  readonly loraLoadMs: number;
  /**
   * Relative step-time jitter, 0 (default, deterministic) up to 0.5: each step is multiplied by a
   * factor uniform in [1 − jitter, 1 + jitter] from a seeded PRNG, so runs stay reproducible.
   */
  readonly jitter: number;
}

/** Fields an engine may override (everything but the identity). */
export type EngineProfileOverrides = Partial<Omit<EngineProfile, 'name' | 'description'>>;

/**
 * Llama-3.1-8B (BF16) on one H100-80GB.
 * - requestOverheadMs 30: llm-d-inference-sim "8B on H100" per-token profile (overhead 30 ms; range 25–40 ms).
 * - decodeFloorMs 12: ITL at light load, vLLM perf blog 2024-09 "13 ms", llm-d ITL 12 ± 2 ms.
 * - decodePerTokenMs 0.1: saturation at ~120 running, 25.6 ms per step at 256 running, ≤ 10k decode
 *   tok/s — about 2/3 of TRT-LLM's FP8 15.2k tok/s at 1000/1000, fitting BF16 vLLM. With 160 running
 *   and a full prefill chunk in every step (a long queue, as in the SGLang production sample) a step is
 *   16 + 1888 × 0.04 ≈ 92 ms, inside that sample's TPOT of ~75–100 ms (*derived*).
 * - prefillPerTokenMs 0.04: ≈ 25k prompt tok/s, half the derived 55k tok/s FP8 TRT-LLM upper bound
 *   (BF16 has half the FP8 FLOPs). TTFT of a 550-token prompt alone: 30 + 22 = 52 ms (Triton's
 *   measurement, incl. its frontend: 71.7 ms).
 * - maxNumSeqs 256 / maxNumBatchedTokens 2048: vLLM V1 0.8.x API-server defaults (the oldest V1 we
 *   target) and still the default on GPUs < 70 GiB. Newer vLLM on H100 uses 8192/1024, which trades
 *   ITL for TTFT; 2048 keeps ITL bounded under load and matches the SGLang TPOT sample above. Override
 *   per engine to model the newer default.
 * - numGpuBlocks 26,562: ≈ 425k KV tokens (§i.2: 128 KiB/token BF16, 0.9 memory utilisation) / 16.
 * - maxModelLen 131,072: Llama 3.1 context length; fits the KV pool.
 * - loraLoadMs 20: Ours (no published number): a rank-16 adapter copy plus bookkeeping.
 */
const LLAMA_8B_H100: EngineProfile = {
  name: 'llama-3.1-8b-h100',
  description: 'Llama-3.1-8B BF16 on 1x H100-80GB, vLLM V1 (2048-token steps, 256 seqs, ~425k KV tokens)',
  requestOverheadMs: 30,
  prefillPerTokenMs: 0.04,
  decodeFloorMs: 12,
  decodePerTokenMs: 0.1,
  maxNumSeqs: 256,
  maxNumBatchedTokens: 2048,
  numGpuBlocks: 26_562,
  blockSize: 16,
  maxModelLen: 131_072,
  loraLoadMs: 20,
  jitter: 0,
};

/**
 * Qwen3-32B (BF16) on 2× H100-80GB, tensor parallel 2.
 * - requestOverheadMs 65: llm-d-inference-sim 30–34B (TP 2) overhead 50–80 ms, midpoint.
 * - decodeFloorMs 25: llm-d ITL 20–30 ms for 30–34B TP 2 on H100.
 * - decodePerTokenMs 0.2 / prefillPerTokenMs 0.09: 4× the 8B FLOPs per token over 2 GPUs ⇒ 2× the
 *   8B slopes, plus ~10 % for TP all-reduce on prefill (*derived*). Saturation at ~125 running.
 * - maxNumSeqs 256 / maxNumBatchedTokens 2048: as for 8B.
 * - numGpuBlocks 18,125: ≈ 290k KV tokens (§i.2: 256 KiB/token, TP 2 on 2× H100) / 16.
 * - maxModelLen 40,960: Qwen3's max_position_embeddings.
 * - loraLoadMs 40: Ours, larger adapters than 8B.
 */
const QWEN3_32B_2XH100: EngineProfile = {
  name: 'qwen3-32b-2xh100',
  description: 'Qwen3-32B BF16 on 2x H100-80GB (TP 2), vLLM V1 (2048-token steps, 256 seqs, ~290k KV tokens)',
  requestOverheadMs: 65,
  prefillPerTokenMs: 0.09,
  decodeFloorMs: 25,
  decodePerTokenMs: 0.2,
  maxNumSeqs: 256,
  maxNumBatchedTokens: 2048,
  numGpuBlocks: 18_125,
  blockSize: 16,
  maxModelLen: 40_960,
  loraLoadMs: 40,
  jitter: 0,
};

/**
 * A small, fast server for tests: 128 blocks (2,048 tokens), 8 seqs, 128-token steps, 4 ms floor.
 * Saturates after 8 decode tokens, so batching effects show with a handful of requests.
 */
const TINY: EngineProfile = {
  name: 'tiny',
  description: 'test profile: 128 blocks of 16, 8 seqs, 128-token steps, 4 ms decode floor',
  requestOverheadMs: 2,
  prefillPerTokenMs: 0.05,
  decodeFloorMs: 4,
  decodePerTokenMs: 0.5,
  maxNumSeqs: 8,
  maxNumBatchedTokens: 128,
  numGpuBlocks: 128,
  blockSize: 16,
  maxModelLen: 1024,
  loraLoadMs: 10,
  jitter: 0,
};

/**
 * No latency at all (every step costs 0 modelled ms) and ample capacity, so a benchmark measures
 * the gateway's own overhead. Scheduling still runs; tokens of a request arrive in one burst.
 */
const ZERO: EngineProfile = {
  name: 'zero',
  description: 'no modelled latency, ample capacity (gateway-overhead benchmarks)',
  requestOverheadMs: 0,
  prefillPerTokenMs: 0,
  decodeFloorMs: 0,
  decodePerTokenMs: 0,
  maxNumSeqs: 1024,
  maxNumBatchedTokens: 65_536,
  numGpuBlocks: 65_536,
  blockSize: 16,
  maxModelLen: 131_072,
  loraLoadMs: 0,
  jitter: 0,
};

/** Built-in profiles by name. */
export const PROFILES = {
  'llama-3.1-8b-h100': LLAMA_8B_H100,
  'qwen3-32b-2xh100': QWEN3_32B_2XH100,
  tiny: TINY,
  zero: ZERO,
} as const satisfies Record<string, EngineProfile>;

/** Names of the built-in profiles. */
export type ProfileName = keyof typeof PROFILES;

/** The built-in profile called `name`, or undefined. */
export function findProfile(name: string): EngineProfile | undefined {
  return Object.hasOwn(PROFILES, name) ? PROFILES[name as ProfileName] : undefined;
}

/**
 * `base` with `overrides` applied, validated: positive integer sizes, non-negative times, jitter in
 * [0, 0.5], and `maxModelLen` fitting the KV pool (vLLM refuses to start otherwise). Throws
 * RangeError naming the field.
 */
export function resolveProfile(base: EngineProfile, overrides: EngineProfileOverrides = {}): EngineProfile {
  const p: EngineProfile = { ...base, ...stripUndefined(overrides) };
  for (const k of ['maxNumSeqs', 'maxNumBatchedTokens', 'numGpuBlocks', 'blockSize', 'maxModelLen'] as const) {
    if (!Number.isInteger(p[k]) || p[k] <= 0) throw new RangeError(`profile ${p.name}: ${k} must be a positive integer, got ${p[k]}`);
  }
  for (const k of ['requestOverheadMs', 'prefillPerTokenMs', 'decodeFloorMs', 'decodePerTokenMs', 'loraLoadMs'] as const) {
    if (!Number.isFinite(p[k]) || p[k] < 0) throw new RangeError(`profile ${p.name}: ${k} must be a finite number >= 0, got ${p[k]}`);
  }
  if (!(p.jitter >= 0 && p.jitter <= 0.5)) throw new RangeError(`profile ${p.name}: jitter must be in [0, 0.5], got ${p.jitter}`);
  if (p.maxModelLen > p.numGpuBlocks * p.blockSize) {
    throw new RangeError(
      `profile ${p.name}: maxModelLen ${p.maxModelLen} does not fit the KV cache (${p.numGpuBlocks} blocks x ${p.blockSize} tokens)`,
    );
  }
  return p;
}

function stripUndefined(o: EngineProfileOverrides): EngineProfileOverrides {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as EngineProfileOverrides;
}

/**
 * Modelled duration of one step (see the file comment), before jitter.
 * @param decodeTokens requests scheduled for exactly one token
 * @param prefillTokens tokens of requests scheduled for more than one token
 * @param loraLoads adapters loaded into a slot for this step
 */
export function stepDurationMs(p: EngineProfile, decodeTokens: number, prefillTokens: number, loraLoads = 0): number {
  const compute = decodeTokens * p.decodePerTokenMs + prefillTokens * p.prefillPerTokenMs;
  return Math.max(p.decodeFloorMs, compute) + loraLoads * p.loraLoadMs;
}
