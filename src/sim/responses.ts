/**
 * The OpenAI Responses API (`POST /v1/responses`), as vLLM V1 (since 0.10) and SGLang serve it:
 * the request fields the simulator reads and the `response` object and SSE events it writes.
 *
 * A request becomes a chat prompt: `instructions` as a system message, then `input` (a string is
 * one user message; an array holds message items with string content or `input_text` parts),
 * rendered with the chat template, so it runs through the engine exactly like a chat request.
 *
 * Streaming sends one SSE event per step, `event: <type>` then `data: <json>`, in the order the
 * OpenAI API sends them, each with a `sequence_number` counting from 0:
 *
 *   response.created → response.in_progress → response.output_item.added →
 *   response.content_part.added → response.output_text.delta (one per token) →
 *   response.output_text.done → response.content_part.done → response.output_item.done →
 *   response.completed (its `response.usage` carries the usage)
 *
 * There is no `[DONE]` line (the OpenAI API sends none). Usage: `input_tokens`,
 * `input_tokens_details.cached_tokens`, `output_tokens`, `output_tokens_details.reasoning_tokens`
 * (0), `total_tokens` (the OpenAI API reference; vLLM vllm/entrypoints/openai/protocol.py).
 */
import type { ServerResponse } from 'node:http';
import { renderChat, type ChatMessage, type RequestResult } from './engine/index.js';
import { openSse, type AnswerSink, type GenerateRequest, type ParseResult } from './openai.js';
import type { Face } from './runtimes.js';

/** Input items read per request (a bound, not a real server's limit). */
export const MAX_INPUT_ITEMS = 4096;
/** Content parts read per input item (a bound). */
export const MAX_CONTENT_PARTS = 1024;

const ROLES: ReadonlySet<string> = new Set(['user', 'assistant', 'system', 'developer']);
const TEXT_PARTS: ReadonlySet<string> = new Set(['input_text', 'output_text', 'text']);

/** Request fields echoed in the `response` object. */
export interface ResponsesEcho {
  readonly instructions: string | null;
  readonly maxOutputTokens: number | null;
  readonly temperature: number;
  readonly topP: number;
}

/** A Responses request read for the engine, or the 400/404 to answer. */
export type ResponsesParse = { readonly ok: true; readonly request: GenerateRequest; readonly echo: ResponsesEcho } | Extract<ParseResult, { ok: false }>;

const bad = (message: string): ResponsesParse => ({ ok: false, status: 400, message, type: 'BadRequestError' });

/** One input item as a chat message, or an error message. */
function inputMessage(item: unknown, i: number): ChatMessage | string {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) return `input[${i}] must be an object.`;
  const { type, role, content } = item as { type?: unknown; role?: unknown; content?: unknown };
  if (type !== undefined && type !== 'message') {
    return `input[${i}] has type ${JSON.stringify(type)}: the simulator reads message items only (no tool calls or reasoning items).`;
  }
  if (typeof role !== 'string' || !ROLES.has(role)) return `input[${i}].role must be one of user, assistant, system, developer.`;
  if (typeof content === 'string') return { role, content };
  if (!Array.isArray(content)) return `input[${i}].content must be a string or a list of content parts.`;
  if (content.length > MAX_CONTENT_PARTS) return `input[${i}].content has ${content.length} parts; at most ${MAX_CONTENT_PARTS} are read.`;
  const parts: Array<{ type: string; text: string }> = [];
  for (const [k, part] of content.entries()) {
    const p = part as { type?: unknown; text?: unknown } | null;
    if (p === null || typeof p !== 'object' || typeof p.type !== 'string' || !TEXT_PARTS.has(p.type) || typeof p.text !== 'string') {
      return `input[${i}].content[${k}] must be a text part ({"type":"input_text","text":"…"}); the simulator reads text only.`;
    }
    parts.push({ type: p.type, text: p.text });
  }
  return { role, content: parts };
}

function optionalNumber(body: Readonly<Record<string, unknown>>, key: string, fallback: number): number | string {
  const v = body[key] ?? null;
  if (v === null) return fallback;
  return typeof v === 'number' && Number.isFinite(v) ? v : `${key} must be a number.`;
}

/**
 * Reads a Responses request. `defaultModel` stands in for a missing `model` (as vLLM does);
 * `face.defaultMaxTokens` for a missing `max_output_tokens`.
 */
export function parseResponses(body: Readonly<Record<string, unknown>>, face: Face, defaultModel: string): ResponsesParse {
  const model = body['model'] ?? defaultModel;
  if (typeof model !== 'string') return bad('model must be a string.');
  const stream = body['stream'] ?? false;
  if (typeof stream !== 'boolean') return bad('stream must be a boolean.');
  if ((body['previous_response_id'] ?? null) !== null) {
    return bad('previous_response_id is not supported: the simulator does not store responses (send the whole conversation in input).');
  }
  const instructions = body['instructions'] ?? null;
  if (instructions !== null && typeof instructions !== 'string') return bad('instructions must be a string.');
  const rawMax = body['max_output_tokens'] ?? null;
  if (rawMax !== null && !Number.isInteger(rawMax)) return bad('max_output_tokens must be an integer.');
  const temperature = optionalNumber(body, 'temperature', 1);
  if (typeof temperature === 'string') return bad(temperature);
  const topP = optionalNumber(body, 'top_p', 1);
  if (typeof topP === 'string') return bad(topP);
  const salt = body['cache_salt'] ?? null;
  if (salt !== null && typeof salt !== 'string') return bad('cache_salt must be a string.');

  const input = body['input'];
  const messages: ChatMessage[] = instructions === null ? [] : [{ role: 'system', content: instructions }];
  if (typeof input === 'string') {
    messages.push({ role: 'user', content: input });
  } else if (Array.isArray(input)) {
    if (input.length === 0) return bad('input must not be an empty list.');
    if (input.length > MAX_INPUT_ITEMS) return bad(`input has ${input.length} items; at most ${MAX_INPUT_ITEMS} are read.`);
    for (const [i, item] of input.entries()) {
      const m = inputMessage(item, i);
      if (typeof m === 'string') return bad(m);
      messages.push(m);
    }
  } else {
    return bad('input is required: a string or a list of input items.');
  }

  const request: GenerateRequest = {
    model,
    prompt: renderChat(messages),
    chatMessages: messages,
    maxTokens: rawMax === null ? face.defaultMaxTokens : (rawMax as number),
    ignoreEos: false,
    stream,
    includeUsage: false,
    cacheSalt: face.runtime === 'vllm' && salt !== null ? (salt as string) : undefined,
  };
  return { ok: true, request, echo: { instructions: instructions as string | null, maxOutputTokens: rawMax as number | null, temperature, topP } };
}

