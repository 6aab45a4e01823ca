import { performance } from 'node:perf_hooks';
import { request, type Dispatcher } from 'undici';
import { SseParser } from './sse.js';
import { promptText, type RequestSpec } from './workloads/types.js';

/*
 * One OpenAI request, measured the way a user experiences it: TTFT is the arrival of the first
 * chunk carrying content (not the HTTP headers, which vLLM sends before prefill ends), inter-token
 * latencies are the gaps between content chunks as the client reads them, and token counts come
 * from the final usage chunk (we always ask for it) with a fallback to counting content chunks.
 * Failures are results, never exceptions: a benchmark must record every request.
 */

/** Which OpenAI API to speak. */
export type Api = 'chat' | 'completions';

/**
 * Why a request failed: `http` (non-2xx status), `connection` (refused, reset, closed mid-stream),
 * `timeout` (the per-request deadline), `stream` (an error event after 200, or a stream that ended
 * without `[DONE]`), `aborted` (the run was stopped).
 */
export type ErrorKind = 'http' | 'connection' | 'timeout' | 'stream' | 'aborted';

/** What the client measured for one request. Times are `performance.now()` milliseconds. */
export interface RequestResult {
  /** When the request was handed to the connection pool. */
  readonly startMs: number;
  /** When the last byte was read (or the failure noticed). */
  readonly endMs: number;
  /** First content chunk − start; `undefined` when no content arrived. */
  readonly ttftMs: number | undefined;
  /** Gaps between consecutive content chunks (chunks read in one network read have gap 0). */
  readonly itlMs: readonly number[];
  /** end − start. */
  readonly e2eMs: number;
  /** `usage.prompt_tokens`, when the server sent usage. */
  readonly promptTokens: number | undefined;
  /** `usage.prompt_tokens_details.cached_tokens` (prompt tokens served from the prefix cache), when the server sent it. */
  readonly cachedTokens?: number;
  /** `usage.completion_tokens`, else the number of content chunks. */
  readonly outputTokens: number;
  readonly outputTokensSource: 'usage' | 'chunks';
  /** HTTP status; 0 when no response arrived. */
  readonly status: number;
  /** 2xx, complete stream, no error event. */
  readonly ok: boolean;
  readonly errorKind: ErrorKind | undefined;
  /** `error.code` (or `type`) from an OpenAI-style error body or event, else an errno-style code. */
  readonly errorCode: string | undefined;
  readonly errorMessage: string | undefined;
  /** The value of the endpoint header (default `x-sim-pod`) on the response. */
  readonly endpoint: string | undefined;
  /** The answer's content (multi-turn resends it as the assistant turn). */
  readonly text: string;
}

/** Options of {@link sendRequest}. */
export interface ClientOptions {
  /** Server root (`http://host:port`) or its `/v1`; the API path is appended. */
  readonly baseUrl: string;
  readonly api: Api;
  /** The connection pool (a keep-alive undici Agent shared by the run). */
  readonly dispatcher: Dispatcher;
  /** Deadline for the whole request, headers to last byte. Default 300,000 ms. */
  readonly timeoutMs?: number;
  /** Response header naming the endpoint that served the request. Default `x-sim-pod`. */
  readonly endpointHeader?: string;
  /** Send `ignore_eos: true` so vLLM-like servers produce exactly `max_tokens`. Default true. */
  readonly ignoreEos?: boolean;
  /** Extra request headers. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Aborts the request (recorded as `aborted`). */
  readonly signal?: AbortSignal;
}

/** Default per-request deadline: long enough for the minutes-long TTFTs of an overloaded pool. */
export const DEFAULT_TIMEOUT_MS = 300_000;
/** Default response header naming the serving endpoint (the simulator's). */
export const DEFAULT_ENDPOINT_HEADER = 'x-sim-pod';
/** Most bytes of an error body kept (error bodies are small; a misbehaving server's may not be). */
const ERROR_BODY_LIMIT = 64 * 1024;

