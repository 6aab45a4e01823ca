/**
 * A model's tokenizer and chat template, as a vLLM server applies them, with the work done on the
 * worker thread (thread.ts) and text pieces cached on the main thread (segment-cache.ts).
 *
 * - `encodePrompt(text)`: vLLM's completions path, `tokenizer(prompt, add_special_tokens=True)`:
 *   the post-processor's special tokens (Llama 3.1: BOS) around the text's ids.
 * - `encodeChat(messages, {tools})`: vLLM's chat path: the chat template rendered with
 *   add_generation_prompt, then tokenised with add_special_tokens=False (the template writes
 *   BOS itself).
 *
 * Where the tokenizer allows it (added-tokens.ts), the text is cut at added tokens and each piece's
 * ids come from the cache or, for the pieces not cached, from one job on the worker; a
 * conversation's next turn thus tokenises only its new text. Otherwise the text goes whole.
 *
 * Bounds (`TokenizerOptions`): a text over `maxJobChars` is refused (`too-large`); a job that
 * would take this tokenizer over `maxQueuedJobs` jobs or `maxQueuedChars` characters waiting for
 * the worker is refused at once (`busy`), so a caller falls back instead of queueing behind a
 * flood.
 */

import { AddedTokenSplitter } from './added-tokens.js';
import type { ChatTemplate } from './chat-template.js';
import { templateMessages, type ChatTurn, type TemplateMessage } from './chat-turn.js';
import { TokenizeError } from './errors.js';
import type { FileLimits, TokenizerInfo } from './protocol.js';
import { pieceKey, SegmentCache } from './segment-cache.js';
import type { TokenizerThread } from './thread.js';

/** Bounds of one loaded tokenizer. */
export interface TokenizerOptions {
  /** Longest text tokenised, UTF-16 units (default 1 MiB ≈ 1.2 s of worker time at ~1 µs each). */
  readonly maxJobChars?: number;
  /** Jobs of this tokenizer waiting for or on the worker (default 64). */
  readonly maxQueuedJobs?: number;
  /** Characters of this tokenizer waiting for or on the worker (default 4 Mi ≈ 5 s of work). */
  readonly maxQueuedChars?: number;
  /** Segment cache bound, tokens (default 1 Mi tokens: ~4 MiB of ids plus entries); 0 disables it. */
  readonly cacheTokens?: number;
  /** Bounds on the files read (files.ts `TOKENIZER_FILE_LIMITS`). */
  readonly fileLimits?: Partial<FileLimits>;
  /**
   * A job the worker has not answered within this many ms once it is running fails, and the
   * worker is replaced (default 10 000: a 1 MiB text takes ~1.2 s; pathological text, such as one
   * 1 MiB word, ~20 s).
   */
  readonly stallMs?: number;
}

export const TOKENIZER_DEFAULTS = {
  maxJobChars: 1024 * 1024,
  maxQueuedJobs: 64,
  maxQueuedChars: 4 * 1024 * 1024,
  cacheTokens: 1024 * 1024,
  stallMs: 10_000,
} as const;

/** Counters of one tokenizer (worker ones are the process's). */
export interface TokenizerCounters {
  /** Jobs sent to the worker. */
  readonly jobs: number;
  /** Tokens of text pieces found in the segment cache. */
  readonly cacheHitTokens: number;
  /** Tokens of text pieces tokenised by the worker (whole texts included). */
  readonly cacheMissTokens: number;
  /** Jobs refused because the queue was over its bound. */
  readonly queueRejections: number;
  /** Jobs that failed on the worker or with it (it threw or died). */
  readonly workerErrors: number;
  /** Worker threads that died (process-wide); each is replaced on the next job. */
  readonly workerRestarts: number;
  /** The segment cache's size, tokens (entry overheads included). */
  readonly cachedTokens: number;
}

export interface ModelTokenizerParts {
  readonly dir: string;
  readonly limits: FileLimits;
  readonly info: TokenizerInfo;
  readonly template: ChatTemplate | undefined;
  readonly thread: TokenizerThread;
  readonly options: TokenizerOptions;
}

type Item = number | string; // an added token's id, or a piece's cache key

export class ModelTokenizer {
  /** The directory the files came from (absolute). */
  readonly dir: string;
  /** Whether texts are tokenised piecewise with the cache (false: whole; see `inexactWhy`). */
  readonly segmented: boolean;
  /** Why piecewise tokenisation would not be exact for this tokenizer (absent when it is). */
  readonly inexactWhy: string | undefined;

  readonly #parts: ModelTokenizerParts;
  readonly #splitter: AddedTokenSplitter;
  readonly #cache: SegmentCache;
  readonly #maxJobChars: number;
  readonly #maxQueuedJobs: number;
  readonly #maxQueuedChars: number;
  readonly #stallMs: number;
  #queuedJobs = 0;
  #queuedChars = 0;
  #closed = false;
  #jobs = 0;
  #hit = 0;
  #miss = 0;
  #rejections = 0;
  #workerErrors = 0;

