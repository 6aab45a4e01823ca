/**
 * The gateway's view of one endpoint's load, and how each signal is combined when a page carries
 * several series for it (vLLM's data-parallel engines each export their own series, labelled `engine`). Runtime-neutral: dialects (dialects.ts) say where each
 * signal lives on a page; this file says what it means.
 */

import type { ModelServerMetrics } from '../../core/endpoint.js';

// The signal types live in core (the Endpoint carries them); re-exported here for this module's users.
export type { LoraState, ModelServerMetrics } from '../../core/endpoint.js';

/** The numeric signals, i.e. every field but `lora` and `servedModels` (which have their own rules). */
export type NumericSignal = Exclude<keyof ModelServerMetrics, 'lora' | 'servedModels'>;

/**
 * How the values of several series of one signal become one number:
 * - `sum`: the series are parts of one server (DP engines, several model names);
 * - `max`: the worst part decides;
 * - `mean`: a rate over parts of similar size;
 * - `agree`: the parts must report the same value; a disagreement is a problem and no value.
 */
export type Combine = 'sum' | 'max' | 'mean' | 'agree';

/**
 * What a value must look like:
 * - `count`: finite, >= 0 (queues, blocks, counters);
 * - `size`: finite, > 0 (tokens per block);
 * - `fraction`: in [0, 1]; a negative value means "not in use" (vLLM v0 reports -1 for an
 *   unused prefix cache) and counts as absent; a value above 1 is clamped, with a problem.
 */
export type Unit = 'count' | 'size' | 'fraction';

export interface SignalRule {
  readonly combine: Combine;
  readonly unit: Unit;
  /** A scrape without this signal is a failed scrape (the caller treats the endpoint as stale). */
  readonly required: boolean;
  /**
   * The largest value believed. A `count` above it (or a sum that overflowed to Infinity) is
   * clamped to it, with a problem; a `size` above it is ignored (a block size that large is not a
   * block size). Fractions are bounded by their unit.
   */
  readonly max: number;
}

/**
 * Bounds of what a server may report (sanity limits, far above any real
 * server, so only a broken or hostile page reaches them):
 * - requests waiting or running: 1,000,000 (vLLM's default batch is 256 sequences, and its queue
 *   is bounded by the memory of the requests it holds);
 * - KV blocks: 2^30 (a vLLM block is 16 tokens: 16 G tokens of KV; the prefix index clamps its
 *   own capacity much lower, prefix/index.ts);
 * - tokens per block: 65,536 (vLLM uses 16 to 256, TensorRT-LLM 32 to 128, SGLang 1);
 * - cumulative counters: 2^53 − 1, the largest integer a double holds exactly.
 */
export const SIGNAL_MAX = { requests: 1_000_000, blocks: 2 ** 30, blockSize: 65_536, counter: Number.MAX_SAFE_INTEGER } as const;

/**
 * The rule for each signal. KV takes the maximum, not the sum or mean: each engine has its own KV
 * pool, a request lands on one engine, and the fullest engine starts preempting or queueing
 * first, so a mean would hide a saturated engine behind an idle one (inside one server vLLM
 * spreads DP work by queue length, not by KV).
 */
export const SIGNAL_RULES: { readonly [K in NumericSignal]: SignalRule } = {
  waitingRequests: { combine: 'sum', unit: 'count', required: true, max: SIGNAL_MAX.requests },
  runningRequests: { combine: 'sum', unit: 'count', required: true, max: SIGNAL_MAX.requests },
  kvCacheUsage: { combine: 'max', unit: 'fraction', required: true, max: 1 },
  blockSize: { combine: 'agree', unit: 'size', required: false, max: SIGNAL_MAX.blockSize },
  numGpuBlocks: { combine: 'sum', unit: 'count', required: false, max: SIGNAL_MAX.blocks },
  prefixCacheHitsTokens: { combine: 'sum', unit: 'count', required: false, max: SIGNAL_MAX.counter },
  prefixCacheQueriesTokens: { combine: 'sum', unit: 'count', required: false, max: SIGNAL_MAX.counter },
  prefixCacheHitRate: { combine: 'mean', unit: 'fraction', required: false, max: 1 },
  preemptionsTotal: { combine: 'sum', unit: 'count', required: false, max: SIGNAL_MAX.counter },
};

/** The numeric signals in evaluation (and problem-report) order. */
export const NUMERIC_SIGNALS = Object.keys(SIGNAL_RULES) as readonly NumericSignal[];