/** The full URL for `api` under `baseUrl`: `…/v1/chat/completions` or `…/v1/completions`. */
export function apiUrl(baseUrl: string, api: Api): string {
  const root = baseUrl.replace(/\/+$/, '');
  const path = api === 'chat' ? 'chat/completions' : 'completions';
  return root.endsWith('/v1') ? `${root}/${path}` : `${root}/v1/${path}`;
}

/**
 * The JSON body for a spec: streaming with `stream_options.include_usage` (so the last chunk
 * carries exact token counts), `max_tokens`, and `ignore_eos` unless disabled.
 */
export function requestBody(spec: RequestSpec, api: Api, ignoreEos = true): Record<string, unknown> {
  const body: Record<string, unknown> = { model: spec.model };
  if (api === 'chat') body['messages'] = spec.messages;
  else body['prompt'] = promptText(spec.messages);
  body['max_tokens'] = spec.maxTokens;
  body['stream'] = true;
  body['stream_options'] = { include_usage: true };
  if (ignoreEos) body['ignore_eos'] = true;
  return body;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * `{ code, message }` from an error body in any shape the field uses: nested OpenAI
 * `{"error":{"message","type","code"}}`, flat vLLM/SGLang `{"message","type","code"}`, or
 * `{"error":"text"}`. `code` falls back to `type`; a non-JSON body becomes the message.
 */
export function parseErrorBody(text: string): { code: string | undefined; message: string | undefined } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    const trimmed = text.trim();
    return { code: undefined, message: trimmed === '' ? undefined : trimmed.slice(0, 500) };
  }
  if (!isObject(value)) return { code: undefined, message: undefined };
  const inner = value['error'];
  if (typeof inner === 'string') return { code: undefined, message: inner };
  const obj = isObject(inner) ? inner : value;
  const code = obj['code'] ?? obj['type'];
  const message = obj['message'];
  return {
    code: code === undefined || code === null ? undefined : String(code),
    message: typeof message === 'string' ? message : undefined,
  };
}

