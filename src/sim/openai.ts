/**
 * The OpenAI request fields the simulator reads (the OpenAI API reference; vLLM vllm/entrypoints/openai/protocol.py) and the responses it writes
 * (§a.3): `/v1/completions` and `/v1/chat/completions`, streaming (SSE) or not.
 */
import type { ServerResponse } from 'node:http';
import { renderChat, type ChatMessage, type RequestResult } from './engine/index.js';
import type { Face } from './runtimes.js';

/** A generation request, validated for types, not yet checked by the engine. */
export interface GenerateRequest {
  readonly model: string;
  /** Rendered prompt text (chat messages through the ChatML template), or… */
  readonly prompt?: string;
  /** …token ids sent as the completion prompt. */
  readonly promptTokens?: readonly number[];
  /** The chat messages behind `prompt` (chat and responses), for a real chat template (real-tokens.ts). */
  readonly chatMessages?: readonly ChatMessage[];
  /** The request's `tools` (chat), passed to a real chat template. */
  readonly tools?: unknown;
  readonly maxTokens: number | undefined;
  readonly ignoreEos: boolean;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly cacheSalt: string | undefined;
}

export type ParseResult = { readonly ok: true; readonly request: GenerateRequest } | { readonly ok: false; readonly status: number; readonly message: string; readonly type: string };

const bad = (message: string): ParseResult => ({ ok: false, status: 400, message, type: 'BadRequestError' });

const isTokenIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => Number.isInteger(x) && (x as number) >= 0);

/**
 * Reads the fields of a completion (`chat` false) or chat request. `defaultModel` stands in for a
 * missing `model` (vLLM and SGLang serve their first model then).
 */
export function parseGenerate(body: Readonly<Record<string, unknown>>, chat: boolean, face: Face, defaultModel: string): ParseResult {
  const model = body['model'] ?? defaultModel;
  if (typeof model !== 'string') return bad('model must be a string.');
  const stream = body['stream'] ?? false;
  if (typeof stream !== 'boolean') return bad('stream must be a boolean.');
  const streamOptions = body['stream_options'] ?? null;
  if (streamOptions !== null && (typeof streamOptions !== 'object' || Array.isArray(streamOptions))) return bad('stream_options must be an object.');
  if (streamOptions !== null && !stream) return bad(face.streamOptionsMessage);
  const n = body['n'] ?? 1;
  if (n !== 1) return bad(`The simulator answers one choice per request (n=1); got n=${JSON.stringify(n)}.`);

  const rawMax = chat ? (body['max_completion_tokens'] ?? body['max_tokens'] ?? null) : (body['max_tokens'] ?? null);
  if (rawMax !== null && !Number.isInteger(rawMax)) return bad('max_tokens must be an integer.');
  const maxTokens = rawMax === null ? face.defaultMaxTokens : (rawMax as number);
  const ignoreEos = body['ignore_eos'] ?? false;
  if (typeof ignoreEos !== 'boolean') return bad('ignore_eos must be a boolean.');
  const salt = body['cache_salt'] ?? null;
  if (salt !== null && typeof salt !== 'string') return bad('cache_salt must be a string.');
  const cacheSalt = face.runtime === 'vllm' && salt !== null ? salt : undefined;
  const includeUsage = streamOptions !== null && (streamOptions as { include_usage?: unknown }).include_usage === true;
  const common = { model, maxTokens, ignoreEos, stream, includeUsage, cacheSalt };

  if (chat) {
    const messages = body['messages'];
    if (!Array.isArray(messages) || messages.length === 0) return bad('messages must be a non-empty list of messages.');
    for (const m of messages) {
      if (m === null || typeof m !== 'object' || typeof (m as { role?: unknown }).role !== 'string') return bad('every message needs a string role.');
      const content = (m as { content?: unknown }).content;
      if (content !== undefined && content !== null && typeof content !== 'string' && !Array.isArray(content)) {
        return bad('message content must be a string or a list of content parts.');
      }
      // vLLM's pydantic models refuse a part that is not an object with a type (a 400, not a crash).
      if (Array.isArray(content) && content.some((part) => part === null || typeof part !== 'object' || Array.isArray(part) || typeof (part as { type?: unknown }).type !== 'string')) {
        return bad('every content part must be an object with a string type.');
      }
    }
    const tools = body['tools'];
    return {
      ok: true,
      request: { ...common, prompt: renderChat(messages as ChatMessage[]), chatMessages: messages as ChatMessage[], ...(tools === undefined || tools === null ? {} : { tools }) },
    };
  }

  const prompt = body['prompt'];
  if (typeof prompt === 'string') return { ok: true, request: { ...common, prompt } };
  if (face.runtime === 'trtllm') return bad('only single string input is supported');
  if (isTokenIds(prompt)) return { ok: true, request: { ...common, promptTokens: prompt } };
  if (Array.isArray(prompt) && prompt.length === 1) {
    const only: unknown = prompt[0];
    if (typeof only === 'string') return { ok: true, request: { ...common, prompt: only } };
    if (isTokenIds(only)) return { ok: true, request: { ...common, promptTokens: only } };
  }
  if (Array.isArray(prompt) && prompt.length > 1) {
    return bad(`The simulator answers one prompt per request; got a batch of ${prompt.length} prompts (send them as separate requests).`);
  }
  return bad('prompt must be a string, a list of one string, or a list of token ids.');
}

