/**
 * Latency and capacity profiles of simulated model servers.
 *
 * Sources are published vLLM/SGLang H100 measurements and vLLM's scheduler docs, and the calibration points in docs/simulator.md; each number says
 * where it comes from, and docs/simulator.md's calibration table compares the model with every
 * published measurement it was fitted to (calibration.ts recomputes it; a test keeps it in bounds).
 *
 * The step-time model has the terms a real forward pass has (§i.1; vLLM "Anatomy of vLLM": below a
 * saturation batch a step is HBM-bound and nearly flat, above it compute grows linearly):
 *
 *     step_ms = stepOverheadMs                                             CPU, launches, TP sync
 *             + max(decodeFloorMs,                                         reading the weights once
 *                   decodeTokens × decodePerTokenMs + prefillTokens × prefillPerTokenMs)   GEMMs
 *             + Σ decoding requests' context × decodeContextMsPerToken     attention reads the KV
 *             + Σ prefill chunks' n × (c + n/2) × prefillContextMsPerPair   attention FLOPs
 *             + newlyLoadedLoras × loraLoadMs
 *
 * where a chunk of n new tokens starts after c tokens already in the KV (cached or computed), so
 * a long prompt's attention grows with the square of its length whatever the chunking, and a
 * request whose prefix is cached still pays attention over that prefix. A request scheduled for
 * exactly one token counts as a decode token (context = its tokens already in the KV), more than
 * one as a prefill chunk. LoRA loads are charged to the step that first runs the adapter, because
 * vLLM loads adapters inside the forward pass and every request in that batch waits. Before a
 * request reaches the scheduler it spends `requestOverheadMs` in the API server (HTTP,
 * tokenisation). The model costs a handful of multiply-adds per scheduled request per step.
 */

/** Everything that sizes and times one simulated server. All times are modelled ms. */
export interface EngineProfile {
  /** Profile id, e.g. "llama-3.1-8b-h100". */
  readonly name: string;
  /** One line for humans. */
  readonly description: string;
  /** API-server time before a request reaches the scheduler (counts in TTFT, not in queue time). */
  readonly requestOverheadMs: number;
  /** Fixed cost of every step that runs (scheduling, kernel launches, tensor-parallel sync), ms. */
  readonly stepOverheadMs: number;
  /** GEMM cost per uncached prompt token in a step (compute-bound slope), ms per token. */
  readonly prefillPerTokenMs: number;
  /** Minimum GEMM time of a step: reading the weights once (what bounds ITL at low batch), ms. */
  readonly decodeFloorMs: number;
  /** GEMM cost per decode token in a step, above the saturation batch `decodeFloorMs / decodePerTokenMs`; ms per token. */
  readonly decodePerTokenMs: number;
  /** Attention cost of a decoding request per token of its context (reading its KV from HBM), ms per token. */
  readonly decodeContextMsPerToken: number;
  /** Attention cost of a prefill chunk per (new token × context token) pair, ms per pair. */
  readonly prefillContextMsPerPair: number;
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
  /** Modelled time to load a LoRA adapter into a GPU slot, ms. */
  readonly loraLoadMs: number;
  /**
   * Bytes of KV cache one token takes on the whole instance (every tensor-parallel rank together):
   * `2 (K and V) × layers × KV heads × head dim × bytes per value` (from the models' Hugging Face configs; llm-d-inference-sim docs/latency-profiles.md). What a
   * prefill/decode KV transfer moves per prompt token (kv-link.ts).
   */
  readonly kvBytesPerToken: number;
  /** GPUs per instance (vLLM `--tensor-parallel-size`): NIXL's `tp_size`, and one RDMA NIC each (kv-link.ts). */
  readonly tensorParallelSize: number;
  /**
   * Relative step-time jitter, 0 (default, deterministic) up to 0.5: each step is multiplied by a
   * factor uniform in [1 − jitter, 1 + jitter] from a seeded PRNG, so runs stay reproducible.
   */
  readonly jitter: number;
  /**
   * `false`: prompts are counted, not tokenised (⌈characters / 4⌉, `estimateTokens`), so the engine
   * keeps no token ids and caches no prefix (vLLM with `--no-enable-prefix-caching`), and an answer
   * depends on its prompt's length only. A 200 KB prompt then costs the simulator little more than
   * its JSON parse, where tokenising and hashing it cost 5–10× that: the zero profile's engine must
   * stay far cheaper than any proxy put in front of it, or a benchmark measures the engine. Default true.
   */
  readonly tokenizePrompts?: boolean;
}

/** Fields an engine may override (everything but the identity). */
export type EngineProfileOverrides = Partial<Omit<EngineProfile, 'name' | 'description'>>;