function headerValue(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Mutable state of one response while it streams. */
class StreamState {
  ttft: number | undefined;
  lastContent: number | undefined;
  readonly itl: number[] = [];
  text = '';
  chunks = 0;
  promptTokens: number | undefined;
  cachedTokens: number | undefined;
  usageTokens: number | undefined;
  done = false;
  error: { code: string | undefined; message: string | undefined } | undefined;

  constructor(readonly start: number) {}

  /** One event's `data`, read at time `t`. */
  event(data: string, t: number): void {
    if (data === '[DONE]') {
      this.done = true;
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch {
      return; // Not ours to judge; the server's own clients would skip it too.
    }
    if (!isObject(value)) return;
    this.object(value, t);
  }

  /** A chunk (streaming) or a whole response (non-streaming), read at time `t`. */
  object(value: Record<string, unknown>, t: number): void {
    if (value['error'] !== undefined) {
      this.error = parseErrorBody(JSON.stringify(value));
      return;
    }
    const usage = value['usage'];
    if (isObject(usage)) {
      if (typeof usage['prompt_tokens'] === 'number') this.promptTokens = usage['prompt_tokens'];
      if (typeof usage['completion_tokens'] === 'number') this.usageTokens = usage['completion_tokens'];
      const details = usage['prompt_tokens_details'];
      if (isObject(details) && typeof details['cached_tokens'] === 'number') this.cachedTokens = details['cached_tokens'];
    }
    const choices = value['choices'];
    if (!Array.isArray(choices)) return;
    let content = '';
    let produced = false;
    for (const choice of choices as unknown[]) {
      if (!isObject(choice)) continue;
      const delta = isObject(choice['delta']) ? choice['delta'] : isObject(choice['message']) ? choice['message'] : undefined;
      const piece = delta !== undefined ? delta['content'] : choice['text'];
      if (typeof piece === 'string' && piece !== '') {
        content += piece;
        produced = true;
      }
      // Reasoning models stream thoughts before content; they are tokens the user waits through.
      const thought = delta?.['reasoning_content'] ?? delta?.['reasoning'];
      if (typeof thought === 'string' && thought !== '') produced = true;
    }
    if (!produced) return;
    this.text += content;
    this.chunks++;
    if (this.ttft === undefined) this.ttft = t - this.start;
    else if (this.lastContent !== undefined) this.itl.push(t - this.lastContent);
    this.lastContent = t;
  }
}

function errorCodeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Sends one streaming request and measures it. Never throws for request failures: they come back
 * with `ok: false` and an {@link ErrorKind}. The response body is always consumed or destroyed, so
 * the connection returns to the pool.
 */
export async function sendRequest(spec: RequestSpec, options: ClientOptions): Promise<RequestResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const endpointHeader = options.endpointHeader ?? DEFAULT_ENDPOINT_HEADER;
  const deadline = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    deadline.abort(new Error(`request timed out after ${timeoutMs} ms`));
  }, timeoutMs);
  const signal = options.signal === undefined ? deadline.signal : AbortSignal.any([deadline.signal, options.signal]);
  const payload = JSON.stringify(requestBody(spec, options.api, options.ignoreEos ?? true));

  const start = performance.now();
  const state = new StreamState(start);
  let status = 0;
  let endpoint: string | undefined;
  let failure: { kind: ErrorKind; code: string | undefined; message: string | undefined } | undefined;
  try {
    const res = await request(apiUrl(options.baseUrl, options.api), {
      method: 'POST',
      dispatcher: options.dispatcher,
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...options.headers },
      body: payload,
      signal,
      // Our own deadline covers the whole request; undici's per-phase timers would cut long prefills.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    status = res.statusCode;
    endpoint = headerValue(res.headers, endpointHeader);
    if (status < 200 || status > 299) {
      const text = (await res.body.text()).slice(0, ERROR_BODY_LIMIT);
      const parsed = parseErrorBody(text);
      failure = { kind: 'http', code: parsed.code ?? String(status), message: parsed.message };
    } else if (!String(res.headers['content-type'] ?? '').includes('text/event-stream')) {
      // A server that ignored `stream: true`: one JSON document; its arrival is the first token.
      const text = await res.body.text();
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        value = undefined;
      }
      if (isObject(value)) state.object(value, performance.now());
      if (state.error === undefined && !isObject(value)) failure = { kind: 'stream', code: 'invalid_json', message: 'response is neither SSE nor JSON' };
      state.done = true;
    } else {
      const parser = new SseParser();
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        const t = performance.now();
        for (const data of parser.push(chunk)) state.event(data, t);
      }
      const t = performance.now();
      for (const data of parser.end()) state.event(data, t);
    }
    if (failure === undefined && state.error !== undefined) failure = { kind: 'stream', code: state.error.code, message: state.error.message };
    if (failure === undefined && !state.done) failure = { kind: 'stream', code: 'incomplete_stream', message: 'the stream ended without data: [DONE]' };
  } catch (err) {
    const code = errorCodeOf(err);
    if (timedOut || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
      failure = { kind: 'timeout', code: 'timeout', message: `no complete response within ${timeoutMs} ms` };
    } else if (options.signal?.aborted === true) {
      failure = { kind: 'aborted', code: 'aborted', message: 'the run was stopped' };
    } else {
      failure = { kind: 'connection', code: code ?? 'connection_error', message: err instanceof Error ? err.message : String(err) };
    }
  } finally {
    clearTimeout(timer);
  }
  const end = performance.now();
  const fromUsage = state.usageTokens !== undefined;
  return {
    startMs: start,
    endMs: end,
    ttftMs: state.ttft,
    itlMs: state.itl,
    e2eMs: end - start,
    promptTokens: state.promptTokens,
    ...(state.cachedTokens === undefined ? {} : { cachedTokens: state.cachedTokens }),
    outputTokens: state.usageTokens ?? state.chunks,
    outputTokensSource: fromUsage ? 'usage' : 'chunks',
    status,
    ok: failure === undefined,
    errorKind: failure?.kind,
    errorCode: failure?.code,
    errorMessage: failure?.message,
    endpoint,
    text: state.text,
  };
}
