import { STATUS_CODES } from 'node:http';

/** Error bodies longer than this pass through unchanged (nothing sane is that long). */
export const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** Messages taken from non-JSON bodies are cut here. */
const MAX_TEXT_MESSAGE = 1024;

/** OpenAI's `error.type` for an HTTP status, when the server's body names none. */
function typeFor(status: number): string {
  if (status === 400 || status === 422) return 'invalid_request_error';
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  return status >= 500 ? 'server_error' : 'invalid_request_error';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** FastAPI's `detail`: a string, or pydantic's list of `{loc, msg}`. */
function detailMessage(detail: unknown): string | undefined {
  if (typeof detail === 'string') return detail;
  if (!Array.isArray(detail)) return undefined;
  const parts = detail.map((d) => {
    if (!isRecord(d)) return String(d);
    const loc = Array.isArray(d['loc']) ? d['loc'].join('.') : undefined;
    return `${loc === undefined ? '' : `${loc}: `}${String(d['msg'] ?? JSON.stringify(d))}`;
  });
  return parts.length === 0 ? undefined : parts.join('; ');
}

/**
 * An upstream error body in the nested OpenAI shape `{"error":{"message","type","param","code"}}`
 * that the OpenAI SDKs read, keeping the server's message, type and code (vLLM ≥ 0.10.1 nests errors under "error", vllm-project/vllm PR #22099; SGLang's and Triton's own shapes):
 * - already nested (vLLM ≥ 0.10.1, SGLang's /v1/responses): returned unchanged (undefined);
 * - flat `{"object":"error","message","type","param","code"}` (vLLM ≤ 0.10.0, SGLang);
 * - `{"error":"<text>"}` (trtllm-serve, Triton's generate extension);
 * - FastAPI's `{"detail": …}` (Triton's OpenAI frontend, request validation);
 * - anything else (plain text, HTML, empty): its text as the message.
 * Returns the new body, or undefined when the body is already OpenAI-shaped.
 */
export function openAIErrorBody(status: number, body: Buffer): Buffer | undefined {
  const text = body.toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  let message: string | undefined;
  let type: string | undefined;
  let param: unknown = null;
  let code: unknown = status;
  if (isRecord(json)) {
    const error = json['error'];
    if (isRecord(error) && typeof error['message'] === 'string') return undefined;
    if (typeof error === 'string') message = error;
    else if (typeof json['message'] === 'string') {
      message = json['message'];
      if (typeof json['type'] === 'string') type = json['type'];
      param = json['param'] ?? null;
      code = json['code'] ?? status;
    } else message = detailMessage(json['detail']);
  }
  if (message === undefined) {
    const trimmed = text.trim();
    message = trimmed === '' ? `the model server answered ${status} ${STATUS_CODES[status] ?? ''} with no body`.trimEnd() : trimmed.slice(0, MAX_TEXT_MESSAGE);
  }
  return Buffer.from(JSON.stringify({ error: { message, type: type ?? typeFor(status), param, code } }), 'utf8');
}

/**
 * Collects an error response's body (up to MAX_ERROR_BODY_BYTES) and emits it in the OpenAI
 * shape at the end. A body over the bound is passed through as received from then on.
 */
export class ErrorBodyNormalizer {
  readonly #status: number;
  #held: Buffer[] = [];
  #bytes = 0;
  #passThrough = false;

  constructor(status: number) {
    this.#status = status;
  }

  push(chunk: Buffer): Buffer {
    if (this.#passThrough) return chunk;
    this.#held.push(chunk);
    this.#bytes += chunk.length;
    if (this.#bytes <= MAX_ERROR_BODY_BYTES) return EMPTY;
    this.#passThrough = true;
    const all = Buffer.concat(this.#held);
    this.#held = [];
    return all;
  }

  end(): Buffer | undefined {
    if (this.#passThrough) return undefined;
    const body = Buffer.concat(this.#held);
    this.#held = [];
    return openAIErrorBody(this.#status, body) ?? body;
  }
}

const EMPTY = Buffer.alloc(0);