/** How a response is shaped; fixed per request. */
export interface ResponseMeta {
  readonly face: Face;
  readonly chat: boolean;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  /** `usage.prompt_tokens_details.cached_tokens` present (vLLM `--enable-prompt-tokens-details`). */
  readonly cacheReport: boolean;
  /** The model name the client asked for (echoed in `model`). */
  readonly model: string;
  readonly id: string;
  /** Unix seconds (modelled). */
  readonly created: number;
}

/** Response headers of every SSE stream the simulator sends. */
export const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' } as const;

/** Sends a stream's 200 and SSE headers at once; false when they were sent already (or the client left). */
export function openSse(res: ServerResponse): boolean {
  if (res.headersSent || res.destroyed) return false;
  res.writeHead(200, SSE_HEADERS);
  res.flushHeaders();
  return true;
}

/**
 * Where an accepted request's answer goes, token by token (exchange.ts drives it). Implemented
 * for completions and chat (`AnswerWriter`) and for the Responses API (responses.ts).
 */
export interface AnswerSink {
  /** A streamed answer (SSE) rather than one JSON body. */
  readonly stream: boolean;
  /** Sends the stream's headers (no-op for non-streaming answers). */
  start(): void;
  /** One generated token, in order from index 0. */
  token(text: string, index: number): void;
  /** Writes whatever is held back (right before a test hook cuts the answer). */
  flush(): void;
  /**
   * Ends the answer after the engine finished it (not for 'abort'). `extraFields`: top-level JSON
   * members (`"name":value`, comma-separated) appended to a non-streamed completions or chat body,
   * after `usage` where vLLM puts them (its `kv_transfer_params`); other answers ignore them.
   */
  finish(result: RequestResult, extraHeaders?: Readonly<Record<string, string>>, extraFields?: string): void;
}

/**
 * Writes one answer. Streams: `start()` sends the headers; every `token()` is written when the
 * engine emits it, except that the latest token waits for the end of the current engine step (a
 * microtask) so the last one can carry `finish_reason` as vLLM sends it — no modelled or real
 * delay. Non-streaming: the text is collected and `finish()` sends one JSON body.
 */
export class AnswerWriter implements AnswerSink {
  readonly #res: ServerResponse;
  readonly #meta: ResponseMeta;
  readonly #head: string;
  #text = '';
  #pending: string | null = null;
  #flushQueued = false;
  #ended = false;