/** How one `response` is labelled; fixed per request. */
export interface ResponsesMeta {
  readonly stream: boolean;
  /** `resp_…` */
  readonly id: string;
  /** Id of the one output message, `msg_…`. */
  readonly messageId: string;
  /** Unix seconds (modelled). */
  readonly createdAt: number;
  /** The model name the client asked for. */
  readonly model: string;
  readonly echo: ResponsesEcho;
}

type Status = 'in_progress' | 'completed';

/**
 * Writes one Responses answer: the SSE events above as tokens arrive, or one `response` object
 * when the engine finishes.
 */
export class ResponsesWriter implements AnswerSink {
  readonly #res: ServerResponse;
  readonly #meta: ResponsesMeta;
  #text = '';
  #seq = 0;
  #itemOpen = false;
  #ended = false;

  constructor(res: ServerResponse, meta: ResponsesMeta) {
    this.#res = res;
    this.#meta = meta;
  }

  get stream(): boolean {
    return this.#meta.stream;
  }

  start(): void {
    if (!this.#meta.stream || !openSse(this.#res)) return;
    this.#event('response.created', { response: this.#response('in_progress', [], null) });
    this.#event('response.in_progress', { response: this.#response('in_progress', [], null) });
  }

  token(text: string): void {
    if (this.#ended) return;
    this.#text += text;
    if (!this.#meta.stream) return;
    this.start();
    this.#openItem();
    this.#event('response.output_text.delta', { ...this.#at(), delta: text, logprobs: [] });
  }

  flush(): void {}

  finish(result: RequestResult, extraHeaders: Readonly<Record<string, string>> = {}): void {
    if (this.#ended || this.#res.destroyed) return;
    this.#ended = true;
    const usage = {
      input_tokens: result.promptTokens,
      input_tokens_details: { cached_tokens: result.cachedTokens },
      output_tokens: result.completionTokens,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: result.promptTokens + result.completionTokens,
    };
    const item = this.#item('completed');
    if (!this.#meta.stream) {
      const body = JSON.stringify(this.#response('completed', [item], usage));
      this.#res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...extraHeaders });
      this.#res.end(body);
      return;
    }
    this.start();
    this.#openItem();
    const part = { type: 'output_text', text: this.#text, annotations: [] };
    this.#event('response.output_text.done', { ...this.#at(), text: this.#text, logprobs: [] });
    this.#event('response.content_part.done', { item_id: this.#meta.messageId, output_index: 0, content_index: 0, part });
    this.#event('response.output_item.done', { output_index: 0, item });
    this.#event('response.completed', { response: this.#response('completed', [item], usage) });
    this.#res.end();
  }

  /** The item and its one content part are announced before the first text (or the end). */
  #openItem(): void {
    if (this.#itemOpen) return;
    this.#itemOpen = true;
    this.#event('response.output_item.added', { output_index: 0, item: { id: this.#meta.messageId, type: 'message', status: 'in_progress', role: 'assistant', content: [] } });
    this.#event('response.content_part.added', { item_id: this.#meta.messageId, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [] } });
  }

  #at(): { item_id: string; output_index: number; content_index: number } {
    return { item_id: this.#meta.messageId, output_index: 0, content_index: 0 };
  }

  #item(status: Status): Record<string, unknown> {
    return {
      id: this.#meta.messageId,
      type: 'message',
      status,
      role: 'assistant',
      content: [{ type: 'output_text', text: this.#text, annotations: [] }],
    };
  }

  #response(status: Status, output: readonly unknown[], usage: Record<string, unknown> | null): Record<string, unknown> {
    const m = this.#meta;
    return {
      id: m.id,
      object: 'response',
      created_at: m.createdAt,
      status,
      background: false,
      error: null,
      incomplete_details: null,
      instructions: m.echo.instructions,
      max_output_tokens: m.echo.maxOutputTokens,
      model: m.model,
      output,
      parallel_tool_calls: true,
      previous_response_id: null,
      temperature: m.echo.temperature,
      text: { format: { type: 'text' } },
      tool_choice: 'auto',
      tools: [],
      top_p: m.echo.topP,
      truncation: 'disabled',
      usage,
      metadata: {},
    };
  }

  #event(type: string, fields: Record<string, unknown>): void {
    if (this.#res.destroyed) return;
    const data = JSON.stringify({ type, sequence_number: this.#seq++, ...fields });
    this.#res.write(`event: ${type}\ndata: ${data}\n\n`);
  }
}
