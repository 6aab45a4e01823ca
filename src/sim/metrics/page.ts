/** The contract between a face and its runtime's `/metrics` page. */
import type { Engine, RequestResult } from '../engine/index.js';

/**
 * Per-request events a page may count beyond what `Engine.stats()` offers (SGLang's own histogram
 * buckets, Triton's context-phase count). Called from inside engine callbacks: keep them cheap.
 */
export interface RequestObserver {
  /** A request was handed to the engine. */
  submitted(): void;
  /** Token `index` was produced; `sinceSubmitMs` is the TTFT for index 0, `sincePrevMs` the gap otherwise. */
  token(index: number, sinceSubmitMs: number, sincePrevMs: number): void;
  /** The request finished (any reason, exactly once after `submitted`). */
  finished(result: RequestResult): void;
}

export interface MetricsPage extends RequestObserver {
  /** The page text (Prometheus exposition format 0.0.4). */
  render(): string;
}

export interface MetricsContext {
  readonly engine: Engine;
  /** `model_name` label: the primary served model name (vLLM labels with the first served name). */
  readonly modelName: string;
  /** vLLM `--enable-lora`: the server serves adapters (v1 prints `lora_requests_info` only then). */
  readonly loraEnabled: boolean;
}

export const NO_OBSERVER: RequestObserver = {
  submitted() {},
  token() {},
  finished() {},
};

/** Content type of a Prometheus text page. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
