/**
 * Deterministic answers: the same (prompt, model, voice) gives the same tokens on every simulated
 * server.
 *
 * An answer is a readable header, so a demo shows which model or LoRA adapter answered, followed
 * by short words drawn by a PRNG seeded from the prompt. The header is a self-introduction when
 * the server knows the model it stands for (its model path, `AnswerVoice.modelPath`):
 * " I am Qwen-2.5-7B-Instruct." for the base model, " I am Qwen-2.5-7B-Instruct + LoRA
 * travel-helper-v1." when an adapter serves, as a real model names itself when asked who it is;
 * without a model path it is the requested name, " travel-helper-v1:". The header is tokens like
 * the rest (cut by `max_tokens`, counted in usage). Every word
 * is a space plus at most 4 characters, i.e. exactly one token of our tokenizer, so the joined
 * answer text re-tokenizes to exactly the generated ids. That matters: when a client resends the
 * answer in its next turn, the server finds the answer's KV blocks in its prefix cache.
 *
 * The natural length (where the model would emit EOS) is 16–256 tokens, from the prompt hash and
 * the requested name (not the voice: a header longer than the natural length is cut there; the
 * seeds' names take at most 14 tokens).
 */

import { fmix32 } from './hash.js';
import { tokenizePieces, pieceId } from './tokenizer.js';

/** Shortest and longest natural answer, in tokens. */
export const MIN_ANSWER_TOKENS = 16;
export const MAX_ANSWER_TOKENS = 256;

/** Words ≤ 4 characters; each entry (with its leading space) is one token. */
export const WORDS: readonly string[] = [
  ' the', ' of', ' and', ' to', ' a', ' in', ' is', ' it', ' you', ' that', ' was', ' for', ' on',
  ' are', ' with', ' as', ' they', ' be', ' at', ' one', ' have', ' this', ' from', ' or', ' by',
  ' word', ' but', ' what', ' some', ' we', ' can', ' out', ' all', ' when', ' up', ' use', ' how',
  ' an', ' each', ' do', ' time', ' if', ' will', ' way', ' many', ' then', ' so', ' look', ' more',
  ' day', ' go', ' come', ' no', ' most', ' over', ' down', ' long', ' made', ' part', ' data',
  ' fast', ' GPU', ' KV', ' next', ' same', ' now.', ' too,', ' yes.', ' ok,', ' so.',
];
const WORD_IDS: readonly number[] = WORDS.map(pieceId);
for (const w of WORDS) if (tokenizePieces(w).length !== 1) throw new Error(`output word ${JSON.stringify(w)} is not one token`);

/**
 * A 32-bit seed from the prompt's token ids and the requested model name; given a number, from
 * the length alone of a prompt that was counted, not tokenised (`tokenizePrompts: false`).
 */
export function answerSeed(promptTokens: ArrayLike<number> | number, model: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < model.length; i++) h = Math.imul(h ^ model.charCodeAt(i), 0x01000193);
  if (typeof promptTokens === 'number') return fmix32(h ^ promptTokens);
  for (let i = 0; i < promptTokens.length; i++) h = Math.imul(h ^ (promptTokens[i] ?? 0), 0x01000193);
  return fmix32(h ^ promptTokens.length);
}

/** Natural answer length for a seed: MIN_ANSWER_TOKENS..MAX_ANSWER_TOKENS inclusive. */
export function naturalAnswerLength(seed: number): number {
  return MIN_ANSWER_TOKENS + (fmix32(seed ^ 0x9e3779b9) % (MAX_ANSWER_TOKENS - MIN_ANSWER_TOKENS + 1));
}

/** Who speaks an answer: the model the server stands for and the adapter serving the request. */
export interface AnswerVoice {
  /**
   * The model the server stands for: the path or hub id it was started with (vLLM's positional
   * model, SGLang's `--model-path`), e.g. "/models/Qwen-2.5-7B-Instruct". Undefined: unknown.
   */
  readonly modelPath?: string | undefined;
  /** The LoRA adapter serving the request; null or undefined for the base model. */
  readonly adapter?: string | null | undefined;
}

/** Longest model or adapter name a header repeats, in characters (names come from flags and requests). */
export const MAX_HEADER_NAME = 64;

/** A name safe to embed: whitespace or '<' could merge with neighbours or form a special token. */
function safeName(name: string): string {
  return name.replace(/[\s<]/g, '-').slice(0, MAX_HEADER_NAME) || 'model';
}

/**
 * The name a model calls itself: the last segment of its path or hub id
 * ("/models/Qwen-2.5-7B-Instruct" and "Qwen/Qwen-2.5-7B-Instruct" → "Qwen-2.5-7B-Instruct").
 */