  constructor(parts: ModelTokenizerParts) {
    this.#parts = parts;
    this.dir = parts.dir;
    this.segmented = parts.info.exact;
    this.inexactWhy = parts.info.inexactWhy;
    this.#splitter = new AddedTokenSplitter(parts.info.addedTokens);
    const o = parts.options;
    this.#cache = new SegmentCache(o.cacheTokens ?? TOKENIZER_DEFAULTS.cacheTokens);
    this.#maxJobChars = o.maxJobChars ?? TOKENIZER_DEFAULTS.maxJobChars;
    this.#maxQueuedJobs = o.maxQueuedJobs ?? TOKENIZER_DEFAULTS.maxQueuedJobs;
    this.#maxQueuedChars = o.maxQueuedChars ?? TOKENIZER_DEFAULTS.maxQueuedChars;
    this.#stallMs = o.stallMs ?? TOKENIZER_DEFAULTS.stallMs;
  }

  /** Whether the model has a chat template (encodeChat refuses with `no-template` otherwise). */
  get hasChatTemplate(): boolean {
    return this.#parts.template !== undefined;
  }

  /**
   * Token ids of a completions prompt, as vLLM computes them (add_special_tokens=true).
   * @throws TokenizeError too-large | busy | worker | closed
   */
  encodePrompt(text: string): Promise<Uint32Array> {
    return this.#encode(text, true);
  }