/**
 * Llama-3.1-8B (BF16) on one H100-80GB SXM (3.35 TB/s HBM3, 989 dense BF16 TFLOPS).
 * - decodeFloorMs 4.84 + stepOverheadMs 1.6: ITL at batch 1 is 6.44 ms + 4.37e-5 ms per context
 *   token (vLLM blog 2026-04-22, FP8 KV-cache post, BF16 fit; §i.6). The floor is the 16.1 GB of
 *   BF16 weights read once at 3.35 TB/s; the rest of the 6.44 ms is the per-step overhead.
 * - decodeContextMsPerToken 4.37e-5: the same fit's context slope — 128 KiB of BF16 KV per token
 *   (§i.2) read at 3 TB/s is 4.4e-5 ms, so the slope is the KV read.
 * - prefillPerTokenMs 0.02 and prefillContextMsPerPair 1.0e-6: fitted to TTFT at batch 1 of
 *   ≈ 25 / 260 / 1,100 / 6,850 ms for 1k / 10k / 30k / 100k-token prompts (vLLM blog 2026-01-08,
 *   KV-offloading connector, Fig. 1, read off the chart; §i.6). TTFT ≈ 0.02·P + 5e-7·P²: a linear
 *   part of 50k tok/s (16 GFLOP per token at ~80 % of the dense peak) and quadratic attention
 *   (≈ 0.5 MFLOP per token pair at ~50 %).
 * - decodePerTokenMs 0.06: a decode token runs the prompt token's GEMMs plus the LM head and
 *   sampling, at small-batch efficiency. No 2026 measurement pins this slope; 0.06 puts the
 *   saturation batch at ~80 and a 1000-in / 1000-out run with 256 clients at ~6.2k output tok/s,
 *   41 % of TensorRT-LLM's FP8 15,220 tok/s (§i.1; BF16 reads twice the bytes and has half the
 *   tensor FLOPs). vLLM 0.6.0's 14 ms ITL at 32 req/s ShareGPT (2024) is slower still; the
 *   calibration table shows that gap and why.
 * - requestOverheadMs 3: what TTFT at 1k tokens leaves after one 1k-token step (25 − 22 ms).
 * - maxNumSeqs 256 / maxNumBatchedTokens 2048: vLLM V1 0.8.x API-server defaults (the oldest V1 we
 *   target) and still the default on GPUs < 70 GiB. Newer vLLM on H100 uses 8192/1024, which trades
 *   ITL for TTFT; 2048 keeps ITL bounded under load. Override per engine to model the newer default.
 * - numGpuBlocks 26,562: ≈ 425k KV tokens (§i.2: 128 KiB/token BF16, 0.9 memory utilisation) / 16;
 *   llm-d's memory study measured 421k (§i.6).
 * - maxModelLen 131,072: Llama 3.1 context length; fits the KV pool.
 * - loraLoadMs 20: Ours (no published number): a rank-16 adapter copy plus bookkeeping.
 * - kvBytesPerToken 131,072: 2 × 32 layers × 8 KV heads × 128 × 2 bytes = 128 KiB (§i.2).
 * - tensorParallelSize 1: one GPU.
 */
const LLAMA_8B_H100: EngineProfile = {
  name: 'llama-3.1-8b-h100',
  description: 'Llama-3.1-8B BF16 on 1x H100-80GB, vLLM V1 (2048-token steps, 256 seqs, ~425k KV tokens)',
  requestOverheadMs: 3,
  stepOverheadMs: 1.6,
  prefillPerTokenMs: 0.02,
  decodeFloorMs: 4.84,
  decodePerTokenMs: 0.06,
  decodeContextMsPerToken: 4.37e-5,
  prefillContextMsPerPair: 1.0e-6,
  maxNumSeqs: 256,
  maxNumBatchedTokens: 2048,
  numGpuBlocks: 26_562,
  blockSize: 16,
  maxModelLen: 131_072,
  loraLoadMs: 20,
  kvBytesPerToken: 131_072,
  tensorParallelSize: 1,
  jitter: 0,
};

