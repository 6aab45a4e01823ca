/**
 * Where each load signal lives on each runtime's `/metrics` page (vLLM vllm/v1/metrics/loggers.py, SGLang python/sglang/srt/metrics/collector.py, Triton's TensorRT-LLM backend and trtllm-serve metrics), as data:
 * supporting a new runtime, or a runtime's renamed metric, adds an entry or a fallback source,
 * never a branch in the extractor.
 */
import type { MetricsDialect } from '../../core/endpoint.js';
import { scanMetrics } from './prometheus-text.js';
import type { Combine, NumericSignal } from './signals.js';

/**
 * A runtime dialect. `trt-llm` is Triton with the TensorRT-LLM backend (`nv_trt_llm_*`);
 * `trtllm-serve` is TensorRT-LLM's own OpenAI server (`trtllm_*`).
 */
export type Dialect = MetricsDialect;

/** The dialect of a pool that names none (GIE's and the InferencePool annotation's default). */
export const DEFAULT_DIALECT: Dialect = 'vllm';

/** The series of one family, optionally filtered by labels. */
export interface SeriesSource {
  /** Family name as scraped (counters with their `_total`). */
  readonly family: string;
  /** Only series whose labels have these values (e.g. `{ request_type: 'waiting' }`). */
  readonly where?: Readonly<Record<string, string>>;
  /**
   * Read this label's value as the number instead of the sample value, for info-style gauges
   * whose value is a constant 1 (`vllm:cache_config_info`).
   */
  readonly label?: string;
  /** How this source's series combine. Default: the signal's rule (or `sum` inside a derive). */
  readonly combine?: Combine;
}

/**
 * A value computed from two sources, for runtimes that lack the direct series. Each operand's
 * series are combined first (default `sum`), then:
 * - `difference`: a − b, floored at 0 (a count cannot be negative);
 * - `ratio`: a / b, and 0 when b is 0 (TensorRT-LLM's own definition of `fraction`);
 * - `quotient`: ⌊a / b⌋; absent when b is not positive.
 */
export interface DerivedSource {
  readonly derive: 'difference' | 'ratio' | 'quotient';
  readonly of: readonly [SeriesSource, SeriesSource];
}

export type MetricSource = SeriesSource | DerivedSource;

/** How to read `vllm:lora_requests_info`-style series: the one with the largest value wins. */
export interface LoraSource {
  readonly family: string;
  readonly maxLabel: string;
  readonly runningLabel: string;
  readonly waitingLabel: string;
}

export interface DialectSpec {
  readonly name: Dialect;
  /** Metric-name prefixes that identify a page of this dialect. */
  readonly prefixes: readonly string[];
  /** For each signal, sources tried in order; the first that yields a value wins. */
  readonly signals: { readonly [K in NumericSignal]?: readonly MetricSource[] };
  readonly lora?: LoraSource;
}

const TRITON_REQUESTS = 'nv_trt_llm_request_metrics';
const TRITON_KV = 'nv_trt_llm_kv_cache_block_metrics';
const triton = (family: string, key: string, value: string): SeriesSource => ({ family, where: { [key]: value } });
const request = (type: string): SeriesSource => triton(TRITON_REQUESTS, 'request_type', type);
const kvBlocks = (type: string): SeriesSource => triton(TRITON_KV, 'kv_cache_block_type', type);

