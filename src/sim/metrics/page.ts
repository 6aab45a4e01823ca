/** The contract between a face and its runtime's `/metrics` page. */
import type { Engine, EngineStats, RequestResult } from '../engine/index.js';
import type { HttpRequestCounts } from './process.js';

/**
 * A fault of the `/metrics` page (docs/simulator.md "Faults"):
 * - `none`: the runtime's page;
 * - `no-stats`: the page still answers 200 but without the engine's series, as vLLM with
 *   `--disable-log-stats` (each page says what remains);
 * - `nan`: the load gauges (waiting, running, KV-cache usage) read `NaN`.
 */
export type MetricsFault = 'none' | 'no-stats' | 'nan';

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
  /** The page text (Prometheus exposition format 0.0.4), with `fault` applied (default none). */
  render(fault?: MetricsFault): string;
}

export interface MetricsContext {
  readonly engine: Engine;
  /** `model_name` label: the primary served model name (vLLM labels with the first served name). */
  readonly modelName: string;
  /** vLLM `--enable-lora`: the server serves adapters (v1 prints `lora_requests_info` only then). */
  readonly loraEnabled: boolean;
  /**
   * HTTP requests by handler, method and status class, as prometheus-fastapi-instrumentator counts
   * them (vLLM V1 prints them; the simulator only on its `no-stats` page). Optional.
   */
  readonly http?: HttpRequestCounts;
}

/**
 * The engine's stats with the `nan` fault applied: the load gauges a scheduler reads (running,
 * waiting, KV usage) become NaN, everything else stays.
 */
export function statsUnder(fault: MetricsFault, stats: EngineStats): EngineStats {
  return fault === 'nan' ? { ...stats, running: NaN, waiting: NaN, kvUsage: NaN } : stats;
}

export const NO_OBSERVER: RequestObserver = {
  submitted() {},
  token() {},
  finished() {},
};

/** Content type of a Prometheus text page. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
