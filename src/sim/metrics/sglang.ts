/**
 * SGLang's `/metrics` (`--enable-metrics`; SGLang python/sglang/srt/metrics/collector.py; test/fixtures/metrics/
 * sglang-docs.txt): label `model_name`, queue/running gauges, `sglang:token_usage` (KV use),
 * `sglang:num_used_tokens`, `sglang:max_total_num_tokens`, `sglang:cache_hit_rate`,
 * `sglang:gen_throughput`, token counters, TTFT / TPOT / e2e histograms with SGLang's bucket
 * lists, `sglang:num_retracted_reqs`, and the newer `sglang:cache_config_info{page_size,num_pages}`
 * that tells a reader the KV capacity. Pages are the engine's 16-token blocks (SGLang's own default
 * page size is 1; the simulator has one block size for every runtime).
 *
 * Under the `no-stats` fault only the tokenizer manager's series remain (token counters and the
 * TTFT / TPOT / e2e histograms, which SGLang's TokenizerMetricsCollector keeps in the HTTP
 * process); the scheduler's gauges (queue, running, token usage, …) are missing, as on a page
 * whose scheduler process reports nothing. Ours: SGLang has no `--disable-log-stats`.
 */
import { Histogram, REQUEST_LATENCY_BUCKETS_S, type RequestResult } from '../engine/index.js';
import { header, HistogramLines, labels, pyFloat } from './format.js';
import { statsUnder, type MetricsContext, type MetricsFault, type MetricsPage } from './page.js';

/** SGLang TTFT buckets (§b.3: 0.001…0.1 as vLLM's, then 0.25 … 30). */
export const SGLANG_TTFT_BUCKETS_S = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 15, 20, 25, 30];
/** SGLang TPOT buckets (§b.3: 0.005…0.05, then 0.075 … 2.5; the steps below 0.05 are ours). */
export const SGLANG_TPOT_BUCKETS_S = [0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5];

/** `sglang:gen_throughput` is the generation rate over at least this much modelled time. */
const THROUGHPUT_WINDOW_MS = 1000;

export class SglangMetricsPage implements MetricsPage {
  readonly #ctx: MetricsContext;
  readonly #l: string;
  readonly #cacheConfig: string;
  readonly #ttft = new Histogram(SGLANG_TTFT_BUCKETS_S);
  readonly #tpot = new Histogram(SGLANG_TPOT_BUCKETS_S);
  readonly #e2e = new Histogram(REQUEST_LATENCY_BUCKETS_S);
  readonly #ttftLines: HistogramLines;
  readonly #tpotLines: HistogramLines;
  readonly #e2eLines: HistogramLines;
  #windowStartMs: number;
  #windowStartTokens = 0;
  #throughput = 0;

  constructor(ctx: MetricsContext) {
    this.#ctx = ctx;
    this.#l = labels([['model_name', ctx.modelName]]);
    const p = ctx.engine.profile;
    this.#cacheConfig =
      header('sglang:cache_config_info', 'gauge', 'Information of the KV cache configuration.') +
      `sglang:cache_config_info{${labels([
        ['page_size', String(p.blockSize)],
        ['num_pages', String(p.numGpuBlocks)],
      ])}} 1.0\n`;
    this.#ttftLines = new HistogramLines('sglang:time_to_first_token_seconds', this.#l);
    this.#tpotLines = new HistogramLines('sglang:time_per_output_token_seconds', this.#l);
    this.#e2eLines = new HistogramLines('sglang:e2e_request_latency_seconds', this.#l);
    this.#windowStartMs = ctx.engine.clock.now();
  }

  submitted(): void {}

  token(index: number, sinceSubmitMs: number, sincePrevMs: number): void {
    if (index === 0) this.#ttft.observe(sinceSubmitMs / 1000);
    else this.#tpot.observe(sincePrevMs / 1000);
  }

  finished(result: RequestResult): void {
    if (result.finishReason !== 'abort') this.#e2e.observe(result.e2eMs / 1000);
  }

  render(fault: MetricsFault = 'none'): string {
    const s = statsUnder(fault, this.#ctx.engine.stats());
    const l = this.#l;
    if (s.nowMs - this.#windowStartMs >= THROUGHPUT_WINDOW_MS) {
      this.#throughput = ((s.generationTokensTotal - this.#windowStartTokens) * 1000) / (s.nowMs - this.#windowStartMs);
      this.#windowStartMs = s.nowMs;
      this.#windowStartTokens = s.generationTokensTotal;
    }
    const g = (name: string, help: string, value: number): string => `${header(name, 'gauge', help)}${name}{${l}} ${pyFloat(value)}\n`;
    const c = (name: string, help: string, value: number): string => `${header(name, 'counter', help)}${name}{${l}} ${pyFloat(value)}\n`;
    const capacity = s.numGpuBlocks * s.blockSize;
    const noStats = fault === 'no-stats';
    let out = c('sglang:prompt_tokens_total', 'Number of prefill tokens processed.', s.promptTokensTotal);
    out += c('sglang:generation_tokens_total', 'Number of generation tokens processed.', s.generationTokensTotal);
    if (!noStats) out += g('sglang:token_usage', 'The token usage', s.kvUsage);
    if (!noStats) out += g('sglang:cache_hit_rate', 'The cache hit rate', s.prefixQueriesTokens === 0 ? 0 : s.prefixHitsTokens / s.prefixQueriesTokens);
    out += header('sglang:time_to_first_token_seconds', 'histogram', 'Histogram of time to first token in seconds.');
    out += this.#ttftLines.render(this.#ttft.snapshot());
    out += header('sglang:time_per_output_token_seconds', 'histogram', 'Histogram of time per output token in seconds.');
    out += this.#tpotLines.render(this.#tpot.snapshot());
    out += header('sglang:e2e_request_latency_seconds', 'histogram', 'Histogram of End-to-end request latency in seconds');
    out += this.#e2eLines.render(this.#e2e.snapshot());
    if (noStats) return out;
    out += g('sglang:num_running_reqs', 'The number of running requests', s.running);
    out += g('sglang:num_used_tokens', 'The number of used tokens', s.usedBlocks * s.blockSize);
    out += g('sglang:max_total_num_tokens', 'Maximum total number of tokens in the KV cache pool', capacity);
    out += g('sglang:gen_throughput', 'The generate throughput (token/s)', this.#throughput);
    out += g('sglang:num_queue_reqs', 'The number of requests in the waiting queue', s.waiting);
    out += g('sglang:num_retracted_reqs', 'The number of retracted requests (cumulative here)', s.preemptionsTotal);
    out += this.#cacheConfig;
    return out;
  }
}