/** Every known dialect; detection tries them in this order. */
export const DIALECTS: { readonly [D in Dialect]: DialectSpec } = {
  vllm: {
    name: 'vllm',
    prefixes: ['vllm:'],
    signals: {
      waitingRequests: [{ family: 'vllm:num_requests_waiting' }],
      runningRequests: [{ family: 'vllm:num_requests_running' }],
      // 0.9.2 renamed the KV and prefix series; the old names are all that 0.6.4–0.9.1 emit,
      // and newer servers may emit both while the old ones are deprecated.
      kvCacheUsage: [{ family: 'vllm:kv_cache_usage_perc' }, { family: 'vllm:gpu_cache_usage_perc' }],
      blockSize: [{ family: 'vllm:cache_config_info', label: 'block_size' }],
      numGpuBlocks: [{ family: 'vllm:cache_config_info', label: 'num_gpu_blocks' }],
      prefixCacheHitsTokens: [{ family: 'vllm:prefix_cache_hits_total' }, { family: 'vllm:gpu_prefix_cache_hits_total' }],
      prefixCacheQueriesTokens: [
        { family: 'vllm:prefix_cache_queries_total' },
        { family: 'vllm:gpu_prefix_cache_queries_total' },
      ],
      // v0 only has a gauge (-1 when unused, which the fraction rule treats as absent).
      prefixCacheHitRate: [{ family: 'vllm:gpu_prefix_cache_hit_rate' }],
      preemptionsTotal: [{ family: 'vllm:num_preemptions_total' }],
    },
    lora: {
      family: 'vllm:lora_requests_info',
      maxLabel: 'max_lora',
      runningLabel: 'running_lora_adapters',
      waitingLabel: 'waiting_lora_adapters',
    },
  },
  sglang: {
    name: 'sglang',
    prefixes: ['sglang:'],
    signals: {
      waitingRequests: [{ family: 'sglang:num_queue_reqs' }],
      runningRequests: [{ family: 'sglang:num_running_reqs' }],
      kvCacheUsage: [
        { family: 'sglang:token_usage' },
        { derive: 'ratio', of: [{ family: 'sglang:num_used_tokens' }, { family: 'sglang:max_total_num_tokens' }] },
      ],
      blockSize: [{ family: 'sglang:cache_config_info', label: 'page_size' }],
      numGpuBlocks: [
        { family: 'sglang:cache_config_info', label: 'num_pages' },
        {
          derive: 'quotient',
          of: [
            { family: 'sglang:max_total_num_tokens' },
            { family: 'sglang:cache_config_info', label: 'page_size', combine: 'agree' },
          ],
        },
      ],
      prefixCacheHitRate: [{ family: 'sglang:cache_hit_rate' }],
    },
  },
  'trt-llm': {
    name: 'trt-llm',
    prefixes: ['nv_trt_llm_'],
    signals: {
      // `waiting` and `fraction` exist since tensorrtllm_backend 15cb989 (Triton 25.03); older
      // backends get them computed the way the backend itself defines them.
      waitingRequests: [request('waiting'), { derive: 'difference', of: [request('active'), request('scheduled')] }],
      runningRequests: [request('scheduled')],
      kvCacheUsage: [kvBlocks('fraction'), { derive: 'ratio', of: [kvBlocks('used'), kvBlocks('max')] }],
      blockSize: [kvBlocks('tokens_per')],
      numGpuBlocks: [kvBlocks('max')],
    },
  },
  'trtllm-serve': {
    name: 'trtllm-serve',
    prefixes: ['trtllm_'],
    signals: {
      waitingRequests: [{ family: 'trtllm_num_requests_waiting' }],
      runningRequests: [{ family: 'trtllm_num_requests_running' }],
      kvCacheUsage: [
        { family: 'trtllm_kv_cache_utilization' },
        { derive: 'ratio', of: [{ family: 'trtllm_kv_cache_used_blocks' }, { family: 'trtllm_kv_cache_max_blocks' }] },
      ],
      blockSize: [{ family: 'trtllm_kv_cache_tokens_per_block' }],
      numGpuBlocks: [{ family: 'trtllm_kv_cache_max_blocks' }],
      prefixCacheHitRate: [{ family: 'trtllm_kv_cache_hit_rate' }],
    },
  },
};

/**
 * Runtime names as written in config and pod labels → dialect: the InferencePool annotation
 * values (`vllm`, `sglang`, `trt-llm`) and GIE's `engine-type` pod-label values (`vllm`,
 * `sglang`, `trtllm-serve`, `triton-tensorrt-llm`).
 */
const ALIASES: ReadonlyMap<string, Dialect> = new Map<string, Dialect>([
  ['vllm', 'vllm'],
  ['sglang', 'sglang'],
  ['trt-llm', 'trt-llm'],
  ['triton-tensorrt-llm', 'trt-llm'],
  ['trtllm-serve', 'trtllm-serve'],
]);

/**
 * Normalises a runtime name from config or a pod label. Trims and ignores case.
 * Returns `DEFAULT_DIALECT` (`vllm`) for undefined or empty, and undefined for an unknown name
 * (the caller reports it as a config problem).
 */
export function resolveDialect(value: string | undefined): Dialect | undefined {
  const key = value?.trim().toLowerCase() ?? '';
  if (key === '') return DEFAULT_DIALECT;
  return ALIASES.get(key);
}

/** All dialects' prefixes, for one scan that both extracts and detects. */
export const ALL_PREFIXES: readonly string[] = Object.values(DIALECTS).flatMap((d) => d.prefixes);

/**
 * The dialect a page's metric names belong to, from the prefixes seen on sample lines. When
 * several match (not seen in practice), `preferred` wins if it is among them, else the first in
 * `DIALECTS` order. Undefined when none match.
 */
export function dialectFromPrefixes(seenPrefixes: readonly string[], preferred?: Dialect): Dialect | undefined {
  let first: Dialect | undefined;
  for (const spec of Object.values(DIALECTS)) {
    if (!spec.prefixes.some((p) => seenPrefixes.includes(p))) continue;
    if (spec.name === preferred) return spec.name;
    first ??= spec.name;
  }
  return first;
}

const NOTHING: ReadonlySet<string> = new Set();

/** The dialect of a `/metrics` page from its metric-name prefixes; undefined when unknown. */
export function detectDialect(text: string): Dialect | undefined {
  return dialectFromPrefixes(scanMetrics(text, NOTHING, { prefixes: ALL_PREFIXES }).seenPrefixes);
}
