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

/**
 * The API endpoint a normalised path (request-path.ts: dot segments removed, slashes merged,
 * unreserved escapes decoded, query apart) names on a model server: the path without its one
 * trailing slash. vLLM, SGLang, trtllm-serve and Triton's OpenAI frontend are FastAPI apps, whose
 * router (Starlette, `redirect_slashes`) sends `/v1/chat/completions/` on to
 * `/v1/chat/completions`: the same endpoint, so the same rules (an empty body is the gateway's
 * 400, usage is asked for, `/v1/models/` is the list). Case and other spellings are not folded:
 * those routers match them exactly (`/V1/chat/completions` is their 404). The path is forwarded
 * as normalised, trailing slash included.
 */
export function apiEndpoint(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/** True when `method` `path` (normalised) is an inference request, which must carry a body naming the model. */
export function needsInferenceBody(method: string, path: string): boolean {
  return method === 'POST' && INFERENCE_PATHS.has(apiEndpoint(path));
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
