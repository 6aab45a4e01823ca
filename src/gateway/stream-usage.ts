import type { RoutingConfig } from '../api/types.js';
import type { Endpoint, MetricsDialect } from '../core/endpoint.js';
import { apiEndpoint } from './inference-paths.js';

/**
 * Which model servers accept `stream_options.include_usage` (vLLM vllm/entrypoints/openai/serving_chat.py, chat_completion_stream_generator):
 * - vLLM: since 0.5 (every version we target, ≥ 0.6.4);
 * - SGLang: its OpenAI server reads `stream_options` (≥ 0.3.6);
 * - trtllm-serve (TensorRT-LLM's own OpenAI server): its request models carry `stream_options`;
 * - Triton's OpenAI frontend (TensorRT-LLM): refuses the field before 25.11 (422 before server
 *   2.60, 400 for TensorRT-LLM backends from 2.60 to 2.62), so it is never asked.
 * Keyed by the endpoint's dialect (configured, or detected from its /metrics page), not the pool's
 * runtime: a pool without the runtime annotation is `vllm` while its Triton pods are detected.
 *
 * A request must never fail because of something the gateway added. So the field is added only
 * when the runtime is known to accept it: an endpoint whose dialect is only the default (no
 * runtime configured, and no scrape has shown its metric names yet: before the first scrape, with
 * scraping off, while scrapes fail) is not asked, and neither is a server whose page shows
 * Triton's core series (Triton's vLLM backend exports `vllm:` names, its frontend still refuses
 * the field). Such streams are counted by their chunks instead (`usageEstimated` in the request
 * log, `infergate_usage_estimated_requests_total`).
 */
const ACCEPTS_STREAM_OPTIONS: Readonly<Record<MetricsDialect, boolean>> = { vllm: true, sglang: true, 'trt-llm': false, 'trtllm-serve': true };

/** Routes whose streams report usage only when asked (the Responses API always reports it). */
const USAGE_ON_REQUEST = new Set(['/v1/chat/completions', '/v1/completions']);

/**
 * Whether the gateway may ask a pool's streams for usage on the client's behalf on `path`:
 * `inject` or `off` when the pool's `infergate.dev/routing` `streamUsage` says so, `endpoint` when
 * the endpoints that may answer decide (every one must accept the field: `acceptStreamUsage`), and
 * `off` on routes where usage need not be asked for.
 */
export function streamUsageSetting(routing: RoutingConfig | undefined, path: string): 'inject' | 'off' | 'endpoint' {
  if (!USAGE_ON_REQUEST.has(apiEndpoint(path))) return 'off';
  const set = routing?.streamUsage;
  return set === undefined ? 'endpoint' : set;
}

/**
 * True when every endpoint the request may go to is known to accept `stream_options.include_usage`
 * (its dialect configured or detected, and one that accepts it; not a Triton server).
 */
export function acceptStreamUsage(endpoints: readonly Pick<Endpoint, 'dialect' | 'dialectKnown' | 'servedByTriton'>[]): boolean {
  return endpoints.every((e) => e.dialectKnown() && ACCEPTS_STREAM_OPTIONS[e.dialect] && !e.servedByTriton);
}

/**
 * A pool's answer, for a request whose endpoints are not chosen yet: only a runtime the pool
 * names (annotation or traffic policy) may be asked; the default is a guess.
 */
export function poolAcceptsStreamUsage(runtime: MetricsDialect, configured: boolean): boolean {
  return configured && ACCEPTS_STREAM_OPTIONS[runtime];
}
