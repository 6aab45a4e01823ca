import { toOpenAIError, type GatewayError } from '../core/errors.js';

/** A refusal as every data plane sends it: status, headers and the OpenAI-style JSON body. */
export interface ErrorResponse {
  readonly status: number;
  /** Lower-case names: `content-type`, `content-length`, `x-request-id`; `retry-after` (seconds) and `allow` when the error carries them. */
  readonly headers: Record<string, string>;
  /** `{"error":{"message","type","param":null,"code"}}` (OpenAI's error shape). */
  readonly body: Buffer;
}

/**
 * The answer to a request refused with `err` before its response started: the error's status, its
 * OpenAI-style body, and `Retry-After` (shed, queue full, no room in the body budget) and `Allow`
 * (a method the route does not take) when it carries them. The standalone proxy writes it as an
 * HTTP response; the endpoint picker sends the same status, headers and body as Envoy's
 * `immediate_response`, so a client sees one answer whichever data plane refused it.
 */
export function errorResponse(err: GatewayError, requestId: string): ErrorResponse {
  const body = Buffer.from(JSON.stringify(toOpenAIError(err)));
  const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(body.length), 'x-request-id': requestId };
  if (err.retryAfterSeconds !== undefined) headers['retry-after'] = String(err.retryAfterSeconds);
  if (err.allow !== undefined) headers['allow'] = err.allow;
  return { status: err.status, headers, body };
}

/**
 * The SSE error event and terminator that end a stream which has already started (vLLM's shape:
 * `data: {"error":{…}}` then `data: [DONE]`): its status line is gone, so the error travels in the
 * stream. A body that is not a stream can only be cut.
 */
export function sseErrorEvent(err: GatewayError): Buffer {
  return Buffer.from(`data: ${JSON.stringify(toOpenAIError(err))}\n\ndata: [DONE]\n\n`);
}