/**
 * Qwen3-32B (BF16) on 2× H100-80GB, tensor parallel 2. No single published set covers it, so the
 * compute terms are the 8B fit scaled by the architectures (HF configs, §i.2) and the fixed terms
 * come from the nearest published TP 2 measurement.
 * - decodeFloorMs 9.8: 65.5 GB of weights, 32.75 GB per GPU, read at 3.35 TB/s.
 * - stepOverheadMs 7: NVIDIA NIM measured ITL 18.6 ms at batch 1 for a 70B-class FP8 model on
 *   2× H100 TP 2 (§i.6), 10.4 ms of it reading 35 GB per GPU; the rest (8.2 ms: all-reduces and
 *   launches over 80 layers) scaled to Qwen3-32B's 64 layers is 6.6 ms, plus the 8B's CPU share.
 * - prefillPerTokenMs 0.045, decodePerTokenMs 0.135: the 8B's × 32.8/8.0 parameters ÷ 2 GPUs
 *   × 1.1 for the TP all-reduce (*derived*).
 * - decodeContextMsPerToken 4.37e-5: 256 KiB of KV per token split over 2 GPUs is 128 KiB per GPU,
 *   the 8B's per-GPU read.
 * - prefillContextMsPerPair 2.0e-6: attention FLOPs per pair are layers × query heads × head dim,
 *   64 × 64 × 128 against the 8B's 32 × 32 × 128 (4×), over 2 GPUs.
 * - requestOverheadMs 75: fitted to llm-d's cached-vs-uncached TTFT for a ~10k-token prompt,
 *   4.3 s → 0.6 s = 7.2× (llm-d.ai "KV-cache wins you can see", §i.6). The absolute values are not
 *   fitted: 4.3 s means ~2.3k prompt tok/s, a sixth of what the 8B's measured prefill scaled by
 *   FLOPs gives; llm-d's numbers are end to end through their stack. With the scaled prefill, only
 *   a per-request cost of ≈ 75 ms reproduces the 7.2× contrast (llm-d-inference-sim's estimate for
 *   30–34B TP 2 is 50–80 ms). Without it the simulator's contrast would be ~29×, overstating what
 *   prefix affinity saves.
 * - maxNumSeqs 256 / maxNumBatchedTokens 2048: as for 8B.
 * - numGpuBlocks 18,125: ≈ 290k KV tokens (§i.2: 256 KiB/token, TP 2 on 2× H100) / 16; llm-d
 *   measured 283k–307k per instance (§i.6).
 * - maxModelLen 40,960: Qwen3's max_position_embeddings.
 * - loraLoadMs 40: Ours, larger adapters than 8B.
 * - kvBytesPerToken 262,144: 2 × 64 layers × 8 KV heads × 128 × 2 bytes = 256 KiB (§i.2), half on
 *   each GPU.
 * - tensorParallelSize 2.
 */
const QWEN3_32B_2XH100: EngineProfile = {
  name: 'qwen3-32b-2xh100',
  description: 'Qwen3-32B BF16 on 2x H100-80GB (TP 2), vLLM V1 (2048-token steps, 256 seqs, ~290k KV tokens)',
  requestOverheadMs: 75,
  stepOverheadMs: 7,
  prefillPerTokenMs: 0.045,
  decodeFloorMs: 9.8,
  decodePerTokenMs: 0.135,
  decodeContextMsPerToken: 4.37e-5,
  prefillContextMsPerPair: 2.0e-6,
  maxNumSeqs: 256,
  maxNumBatchedTokens: 2048,
  numGpuBlocks: 18_125,
  blockSize: 16,
  maxModelLen: 40_960,
  loraLoadMs: 40,
  kvBytesPerToken: 262_144,
  tensorParallelSize: 2,
  jitter: 0,
};

/**
 * A small, fast server for tests: 128 blocks (2,048 tokens), 8 seqs, 128-token steps, 4 ms floor.
 * Saturates after 8 decode tokens, so batching effects show with a handful of requests. No step
 * overhead and no attention terms, so tests can compute its timings by hand. Its KV is a 1B-class
 * model's, 32 KiB per token (Llama-3.2-1B: 2 × 16 layers × 8 KV heads × 64 × 2 bytes), so a KV
 * transfer costs something small but visible.
 */
const TINY: EngineProfile = {
  name: 'tiny',
  description: 'test profile: 128 blocks of 16, 8 seqs, 128-token steps, 4 ms decode floor',
  requestOverheadMs: 2,
  stepOverheadMs: 0,
  prefillPerTokenMs: 0.05,
  decodeFloorMs: 4,
  decodePerTokenMs: 0.5,
  decodeContextMsPerToken: 0,
  prefillContextMsPerPair: 0,
  maxNumSeqs: 8,
  maxNumBatchedTokens: 128,
  numGpuBlocks: 128,
  blockSize: 16,
  maxModelLen: 1024,
  loraLoadMs: 10,
  kvBytesPerToken: 32_768,
  tensorParallelSize: 1,
  jitter: 0,
};

/**
 * No latency at all (every step costs 0 modelled ms) and ample capacity, so a benchmark measures
 * the gateway's own overhead. Scheduling still runs; tokens of a request arrive in one burst.
 * KV transfers are free too (0 bytes per token). Prompts are counted, not tokenised, and nothing
 * is prefix-cached (`tokenizePrompts`), so large prompts cost the simulator little CPU.
 */
