import { StringDecoder } from 'node:string_decoder';

/** Token counts from a response's `usage` (OpenAI names; `cached` from `prompt_tokens_details`). */
export interface Usage {
  readonly promptTokens: number | undefined;
  readonly completionTokens: number | undefined;
  readonly cachedTokens: number | undefined;
  /** True when the counts are the gateway's own estimate (the server sent no usage). */
  readonly estimated?: boolean;
}

export interface ObserverOptions {
  /** The response is an SSE stream (`content-type: text/event-stream`). */
  readonly sse: boolean;
  /** Drop the `choices: []` usage event: the gateway asked for it, the client did not. */
  readonly stripUsage: boolean;
  /** Accumulate the answer text (for the prefix index). */
  readonly collectText: boolean;
  /**
   * Count the events that carry generated text, for a stream without a usage event (the server
   * was not asked for one: its runtime refuses `stream_options`). One event is one engine step,
   * which is one token unless the server uses speculative decoding.
   */
  readonly countChunks?: boolean;
}

/** Bodies of non-streaming responses are copied for usage up to this size; larger ones are not read. */
const MAX_JSON_COPY = 8 * 1024 * 1024;
/**
 * When only usage is wanted, it is in the stream's last events (before `[DONE]`), so only the last
 * bytes are kept and read at the end: no per-chunk decoding. A usage event is a few hundred bytes.
 */
const TAIL_BYTES = 8 * 1024;
/**
 * An event's end: a line ending (CRLF, LF, or a CR not followed by LF) then an empty line's (the
 * event-stream grammar of the HTML Living Standard; sse-frames.ts cuts the stream the same way).
 */
const EVENT_END = /(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r)/;
const EVENT_SPLIT = EVENT_END;
const LINE_END = /\r\n|\n|\r/;

/** Where the first event in `s` ends: the offset of its closing line break and that break's length. */
function eventEnd(s: string): { index: number; length: number } | undefined {
  if (!s.includes('\r')) {
    const i = s.indexOf('\n\n');
    return i === -1 ? undefined : { index: i, length: 2 };
  }
  const m = EVENT_END.exec(s);
  return m === null ? undefined : { index: m.index, length: m[0].length };
}

