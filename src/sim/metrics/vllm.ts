/**
 * vLLM's `/metrics` (vLLM vllm/engine/metrics.py (v0), vllm/v1/metrics/loggers.py, docs/design/metrics.md; test/fixtures/metrics/vllm-*.txt):
 *
 * - V1 (runtime `vllm`, the ≥ 0.9.2 names): labels `model_name` + `engine="0"`;
 *   `vllm:kv_cache_usage_perc`, prefix-cache query/hit counters in tokens,
 *   `vllm:num_preemptions_total`, `vllm:inter_token_latency_seconds`, V1 histogram buckets,
 *   `vllm:lora_requests_info` only when LoRA is enabled.
 * - V0 (runtime `vllm-v0`, 0.6.x): label `model_name`; `vllm:gpu_cache_usage_perc`,
 *   `vllm:gpu_prefix_cache_hit_rate` (a gauge), `vllm:time_per_output_token_seconds`, the shorter
 *   V0 bucket lists, `vllm:lora_requests_info` always (`max_lora="0"` when LoRA is off).
 *
 * Under the `no-stats` fault (vLLM `--disable-log-stats`: no stat logger, so no `vllm:` series)
 * V1 keeps what its API server registers besides the engine — prometheus_client's process
 * collectors and the instrumentator's `http_requests_total` (process.ts) — while V0 0.6.x, whose
 * API server reads the engine's metrics in prometheus_client's multiprocess mode, answers an empty
 * page (vllm-project/vllm issue #8612: 200 with no body; docs/design/v1/metrics.md: the process
 * collectors "are not exposed when multiprocess mode is used").
 *
 * Counters are printed as prometheus_client prints them: `# TYPE x_total counter` and the sample
 * `x_total`. `vllm:lora_requests_info` keeps one series per label combination ever reported,
 * each holding the (modelled) epoch seconds it was last current, as the real gauge does; a reader
 * takes the series with the largest value.
 */
import type { EngineStats } from '../engine/index.js';
import { header, HistogramLines, labels, pyFloat } from './format.js';
import { statsUnder, type MetricsContext, type MetricsFault, type MetricsPage } from './page.js';
import { pythonProcessSeries } from './process.js';

/** V0 (0.6.x) bucket lists: the V1 lists cut at 10 s (TTFT), 2.5 s (TPOT) and 60 s (e2e). */
const V0_TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
const V0_TPOT = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];
const V0_E2E = [1, 2.5, 5, 10, 15, 20, 30, 40, 50, 60];

/** Label combinations of `lora_requests_info` kept (the oldest is dropped beyond this). */
const LORA_SERIES_KEPT = 64;

export class VllmMetricsPage implements MetricsPage {
  readonly #ctx: MetricsContext;
  readonly #v1: boolean;
  readonly #l: string;
  readonly #cacheConfig: string;
  readonly #ttft: HistogramLines;
  readonly #itl: HistogramLines;
  readonly #e2e: HistogramLines;
  readonly #queue: HistogramLines | undefined;
  readonly #success: readonly [string, string, string];
  readonly #loraSeries = new Map<string, number>();
  readonly #startEpochMs: number;

