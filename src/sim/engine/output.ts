/**
 * Deterministic answers: the same (prompt, model) gives the same tokens on every simulated server.
 *
 * An answer is a readable header — the requested model name, so a demo shows which model or LoRA
 * adapter answered — followed by short words drawn by a PRNG seeded from the prompt. Every word
 * is a space plus at most 4 characters, i.e. exactly one token of our tokenizer, so the joined
 * answer text re-tokenizes to exactly the generated ids. That matters: when a client resends the
 * answer in its next turn, the server finds the answer's KV blocks in its prefix cache.
 *
 * The natural length (where the model would emit EOS) is 16–256 tokens, from the prompt hash.
 */

import { fmix32 } from './hash.js';
import { tokenizePieces, pieceId } from './tokenizer.js';

/** Shortest and longest natural answer, in tokens. */
export const MIN_ANSWER_TOKENS = 16;
export const MAX_ANSWER_TOKENS = 256;

/** Words ≤ 4 characters; each entry (with its leading space) is one token. */
const WORDS: readonly string[] = [
  ' the', ' of', ' and', ' to', ' a', ' in', ' is', ' it', ' you', ' that', ' was', ' for', ' on',
  ' are', ' with', ' as', ' they', ' be', ' at', ' one', ' have', ' this', ' from', ' or', ' by',
  ' word', ' but', ' what', ' some', ' we', ' can', ' out', ' all', ' when', ' up', ' use', ' how',
  ' an', ' each', ' do', ' time', ' if', ' will', ' way', ' many', ' then', ' so', ' look', ' more',
  ' day', ' go', ' come', ' no', ' most', ' over', ' down', ' long', ' made', ' part', ' data',
  ' fast', ' GPU', ' KV', ' next', ' same', ' now.', ' too,', ' yes.', ' ok,', ' so.',
];
const WORD_IDS: readonly number[] = WORDS.map(pieceId);
for (const w of WORDS) if (tokenizePieces(w).length !== 1) throw new Error(`output word ${JSON.stringify(w)} is not one token`);

/** A 32-bit seed from the prompt's token ids and the requested model name. */
export function answerSeed(promptTokens: ArrayLike<number>, model: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < model.length; i++) h = Math.imul(h ^ model.charCodeAt(i), 0x01000193);
  for (let i = 0; i < promptTokens.length; i++) h = Math.imul(h ^ (promptTokens[i] ?? 0), 0x01000193);
  return fmix32(h ^ promptTokens.length);
}

/** Natural answer length for a seed: MIN_ANSWER_TOKENS..MAX_ANSWER_TOKENS inclusive. */
export function naturalAnswerLength(seed: number): number {
  return MIN_ANSWER_TOKENS + (fmix32(seed ^ 0x9e3779b9) % (MAX_ANSWER_TOKENS - MIN_ANSWER_TOKENS + 1));
}

interface Header {
  texts: readonly string[];
  ids: readonly number[];
}
const headers = new Map<string, Header>();

/** The header pieces for a model name, e.g. " llam", "a-3.", "1-8b", ":" (cached per name). */
function headerFor(model: string): Header {
  let h = headers.get(model);
  if (h === undefined) {
    // Whitespace or '<' in a name could merge with neighbours or form a special token.
    const texts = tokenizePieces(` ${model.replace(/[\s<]/g, '-') || 'model'}:`);
    h = { texts, ids: texts.map(pieceId) };
    if (headers.size > 1000) headers.clear(); // bounded: names come from requests
    headers.set(model, h);
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
  #rng: number;

  constructor(seed: number, model: string) {
    this.naturalLength = naturalAnswerLength(seed);
    this.#header = headerFor(model);
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
    const w = ((t ^ (t >>> 14)) >>> 0) % WORDS.length;
    this.text = WORDS[w]!;
    this.id = WORD_IDS[w]!;
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
): { texts: string[]; ids: number[]; finishReason: 'stop' | 'length' } {
  const stream = new AnswerStream(answerSeed(promptTokens, model), model);
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