function numberOr(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function cachedOf(details: unknown): number | undefined {
  return details !== null && typeof details === 'object' ? numberOr((details as Record<string, unknown>)['cached_tokens']) : undefined;
}

/** Chat and completions name them prompt/completion tokens; the Responses API input/output tokens. */
function readUsage(u: unknown): Usage | undefined {
  if (u === null || typeof u !== 'object') return undefined;
  const o = u as Record<string, unknown>;
  return {
    promptTokens: numberOr(o['prompt_tokens']) ?? numberOr(o['input_tokens']),
    completionTokens: numberOr(o['completion_tokens']) ?? numberOr(o['output_tokens']),
    cachedTokens: cachedOf(o['prompt_tokens_details']) ?? cachedOf(o['input_tokens_details']),
  };
}

/** An SSE event's or a body's usage: top-level, or a Responses API response's (`response.completed`). */
function usageOf(obj: { usage?: unknown; response?: unknown }): Usage | undefined {
  if (obj.usage !== undefined) return readUsage(obj.usage);
  const r = obj.response;
  return r !== null && typeof r === 'object' ? readUsage((r as { usage?: unknown }).usage) : undefined;
}

/** The answer text of a Responses API response: its output messages' `output_text` parts. */
function responseOutputText(output: unknown): string {
  if (!Array.isArray(output)) return '';
  let text = '';
  for (const item of output) {
    const content = (item as { content?: unknown } | null)?.content;
    if (!Array.isArray(content)) continue;
    for (const part of content) if (typeof (part as { text?: unknown } | null)?.text === 'string') text += (part as { text: string }).text;
  }
  return text;
}

function choiceText(choice: unknown): string {
  if (choice === null || typeof choice !== 'object') return '';
  const c = choice as { text?: unknown; delta?: { content?: unknown }; message?: { content?: unknown } };
  if (typeof c.text === 'string') return c.text;
  if (typeof c.delta?.content === 'string') return c.delta.content;
  if (typeof c.message?.content === 'string') return c.message.content;
  return '';
}

/**
 * Watches a response on its way to the client without re-encoding it: reads `usage` (from the SSE
 * event that carries it, or from a JSON body) and, when asked, the answer text. A chunk boundary
 * may fall anywhere, even inside a `data:` line, so SSE is read event by event; the bytes
 * forwarded are the chunks as received, except when the usage event must be stripped: then
 * complete events are forwarded and at most one partial event is held back.
 */
export class ResponseObserver {
  readonly #o: ObserverOptions;
  readonly #decoder = new StringDecoder('utf8');
  #pending = '';
  /** Usage-only SSE mode: the most recent chunks, at least TAIL_BYTES of them (references, no copies). */
  #tail: Buffer[] | undefined;
  #tailBytes = 0;
  #json: Buffer[] = [];
  #jsonBytes = 0;
  #text = '';
  #chunks = 0;
  usage: Usage | undefined;

  constructor(options: ObserverOptions) {
    this.#o = options;
    if (options.sse && !options.stripUsage && !options.collectText && options.countChunks !== true) this.#tail = [];
  }

  /** Events that carried generated text (with `countChunks`). */
  get chunks(): number {
    return this.#chunks;
  }

  /** What to send the client for this chunk. */
  push(chunk: Buffer): Buffer {
    if (!this.#o.sse) {
      if (this.#jsonBytes + chunk.length <= MAX_JSON_COPY) this.#json.push(chunk);
      this.#jsonBytes += chunk.length;
      return chunk;
    }
    if (this.#tail !== undefined) {
      this.#tail.push(chunk);
      this.#tailBytes += chunk.length;
      while (this.#tail.length > 1 && this.#tailBytes - (this.#tail[0] as Buffer).length >= TAIL_BYTES) this.#tailBytes -= (this.#tail.shift() as Buffer).length;
      return chunk;
    }
    this.#pending += this.#decoder.write(chunk);
    let out = '';
    for (;;) {
      const m = eventEnd(this.#pending);
      if (m === undefined) break;
      const end = m.index + m.length;
      const event = this.#pending.slice(0, end);
      this.#pending = this.#pending.slice(end);
      if (this.#event(event.slice(0, m.index)) || !this.#o.stripUsage) out += event;
    }
    if (!this.#o.stripUsage) return chunk;
    return out === '' ? EMPTY : Buffer.from(out, 'utf8');
  }

  /** Bytes still held when the response ends (a final event without its blank line). */
  end(): Buffer | undefined {
    if (!this.#o.sse) {
      if (this.#jsonBytes <= MAX_JSON_COPY) this.#body(Buffer.concat(this.#json));
      this.#json = [];
      return undefined;
    }
    if (this.#tail !== undefined) {
      this.#readTail(Buffer.concat(this.#tail));
      this.#tail = undefined;
      return undefined;
    }
    const rest = this.#pending + this.#decoder.end();
    this.#pending = '';
    if (rest === '') return undefined;
    const keep = this.#event(rest);
    // Without stripping, these bytes already went out with the chunks they arrived in.
    return this.#o.stripUsage && keep ? Buffer.from(rest, 'utf8') : undefined;
  }

  get text(): string {
    return this.#text;
  }

  /** Reads one event; returns false when it is the usage-only event (to be stripped). */
  #event(event: string): boolean {
    let keep = true;
    // Servers end lines with LF; the CR forms are the spec's too, at a regex's price.
    for (const line of event.includes('\r') ? event.split(LINE_END) : event.split('\n')) {
      if (!line.startsWith('data:')) continue;
      const payload = line.slice(line.charCodeAt(5) === 32 ? 6 : 5);
      if (payload === '[DONE]') continue;
      // Only events that mention usage, or any event when the text or the count is wanted, are parsed.
      const hasUsage = payload.includes('"usage"');
      if (!hasUsage && !this.#o.collectText && this.#o.countChunks !== true) continue;
      let obj: { usage?: unknown; choices?: unknown; type?: unknown; delta?: unknown; response?: unknown };
      try {
        obj = JSON.parse(payload) as typeof obj;
      } catch {
        continue;
      }
      const choices = Array.isArray(obj.choices) ? obj.choices : [];
      // Chat/completions chunks carry text in choices; Responses API streams in output_text deltas.
      const piece = choices.length > 0 ? choiceText(choices[0]) : obj.type === 'response.output_text.delta' && typeof obj.delta === 'string' ? obj.delta : '';
      if (piece !== '') {
        this.#chunks++;
        if (this.#o.collectText) this.#text += piece;
      }
      const usage = usageOf(obj);
      if (usage !== undefined) {
        this.usage = usage;
        if (choices.length === 0 && obj.type === undefined) keep = false;
      }
    }
    return keep;
  }

  /**
   * Reads the usage of the tail's events (its first one may be cut: it is skipped by the parse).
   * A later event's usage replaces an earlier one's, so the events that mention usage are read
   * from the last back until one states it: with LF line endings (what servers send) found by
   * native searches in the bytes and only that event decoded and parsed, instead of decoding and
   * splitting the whole tail (a twentieth of the proxy's time on short streams).
   */
  #readTail(tail: Buffer): void {
    if (tail.includes(CR)) {
      const text = tail.toString('utf8');
      for (const event of text.split(EVENT_SPLIT)) if (event.includes('"usage"')) this.#event(event);
      return;
    }
    for (let before = tail.length; before >= USAGE_KEY.length; ) {
      const at = tail.lastIndexOf(USAGE_KEY, before - USAGE_KEY.length);
      if (at === -1) return;
      const previous = tail.lastIndexOf(BLANK_LINE, at);
      const start = previous === -1 ? 0 : previous + BLANK_LINE.length;
      const next = tail.indexOf(BLANK_LINE, at);
      this.#event(tail.toString('utf8', start, next === -1 ? tail.length : next));
      if (this.usage !== undefined) return;
      before = start;
    }
  }

  #body(body: Buffer): void {
    try {
      const obj = JSON.parse(body.toString('utf8')) as { usage?: unknown; choices?: unknown; output?: unknown };
      this.usage = readUsage(obj.usage);
      if (!this.#o.collectText) return;
      if (Array.isArray(obj.choices)) this.#text = choiceText(obj.choices[0]);
      else if (obj.output !== undefined) this.#text = responseOutputText(obj.output);
    } catch {
      // Not JSON (an error page, plain text): no usage to read.
    }
  }
}

const EMPTY = Buffer.alloc(0);
const CR = 0x0d;
const USAGE_KEY = Buffer.from('"usage"');
/** An event's end in a stream with LF line endings. */
const BLANK_LINE = Buffer.from('\n\n');