  constructor(ctx: MetricsContext, version: 'v1' | 'v0') {
    this.#ctx = ctx;
    this.#startEpochMs = ctx.engine.clock.toEpochMs();
    this.#v1 = version === 'v1';
    const base: Array<[string, string]> = [['model_name', ctx.modelName]];
    if (this.#v1) base.push(['engine', '0']);
    this.#l = labels(base);
    const p = ctx.engine.profile;
    const cache: Array<[string, string]> = [
      ['block_size', String(p.blockSize)],
      ['cache_dtype', 'auto'],
      ['calculate_kv_scales', 'False'],
      ['cpu_offload_gb', '0'],
      ['enable_prefix_caching', 'True'],
      ['gpu_memory_utilization', '0.9'],
      ['is_attention_free', 'False'],
      ['num_cpu_blocks', '0'],
      ['num_gpu_blocks', String(p.numGpuBlocks)],
      ['num_gpu_blocks_override', 'None'],
      ['sliding_window', 'None'],
      ['swap_space_bytes', '4294967296'],
    ];
    if (this.#v1) cache.push(['engine', '0']);
    this.#cacheConfig =
      header('vllm:cache_config_info', 'gauge', 'Information of the LLMEngine CacheConfig.') + `vllm:cache_config_info{${labels(cache)}} 1.0\n`;
    const l = this.#l;
    this.#ttft = new HistogramLines('vllm:time_to_first_token_seconds', l, this.#v1 ? undefined : V0_TTFT);
    this.#itl = this.#v1
      ? new HistogramLines('vllm:inter_token_latency_seconds', l)
      : new HistogramLines('vllm:time_per_output_token_seconds', l, V0_TPOT);
    this.#e2e = new HistogramLines('vllm:e2e_request_latency_seconds', l, this.#v1 ? undefined : V0_E2E);
    this.#queue = this.#v1 ? new HistogramLines('vllm:request_queue_time_seconds', l) : undefined;
    this.#success = [
      `vllm:request_success_total{${l},finished_reason="stop"} `,
      `vllm:request_success_total{${l},finished_reason="length"} `,
      `vllm:request_success_total{${l},finished_reason="abort"} `,
    ];
  }

  submitted(): void {}
  token(): void {}
  finished(): void {}

  render(fault: MetricsFault = 'none'): string {
    if (fault === 'no-stats') return this.#v1 ? pythonProcessSeries(this.#startEpochMs) + (this.#ctx.http?.render() ?? '') : '';
    const s = statsUnder(fault, this.#ctx.engine.stats());
    const l = this.#l;
    const g = (name: string, help: string, value: number): string => `${header(name, 'gauge', help)}${name}{${l}} ${pyFloat(value)}\n`;
    const c = (name: string, help: string, value: number): string => `${header(name, 'counter', help)}${name}{${l}} ${pyFloat(value)}\n`;
    let out = this.#cacheConfig;
    out += g('vllm:num_requests_running', 'Number of requests in model execution batches.', s.running);
    // vLLM keeps requests waiting for a remote prefill's KV in its waiting queue.
    out += g('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', s.waiting + s.awaitingKv);
    if (this.#v1) {
      out += g('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', s.kvUsage);
      out += c('vllm:prefix_cache_queries_total', 'Prefix cache queries, in terms of number of queried tokens.', s.prefixQueriesTokens);
      out += c('vllm:prefix_cache_hits_total', 'Prefix cache hits, in terms of number of cached tokens.', s.prefixHitsTokens);
    } else {
      out += g('vllm:num_requests_swapped', 'Number of requests swapped to CPU.', 0);
      out += g('vllm:gpu_cache_usage_perc', 'GPU KV-cache usage. 1 means 100 percent usage.', s.kvUsage);
      out += g('vllm:cpu_cache_usage_perc', 'CPU KV-cache usage. 1 means 100 percent usage.', 0);
      const rate = s.prefixQueriesTokens === 0 ? 0 : s.prefixHitsTokens / s.prefixQueriesTokens;
      out += g('vllm:gpu_prefix_cache_hit_rate', 'GPU prefix cache block hit rate.', rate);
      out += g('vllm:cpu_prefix_cache_hit_rate', 'CPU prefix cache block hit rate.', -1);
    }
    out += c('vllm:num_preemptions_total', 'Cumulative number of preemption from the engine.', s.preemptionsTotal);
    out += c('vllm:prompt_tokens_total', 'Number of prefill tokens processed.', s.promptTokensTotal);
    out += c('vllm:generation_tokens_total', 'Number of generation tokens processed.', s.generationTokensTotal);
    out += header('vllm:request_success_total', 'counter', 'Count of successfully processed requests.');
    out += `${this.#success[0]}${pyFloat(s.requestSuccessTotal.stop)}\n`;
    out += `${this.#success[1]}${pyFloat(s.requestSuccessTotal.length)}\n`;
    out += `${this.#success[2]}${pyFloat(s.requestSuccessTotal.abort)}\n`;
    out += header('vllm:time_to_first_token_seconds', 'histogram', 'Histogram of time to first token in seconds.');
    out += this.#ttft.render(s.histograms.ttft);
    if (this.#v1) {
      out += header('vllm:inter_token_latency_seconds', 'histogram', 'Histogram of inter-token latency in seconds.');
    } else {
      out += header('vllm:time_per_output_token_seconds', 'histogram', 'Histogram of time per output token in seconds.');
    }
    out += this.#itl.render(s.histograms.interTokenLatency);
    out += header('vllm:e2e_request_latency_seconds', 'histogram', 'Histogram of end to end request latency in seconds.');
    out += this.#e2e.render(s.histograms.e2eLatency);
    if (this.#queue !== undefined) {
      out += header('vllm:request_queue_time_seconds', 'histogram', 'Histogram of time spent in WAITING phase for request.');
      out += this.#queue.render(s.histograms.queueTime);
    }
    if (!this.#v1 || this.#ctx.loraEnabled) out += this.#lora(s);
    return out;
  }

  #lora(s: EngineStats): string {
    const max = this.#ctx.loraEnabled ? s.lora.maxLoras : 0;
    const key = labels([
      ['max_lora', String(max)],
      ['running_lora_adapters', s.lora.running.join(',')],
      ['waiting_lora_adapters', s.lora.waiting.join(',')],
    ]);
    const series = this.#loraSeries;
    series.set(key, s.lora.updatedAtSeconds);
    if (series.size > LORA_SERIES_KEPT) {
      let oldest: string | undefined;
      let oldestValue = Infinity;
      for (const [k, v] of series) {
        if (v < oldestValue) {
          oldestValue = v;
          oldest = k;
        }
      }
      if (oldest !== undefined) series.delete(oldest);
    }
    let out = header('vllm:lora_requests_info', 'gauge', 'Running stats on lora requests.');
    for (const [k, v] of series) out += `vllm:lora_requests_info{${k}} ${pyFloat(v)}\n`;
    return out;
  }
}