export function modelSelfName(modelPath: string): string {
  const segments = modelPath.split('/').filter((s) => s !== '');
  return safeName(segments[segments.length - 1] ?? modelPath);
}

/** The header's text for a requested model name and voice (see the file comment). */
export function answerHeader(model: string, voice: AnswerVoice = {}): string {
  if (voice.modelPath === undefined) return ` ${safeName(model)}:`;
  const self = ` I am ${modelSelfName(voice.modelPath)}`;
  return voice.adapter === null || voice.adapter === undefined ? `${self}.` : `${self} + LoRA ${safeName(voice.adapter)}.`;
}

/** Tokens as parallel texts and ids: an answer's header, or the words an answer is drawn from. */
export interface AnswerPieces {
  readonly texts: readonly string[];
  readonly ids: readonly number[];
}
type Header = AnswerPieces;
const headers = new Map<string, Header>();
const DEFAULT_WORDS: AnswerPieces = { texts: WORDS, ids: WORD_IDS };

/** The header pieces of a header text, e.g. " llam", "a-3.", "1-8b", ":" (cached per text). */
function headerPieces(text: string): Header {
  let h = headers.get(text);
  if (h === undefined) {
    const texts = tokenizePieces(text);
    h = { texts, ids: texts.map(pieceId) };
    if (headers.size > 1000) headers.clear(); // bounded: names come from requests
    headers.set(text, h);
  }
  return h;
}

/**
 * A lazily generated answer: call `next()` to advance to the next token, then read `text` / `id`.
 * It allocates nothing per token (texts are shared constants), so engines can hold one per request.
 */
export class AnswerStream {
  /** Where the model would stop on its own (EOS), in tokens. */
  readonly naturalLength: number;
  /** Text of the current token ("" before the first `next()`). */
  text = '';
  /** Id of the current token (0 before the first `next()`). */
  id = 0;
  /** Index of the current token (−1 before the first `next()`). */
  index = -1;

  readonly #header: Header;
  readonly #words: AnswerPieces;
  #rng: number;

  /**
   * `model`: the requested name; `voice`: who answers (see the file comment). `script` replaces
   * the header's tokens and the word list, for a server with a real tokenizer (their ids are then
   * that tokenizer's; sim/real-tokens.ts).
   */
  constructor(seed: number, model: string, voice: AnswerVoice = {}, script: { header?: AnswerPieces | undefined; words?: AnswerPieces | undefined } = {}) {
    this.naturalLength = naturalAnswerLength(seed);
    this.#header = script.header ?? headerPieces(answerHeader(model, voice));
    this.#words = script.words !== undefined && script.words.ids.length > 0 ? script.words : DEFAULT_WORDS;
    this.#rng = seed >>> 0;
  }

  /** Advances to the next token. */
  next(): void {
    const i = ++this.index;
    const head = this.#header;
    if (i < head.texts.length) {
      this.text = head.texts[i]!;
      this.id = head.ids[i]!;
      return;
    }
    // mulberry32 step
    this.#rng = (this.#rng + 0x6d2b79f5) >>> 0;
    let t = this.#rng;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const words = this.#words;
    const w = ((t ^ (t >>> 14)) >>> 0) % words.ids.length;
    this.text = words.texts[w]!;
    this.id = words.ids[w]!;
  }
}

/** How many tokens a request generates and why it stops. */
export interface AnswerLength {
  tokens: number;
  finishReason: 'stop' | 'length';
}

/**
 * Completion length: the natural length capped by `maxTokens` ('length' when capped), or exactly
 * `maxTokens` with `ignoreEos` (vLLM then reports 'length').
 */
export function answerLength(naturalLength: number, maxTokens: number, ignoreEos: boolean): AnswerLength {
  if (ignoreEos || maxTokens < naturalLength) return { tokens: maxTokens, finishReason: 'length' };
  return { tokens: naturalLength, finishReason: 'stop' };
}

/** A whole answer at once (for tests and for faces that do not run an engine). */
export function generateAnswer(
  promptTokens: ArrayLike<number>,
  model: string,
  maxTokens: number,
  ignoreEos = false,
  voice: AnswerVoice = {},
): { texts: string[]; ids: number[]; finishReason: 'stop' | 'length' } {
  const stream = new AnswerStream(answerSeed(promptTokens, model), model, voice);
  const { tokens, finishReason } = answerLength(stream.naturalLength, maxTokens, ignoreEos);
  const texts: string[] = [];
  const ids: number[] = [];
  for (let i = 0; i < tokens; i++) {
    stream.next();
    texts.push(stream.text);
    ids.push(stream.id);
  }
  return { texts, ids, finishReason };
}
