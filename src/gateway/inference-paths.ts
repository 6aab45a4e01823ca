import { GatewayError } from '../core/errors.js';
import { parseInferenceBody } from './body.js';

/**
 * The OpenAI API paths whose requests are inference bodies: a `POST` of a JSON object naming the
 * `model` (chat, completions, embeddings, the Responses API, and vLLM's rerank and score). A body
 * sent to an InferencePool on any path is read as one; on these paths a request without a body is
 * one too, only empty: it gets the gateway's 400 `missing_model`, never a model server's answer.
 * Other bodyless requests to a pool (`GET /health`, `POST /reset_prefix_cache`) are balanced
 * without a model.
 */
const INFERENCE_PATHS: ReadonlySet<string> = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/v1/rerank', '/v1/score']);

/** True when `method` `path` is an inference request, which must carry a body naming the model. */
export function needsInferenceBody(method: string, path: string): boolean {
  return method === 'POST' && INFERENCE_PATHS.has(path);
}

/** The 400 of an inference request that came without a body. */
export function emptyBodyError(method: string, path: string): GatewayError {
  return new GatewayError('missing_model', `request body is empty: ${method} ${path} needs a JSON body naming a "model"`);
}

/**
 * Throws the 400 a body the gateway could not read as an inference body deserves (invalid JSON,
 * duplicate keys, too deep, a field of the wrong type, no `model`; an empty one on an inference
 * path); returns when the body is readable or bodyless on another path.
 */
export function refuseUnreadableBody(method: string, path: string, body: Buffer | undefined): void {
  if (body === undefined || body.length === 0) {
    if (needsInferenceBody(method, path)) throw emptyBodyError(method, path);
    return;
  }
  parseInferenceBody(body);
}