  /**
   * Token ids of a chat request, as vLLM computes them: the chat template rendered with
   * add_generation_prompt (and `tools` when given), tokenised with add_special_tokens=false.
   * @throws TokenizeError multimodal | invalid-message | no-template | template | too-large | busy | worker | closed
   */
  async encodeChat(messages: readonly ChatTurn[], extras?: { readonly tools?: unknown }): Promise<Uint32Array> {
    if (this.#closed) throw new TokenizeError('closed', 'the tokenizer was closed');
    if (this.#parts.template === undefined) throw new TokenizeError('no-template', `${this.dir}: tokenizer_config.json has no chat_template`);
    // Checking the messages' shape is linear and cheap; rendering them is not (the worker's job).
    const turns = templateMessages(messages);
    let chars = 0;
    for (const t of turns) chars += t.content.length;
    if (chars > this.#maxJobChars) throw new TokenizeError('too-large', `${chars} characters of messages, over the limit of ${this.#maxJobChars}`);
    const text = await this.#render(turns, extras?.tools, chars);
    return this.#encode(text, false);
  }

  /**
   * The prompt text the chat template makes of these messages (what encodeChat tokenises),
   * rendered on the calling thread: for tests and tools, not the request path (encodeChat renders
   * on the worker).
   * @throws TokenizeError multimodal | invalid-message | no-template | template | closed
   */
  renderChat(messages: readonly ChatTurn[], extras?: { readonly tools?: unknown }): string {
    if (this.#closed) throw new TokenizeError('closed', 'the tokenizer was closed');
    const template = this.#parts.template;
    if (template === undefined) {
      throw new TokenizeError('no-template', `${this.dir}: tokenizer_config.json has no chat_template`);
    }
    return template.render(templateMessages(messages), extras?.tools);
  }

  /**
   * Token ids of `text` (add_special_tokens=false, whole, uncached) with each token's decoded text:
   * for short texts whose tokens a simulator emits one by one. A token that is part of a UTF-8
   * character decodes to U+FFFD, so the texts then do not join to `text`.
   * @throws TokenizeError too-large | busy | worker | closed
   */
  async encodePieces(text: string): Promise<{ ids: Uint32Array; texts: readonly string[] }> {
    if (this.#closed) throw new TokenizeError('closed', 'the tokenizer was closed');
    if (text.length > this.#maxJobChars) throw new TokenizeError('too-large', `${text.length} characters, over the limit of ${this.#maxJobChars}`);
    const reply = await this.#request([text], false, true);
    return { ids: reply.ids[0]!, texts: reply.texts?.[0] ?? [] };
  }

  counters(): TokenizerCounters {
    return {
      jobs: this.#jobs,
      cacheHitTokens: this.#hit,
      cacheMissTokens: this.#miss,
      queueRejections: this.#rejections,
      workerErrors: this.#workerErrors,
      workerRestarts: this.#parts.thread.counters().deaths,
      cachedTokens: this.#cache.size.tokens,
    };
  }

  /** Stops using the worker (the last tokenizer to close ends it); later calls fail with `closed`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#parts.thread.release();
  }

  async #encode(text: string, addSpecialTokens: boolean): Promise<Uint32Array> {
    if (this.#closed) throw new TokenizeError('closed', 'the tokenizer was closed');
    if (typeof text !== 'string') throw new TokenizeError('invalid-message', 'the prompt is not a string');
    if (text.length > this.#maxJobChars) {
      throw new TokenizeError('too-large', `${text.length} characters, over the limit of ${this.#maxJobChars}`);
    }
    const specials = addSpecialTokens ? this.#parts.info.promptSpecials : { prefix: [], suffix: [] };
    if (!this.segmented || specials === undefined) {
      const [ids] = await this.#job([text], addSpecialTokens);
      this.#miss += ids!.length;
      return ids!;
    }
    const items: Item[] = [];
    const found = new Map<string, Uint32Array>();
    const missing = new Map<string, string>(); // key → text
    this.#splitter.split(
      text,
      (start, end) => {
        const piece = text.slice(start, end);
        const key = pieceKey(piece);
        items.push(key);
        if (found.has(key) || missing.has(key)) return;
        const ids = this.#cache.get(key);
        if (ids !== undefined) found.set(key, ids);
        else missing.set(key, piece);
      },
      (id) => items.push(id),
    );
    if (missing.size > 0) {
      const keys = [...missing.keys()];
      const results = await this.#job([...missing.values()], false);
      keys.forEach((key, i) => {
        const ids = results[i]!;
        found.set(key, ids);
        this.#cache.set(key, ids);
      });
    }
    let length = specials.prefix.length + specials.suffix.length;
    for (const item of items) {
      if (typeof item === 'number') length++;
      else {
        const n = found.get(item)!.length;
        length += n;
        if (missing.has(item)) this.#miss += n;
        else this.#hit += n;
      }
    }
    const out = new Uint32Array(length);
    let at = 0;
    for (const id of specials.prefix) out[at++] = id;
    for (const item of items) {
      if (typeof item === 'number') out[at++] = item;
      else {
        const ids = found.get(item)!;
        out.set(ids, at);
        at += ids.length;
      }
    }
    for (const id of specials.suffix) out[at++] = id;
    return out;
  }

  /** The chat template over `messages`, rendered on the worker, within the queue's bounds. */
  async #render(messages: readonly TemplateMessage[], tools: unknown, chars: number): Promise<string> {
    this.#admit(chars);
    try {
      const reply = await this.#parts.thread.request({ op: 'render', dir: this.dir, limits: this.#parts.limits, messages, ...(tools === undefined ? {} : { tools }) }, this.#stallMs);
      if (!reply.ok) {
        if (reply.failure !== undefined) throw new TokenizeError(reply.failure, reply.message);
        throw new TokenizeError('worker', `the tokenizer worker failed: ${reply.message}`);
      }
      if (!('text' in reply)) throw new TokenizeError('worker', 'the tokenizer worker answered out of turn');
      return reply.text;
    } catch (err) {
      if (err instanceof TokenizeError && err.reason === 'worker') this.#workerErrors++;
      throw err;
    } finally {
      this.#release(chars);
    }
  }

  /** Counts a job in the queue, or refuses it (`busy`) when the queue is full. */
  #admit(chars: number): void {
    if (this.#queuedJobs >= this.#maxQueuedJobs || (this.#queuedJobs > 0 && this.#queuedChars + chars > this.#maxQueuedChars)) {
      this.#rejections++;
      throw new TokenizeError('busy', `the tokenizer queue is full (${this.#queuedJobs} jobs, ${this.#queuedChars} characters waiting)`);
    }
    this.#queuedJobs++;
    this.#queuedChars += chars;
  }

  #release(chars: number): void {
    this.#queuedJobs--;
    this.#queuedChars -= chars;
  }

  async #job(texts: string[], addSpecialTokens: boolean): Promise<readonly Uint32Array[]> {
    return (await this.#request(texts, addSpecialTokens, false)).ids;
  }

  async #request(
    texts: string[],
    addSpecialTokens: boolean,
    pieces: boolean,
  ): Promise<{ ids: readonly Uint32Array[]; texts?: readonly (readonly string[])[] | undefined }> {
    let chars = 0;
    for (const t of texts) chars += t.length;
    this.#admit(chars);
    this.#jobs++;
    try {
      const reply = await this.#parts.thread.request({
        op: 'encode',
        dir: this.dir,
        limits: this.#parts.limits,
        texts,
        addSpecialTokens,
        ...(pieces ? { pieces: true } : {}),
      }, this.#stallMs);
      if (!reply.ok) throw new TokenizeError('worker', `the tokenizer worker failed: ${reply.message}`);
      if (!('ids' in reply) || reply.ids.length !== texts.length) throw new TokenizeError('worker', 'the tokenizer worker answered out of turn');
      return { ids: reply.ids, texts: reply.texts };
    } catch (err) {
      if (err instanceof TokenizeError && err.reason === 'worker') this.#workerErrors++;
      throw err;
    } finally {
      this.#release(chars);
    }
  }
}
