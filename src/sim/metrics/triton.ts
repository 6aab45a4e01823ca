/**
 * Triton + TensorRT-LLM backend `/metrics` (Triton's TensorRT-LLM backend metrics docs; test/fixtures/metrics/
 * triton-trtllm-docs.txt), as the OpenAI frontend serves it (`server.metrics()`), with the model
 * labels of the backend model: `model="tensorrt_llm",version="1"`.
 *
 * - `nv_trt_llm_request_metrics{request_type}`: active (in the server: waiting + running),
 *   max (`max_num_seqs`), scheduled (running), context (running requests still in their prompt
 *   phase), waiting = active − scheduled (the backend's own definition).
 * - `nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type}`: max, free, used, tokens_per,
 *   reused (cumulative blocks served from the cache), fraction = used / max.
 * - `nv_trt_llm_general_metrics{general_type}`: iteration_counter, timestamp (µs).
 * - core counters `nv_inference_request_success|failure`, `nv_inference_count`,
 *   `nv_inference_exec_count`, `nv_inference_request_duration_us`, `nv_inference_queue_duration_us`
 *   and the gauge `nv_inference_pending_request_count`.
 *
 * Under the `no-stats` fault only Triton core's `nv_inference_*` series remain: the page of a
 * server whose TensorRT-LLM backend reports no custom metrics (the `nv_trt_llm_*` families come
 * from the backend's metrics reporter, not from Triton core). Ours: Triton has no such flag for
 * the OpenAI frontend.
 */
import type { EngineStats, RequestResult } from '../engine/index.js';
import { cppFloat, header } from './format.js';
import { statsUnder, type MetricsContext, type MetricsFault, type MetricsPage } from './page.js';

const MODEL = 'model="tensorrt_llm",version="1"';

export class TritonMetricsPage implements MetricsPage {
  readonly #ctx: MetricsContext;
  /** Requests handed to the engine that have not produced a token (nor finished) yet. */
  #beforeFirstToken = 0;
  #requestDurationUs = 0;
  #queueDurationUs = 0;

  constructor(ctx: MetricsContext) {
    this.#ctx = ctx;
  }

  submitted(): void {
    this.#beforeFirstToken++;
  }

  token(index: number): void {
    if (index === 0) this.#beforeFirstToken--;
  }

  finished(result: RequestResult): void {
    if (result.completionTokens === 0) this.#beforeFirstToken--;
    this.#requestDurationUs += Math.round(result.e2eMs * 1000);
    this.#queueDurationUs += Math.round((result.queueMs ?? 0) * 1000);
  }

  render(fault: MetricsFault = 'none'): string {
    const s = statsUnder(fault, this.#ctx.engine.stats());
    const one = (name: string, type: 'gauge' | 'counter', help: string, v: number): string => `${header(name, type, help)}${name}{${MODEL}} ${cppFloat(v)}\n`;
    const ok = s.requestSuccessTotal.stop + s.requestSuccessTotal.length;
    let out = fault === 'no-stats' ? '' : this.#backendSeries(s);
    out += one('nv_inference_request_success', 'counter', 'Number of successful inference requests, all batch sizes', ok);
    out += one('nv_inference_request_failure', 'counter', 'Number of failed inference requests, all batch sizes', s.requestSuccessTotal.abort);
    out += one('nv_inference_count', 'counter', 'Number of inferences performed (does not include cached requests)', ok);
    out += one('nv_inference_exec_count', 'counter', 'Number of model executions performed (does not include cached requests)', s.stepsTotal);
    out += one('nv_inference_request_duration_us', 'counter', 'Cumulative inference request duration in microseconds (includes cached requests)', this.#requestDurationUs);
    out += one('nv_inference_queue_duration_us', 'counter', 'Cumulative inference queuing duration in microseconds (includes cached requests)', this.#queueDurationUs);
    out += one('nv_inference_pending_request_count', 'gauge', 'Instantaneous number of pending requests awaiting execution per-model.', s.waiting + s.arriving);
    return out;
  }

  /** The TensorRT-LLM backend's custom families (`nv_trt_llm_*`). */
  #backendSeries(s: EngineStats): string {
    const active = s.running + s.waiting + s.arriving;
    const context = Math.max(0, Math.min(s.running, this.#beforeFirstToken - s.waiting - s.arriving));
    const req = (type: string, v: number): string => `nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="${type}",version="1"} ${cppFloat(v)}\n`;
    const kv = (type: string, v: number): string => `nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="${type}",model="tensorrt_llm",version="1"} ${cppFloat(v)}\n`;
    const gen = (type: string, v: number): string => `nv_trt_llm_general_metrics{general_type="${type}",model="tensorrt_llm",version="1"} ${cppFloat(v)}\n`;
    let out = header('nv_trt_llm_request_metrics', 'gauge', 'TRT LLM request metrics');
    out += req('waiting', Math.max(0, active - s.running));
    out += req('context', context);
    out += req('scheduled', s.running);
    out += req('max', this.#ctx.engine.profile.maxNumSeqs);
    out += req('active', active);
    out += header('nv_trt_llm_kv_cache_block_metrics', 'gauge', 'TRT LLM KV cache block metrics');
    // kvUsage is used / max; read through it so the `nan` fault reaches this gauge too.
    out += kv('fraction', s.kvUsage);
    out += kv('tokens_per', s.blockSize);
    out += kv('used', s.usedBlocks);
    out += kv('free', s.numGpuBlocks - s.usedBlocks);
    out += kv('max', s.numGpuBlocks);
    out += kv('reused', Math.floor(s.prefixHitsTokens / s.blockSize));
    out += header('nv_trt_llm_general_metrics', 'gauge', 'General TRT LLM metrics');
    out += gen('iteration_counter', s.stepsTotal);
    out += gen('timestamp', Math.round(s.epochMs * 1000));
    return out;
  }
}
