/**
 * SGLang PD logprob merge (SGLang docs/advanced_features/pd_disaggregation.md, python/sglang/srt/disaggregation; llm-d's P/D connector, after SGLang's router): when a request asks for
 * logprobs (`logprobs`, or `return_logprob` on SGLang's native route), the input tokens' logprobs
 * are computed by the prefill server, so the prefill answer's `meta_info.input_token_logprobs`
 * is put in front of the decode answer's, in its JSON body or on every SSE `data:` event that
 * carries that field (re-serialised as `data: {…}\n\n`; other events pass untouched).
 */
import { StringDecoder } from 'node:string_decoder';

/** Bodies (a non-streamed answer) or SSE events held whole for a merge at most; larger ones pass unmerged. */
const MAX_JSON_BYTES = 8 * 1024 * 1024;

/** The blank line that ends an SSE event (LF or CRLF line ends). */
const EVENT_END = /\r?\n\r?\n/;

type Json = Record<string, unknown>;

function isRecord(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** True when the client asked for logprobs. */
export function wantsLogprobs(body: Readonly<Record<string, unknown>> | undefined): boolean {
  if (body === undefined) return false;
  // Chat asks with `logprobs: true`, completions with a count (`logprobs: 0` still asks), SGLang's native route with `return_logprob`.
  const logprobs = body['logprobs'];
  return logprobs === true || (typeof logprobs === 'number' && logprobs >= 0) || body['return_logprob'] === true;
}

function inputLogprobsOf(obj: unknown): unknown[] | undefined {
  if (!isRecord(obj)) return undefined;
  const meta = obj['meta_info'];
  const v = isRecord(meta) ? meta['input_token_logprobs'] : undefined;
  return Array.isArray(v) ? v : undefined;
}

/** The prefill answer's `meta_info.input_token_logprobs` (JSON body, or the first SSE event that has it). */
export function prefillInputLogprobs(answer: Buffer): unknown[] | undefined {
  const text = answer.toString('utf8');
  try {
    return inputLogprobsOf(JSON.parse(text));
  } catch {
    // An SSE answer: look at its data events.
  }
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith('data:') || !line.includes('input_token_logprobs')) continue;
    try {
      const found = inputLogprobsOf(JSON.parse(line.slice(5).trim()));
      if (found !== undefined) return found;
    } catch {
      continue;
    }
  }
  return undefined;
}

/** `obj` with `prefix` put in front of its input-token logprobs, or undefined when it has none. */
function merged(obj: unknown, prefix: readonly unknown[]): Json | undefined {
  const own = inputLogprobsOf(obj);
  if (own === undefined || !isRecord(obj)) return undefined;
  return { ...obj, meta_info: { ...(obj['meta_info'] as Json), input_token_logprobs: [...prefix, ...own] } };
}

/** Applies the merge to a decode answer as it streams (SSE) or at its end (JSON). */
export class LogprobMerger {
  readonly #prefix: readonly unknown[];
  readonly #sse: boolean;
  readonly #decoder = new StringDecoder('utf8');
  #pending = '';
  #held: Buffer[] = [];
  #heldBytes = 0;

  constructor(prefix: readonly unknown[], sse: boolean) {
    this.#prefix = prefix;
    this.#sse = sse;
  }

  push(chunk: Buffer): Buffer {
    if (!this.#sse) {
      this.#held.push(chunk);
      this.#heldBytes += chunk.length;
      if (this.#heldBytes <= MAX_JSON_BYTES) return EMPTY;
      const all = Buffer.concat(this.#held);
      this.#held = [];
      return all;
    }
    // The decoder keeps a character split across chunks whole.
    this.#pending += this.#decoder.write(chunk);
    let out = '';
    for (let m = EVENT_END.exec(this.#pending); m !== null; m = EVENT_END.exec(this.#pending)) {
      const end = m.index + m[0].length;
      out += this.#event(this.#pending.slice(0, end));
      this.#pending = this.#pending.slice(end);
    }
    // An event that never ends within bounds passes through unmerged rather than growing memory.
    if (this.#pending.length > MAX_JSON_BYTES) {
      out += this.#pending;
      this.#pending = '';
    }
    return out === '' ? EMPTY : Buffer.from(out, 'utf8');
  }

  end(): Buffer {
    if (this.#sse) {
      const rest = this.#pending + this.#decoder.end();
      this.#pending = '';
      return Buffer.from(rest === '' ? '' : this.#event(rest), 'utf8');
    }
    if (this.#heldBytes > MAX_JSON_BYTES) return EMPTY;
    const body = Buffer.concat(this.#held);
    this.#held = [];
    try {
      const out = merged(JSON.parse(body.toString('utf8')), this.#prefix);
      return out === undefined ? body : Buffer.from(JSON.stringify(out), 'utf8');
    } catch {
      return body;
    }
  }

  #event(event: string): string {
    if (!event.includes('input_token_logprobs')) return event;
    const m = /^data: ?(.*)$/m.exec(event);
    if (m === null || m[1] === '[DONE]') return event;
    try {
      const out = merged(JSON.parse(m[1] as string), this.#prefix);
      return out === undefined ? event : `data: ${JSON.stringify(out)}\n\n`;
    } catch {
      return event;
    }
  }
}

const EMPTY = Buffer.alloc(0);