const ZERO: EngineProfile = {
  name: 'zero',
  description: 'no modelled latency, ample capacity (gateway-overhead benchmarks)',
  requestOverheadMs: 0,
  stepOverheadMs: 0,
  prefillPerTokenMs: 0,
  decodeFloorMs: 0,
  decodePerTokenMs: 0,
  decodeContextMsPerToken: 0,
  prefillContextMsPerPair: 0,
  maxNumSeqs: 1024,
  maxNumBatchedTokens: 65_536,
  numGpuBlocks: 65_536,
  blockSize: 16,
  maxModelLen: 131_072,
  loraLoadMs: 0,
  kvBytesPerToken: 0,
  tensorParallelSize: 1,
  jitter: 0,
  tokenizePrompts: false,
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

const TIME_FIELDS = [
  'requestOverheadMs',
  'stepOverheadMs',
  'prefillPerTokenMs',
  'decodeFloorMs',
  'decodePerTokenMs',
  'decodeContextMsPerToken',
  'prefillContextMsPerPair',
  'loraLoadMs',
] as const satisfies ReadonlyArray<keyof EngineProfile>;

/**
 * `base` with `overrides` applied, validated: positive integer sizes, non-negative times, jitter in
 * [0, 0.5], and `maxModelLen` fitting the KV pool (vLLM refuses to start otherwise). Throws
 * RangeError naming the field.
 */
export function resolveProfile(base: EngineProfile, overrides: EngineProfileOverrides = {}): EngineProfile {
  const p: EngineProfile = { ...base, ...stripUndefined(overrides) };
  for (const k of ['maxNumSeqs', 'maxNumBatchedTokens', 'numGpuBlocks', 'blockSize', 'maxModelLen', 'tensorParallelSize'] as const) {
    if (!Number.isInteger(p[k]) || p[k] <= 0) throw new RangeError(`profile ${p.name}: ${k} must be a positive integer, got ${p[k]}`);
  }
  for (const k of TIME_FIELDS) {
    if (!Number.isFinite(p[k]) || p[k] < 0) throw new RangeError(`profile ${p.name}: ${k} must be a finite number >= 0, got ${p[k]}`);
  }
  if (!Number.isInteger(p.kvBytesPerToken) || p.kvBytesPerToken < 0) throw new RangeError(`profile ${p.name}: kvBytesPerToken must be an integer >= 0, got ${p.kvBytesPerToken}`);
  if (!(p.jitter >= 0 && p.jitter <= 0.5)) throw new RangeError(`profile ${p.name}: jitter must be in [0, 0.5], got ${p.jitter}`);
  if (p.maxModelLen > p.numGpuBlocks * p.blockSize) {
    throw new RangeError(
      `profile ${p.name}: maxModelLen ${p.maxModelLen} does not fit the KV cache (${p.numGpuBlocks} blocks x ${p.blockSize} tokens)`,
    );
  }
  return p;
}

function stripUndefined(o: EngineProfileOverrides): EngineProfileOverrides {
  const out: Record<string, number | boolean> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as EngineProfileOverrides;
}

/** What one step computes, as the step-time model counts it (see the file comment). */
export interface StepWork {
  /** Requests scheduled for exactly one token. */
  readonly decodeTokens: number;
  /** Tokens of requests scheduled for more than one (prefill chunks). */
  readonly prefillTokens: number;
  /** Σ over the decode requests of their tokens already in the KV (what attention reads). */
  readonly decodeContextTokens: number;
  /** Σ over the prefill chunks of n × (c + n/2): n new tokens after c tokens in the KV. */
  readonly prefillContextPairs: number;
  /** Adapters loaded into a slot for this step. */
  readonly loraLoads: number;
}

/** The attention pairs of a prefill chunk of `n` new tokens after `context` tokens in the KV. */
export function chunkContextPairs(context: number, n: number): number {
  return n * (context + n / 2);
}

/** Modelled duration of one step with work `w` (see the file comment), before jitter, in ms. */
export function stepDurationMs(p: EngineProfile, w: StepWork): number {
  const gemm = w.decodeTokens * p.decodePerTokenMs + w.prefillTokens * p.prefillPerTokenMs;
  return (
    p.stepOverheadMs +
    Math.max(p.decodeFloorMs, gemm) +
    w.decodeContextTokens * p.decodeContextMsPerToken +
    w.prefillContextPairs * p.prefillContextMsPerPair +
    w.loraLoads * p.loraLoadMs
  );
}