  constructor(res: ServerResponse, meta: ResponseMeta) {
    this.#res = res;
    this.#meta = meta;
    const object = meta.chat ? 'chat.completion.chunk' : 'text_completion';
    this.#head = `data: {"id":${JSON.stringify(meta.id)},"object":"${object}","created":${meta.created},"model":${JSON.stringify(meta.model)},"choices":`;
  }

  get stream(): boolean {
    return this.#meta.stream;
  }

  /** Sends the stream's headers (no-op for non-streaming answers). */
  start(): void {
    if (this.#meta.stream) openSse(this.#res);
  }

  token(text: string, index: number): void {
    if (this.#ended) return;
    if (!this.#meta.stream) {
      this.#text += text;
      return;
    }
    this.start();
    if (index === 0 && this.#meta.chat) {
      this.#write(`${this.#head}[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n`);
    }
    if (this.#pending !== null) this.#writeContent(this.#pending, null);
    this.#pending = text;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
  }

  /** Writes a token still held back (used right before a test-hook reset). */
  flush(): void {
    this.#flush();
  }

  /** Ends the answer after the engine finished it (not for 'abort'); see AnswerSink for `extraFields`. */
  finish(result: RequestResult, extraHeaders: Readonly<Record<string, string>> = {}, extraFields?: string): void {
    if (this.#ended || this.#res.destroyed) return;
    this.#ended = true;
    const reason = this.#meta.face.alwaysStop ? 'stop' : result.finishReason;
    const usage = this.#usage(result);
    if (!this.#meta.stream) {
      const m = this.#meta;
      const j = JSON.stringify;
      const choice = m.chat
        ? `{"index":0,"message":{"role":"assistant","content":${j(this.#text)},"tool_calls":[]},"logprobs":null,"finish_reason":"${reason}","stop_reason":null}`
        : `{"index":0,"text":${j(this.#text)},"logprobs":null,"finish_reason":"${reason}","stop_reason":null,"prompt_logprobs":null}`;
      const extra = extraFields === undefined ? '' : `,${extraFields}`;
      const body = `{"id":${j(m.id)},"object":"${m.chat ? 'chat.completion' : 'text_completion'}","created":${m.created},"model":${j(m.model)},"choices":[${choice}],"usage":${usage}${extra}}`;
      this.#res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...extraHeaders });
      this.#res.end(body);
      return;
    }
    this.start();
    this.#writeContent(this.#pending ?? '', reason);
    this.#pending = null;
    if (this.#meta.includeUsage) this.#write(`${this.#head}[],"usage":${usage}}\n\n`);
    this.#res.end('data: [DONE]\n\n');
  }

  readonly #flush = (): void => {
    this.#flushQueued = false;
    if (this.#ended || this.#pending === null) return;
    this.#writeContent(this.#pending, null);
    this.#pending = null;
  };

  #writeContent(text: string, finishReason: string | null): void {
    const t = JSON.stringify(text);
    const fin = finishReason === null ? 'null' : `"${finishReason}","stop_reason":null`;
    const choice = this.#meta.chat
      ? `{"index":0,"delta":{"content":${t}},"logprobs":null,"finish_reason":${fin}}`
      : `{"index":0,"text":${t},"logprobs":null,"finish_reason":${fin}}`;
    this.#write(`${this.#head}[${choice}]}\n\n`);
  }

  #write(chunk: string): void {
    if (!this.#res.destroyed) this.#res.write(chunk);
  }

  #usage(r: RequestResult): string {
    const base = `{"prompt_tokens":${r.promptTokens},"total_tokens":${r.promptTokens + r.completionTokens},"completion_tokens":${r.completionTokens}`;
    if (this.#meta.cacheReport) return `${base},"prompt_tokens_details":{"cached_tokens":${r.cachedTokens}}}`;
    // vLLM prints an explicit null when details are off; SGLang and Triton leave the field out.
    return this.#meta.face.runtime.startsWith('vllm') && !this.#meta.stream ? `${base},"prompt_tokens_details":null}` : `${base}}`;
  }
}
