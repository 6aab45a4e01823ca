import type { ModelServerRuntime, RoutingConfig } from '../api/types.js';

/**
 * Which runtimes accept `stream_options.include_usage` (vLLM vllm/entrypoints/openai/serving_chat.py, chat_completion_stream_generator):
 * - vLLM: since 0.5 (every version we target, ≥ 0.6.4);
 * - SGLang: its OpenAI server reads `stream_options` (≥ 0.3.6);
 * - Triton's OpenAI frontend (TensorRT-LLM): refuses the field before 25.11 (422 before server
 *   2.60, 400 for TensorRT-LLM backends from 2.60 to 2.62), so it is off by default.
 */
const ACCEPTS_STREAM_OPTIONS: Readonly<Record<ModelServerRuntime, boolean>> = { vllm: true, sglang: true, 'trt-llm': false };

/** Routes whose streams report usage only when asked (the Responses API always reports it). */
const USAGE_ON_REQUEST = new Set(['/v1/chat/completions', '/v1/completions']);

/**
 * Whether the gateway asks a pool's streams for usage on the client's behalf: the pool's
 * `infergate.dev/routing` `streamUsage` if set, else its runtime's capability; only on the routes
 * where usage must be asked for.
 */
export function injectsStreamUsage(runtime: ModelServerRuntime, routing: RoutingConfig | undefined, path: string): boolean {
  if (!USAGE_ON_REQUEST.has(path)) return false;
  const set = routing?.streamUsage;
  return set === undefined ? ACCEPTS_STREAM_OPTIONS[runtime] : set === 'inject';
}
