/**
 * `infergate sim --tokenizer DIR`: the simulator tokenises as a vLLM pod would, with the model's
 * own tokenizer and chat template (src/tokens/), so the KV blocks it stores, and the KV events it
 * publishes, carry the token ids a gateway computes from the same text.
 *
 * - Completions: `encodePrompt` (add_special_tokens=true); a prompt given as token ids is used as is.
 * - Chat and Responses: the messages through the model's chat template (`encodeChat`, with the
 *   request's `tools`) instead of the simulator's ChatML stand-in.
 * - Answers: a real model after Llama 3's `<|end_header_id|>\n\n` writes its first word without a
 *   leading space, and a chat template trims the content it resends (`message['content'] | trim`).
 *   So the answer header is "I am X." (the stand-in's " I am X." without its space), tokenised by
 *   the real tokenizer, and the words after it are the stand-in's words that are one real token
 *   each and of the form " letters" (they re-tokenise to the same ids when joined). The answer
 *   text then re-tokenises to exactly the generated ids, and a conversation's next turn finds
 *   the answer's KV blocks. What does not match: the stop token (vLLM's last sampled token,
 *   `<|eot_id|>`, which the next turn's template writes, is never stored: its KV is not computed
 *   in either case, so this agrees) — and templates that rewrite assistant content (strip
 *   reasoning, add a prefix) change the resent text, as they would for vLLM.
 * - Embeddings still count with the stand-in tokenizer.
 *
 * Cost: ~1 µs per character of new text on the tokenizer's worker thread (a segment cache makes
 * a conversation's earlier turns free), plus ~1 s and ~200 MB at start to load a 9 MB tokenizer.json.
 */

import { loadTokenizer, TokenizeError, type ChatTurn, type ModelTokenizer } from '../tokens/index.js';
import { ANSWER_WORDS, type AnswerPieces } from './engine/index.js';
import type { GenerateRequest } from './openai.js';

const MAX_HEADERS = 1000;
const SINGLE_WORD = /^ [A-Za-z]+$/;

/** A request the real tokenizer could not take: the HTTP status and message a vLLM server would give. */
export interface TokenizeRefusal {
  readonly status: number;
  readonly message: string;
  readonly type: string;
}

export class SimTokenizer {
  readonly #tok: ModelTokenizer;
  readonly #headers = new Map<string, AnswerPieces>();
  /** The words answers are drawn from, with the real tokenizer's ids. */
  readonly answerWords: AnswerPieces;

  private constructor(tok: ModelTokenizer, answerWords: AnswerPieces) {
    this.#tok = tok;
    this.answerWords = answerWords;
  }

  /** Loads the tokenizer in `dir`. @throws TokenizerLoadError naming the file at fault. */
  static async load(dir: string): Promise<SimTokenizer> {
    // A vLLM pod queues every request it accepts: no queue bound of our own (a job still ends
    // on the worker's stall bound).
    const tok = await loadTokenizer(dir, { maxQueuedJobs: Number.MAX_SAFE_INTEGER, maxQueuedChars: Number.MAX_SAFE_INTEGER });
    try {
      const texts: string[] = [];
      const ids: number[] = [];
      for (const word of ANSWER_WORDS) {
        if (!SINGLE_WORD.test(word)) continue;
        const pieces = await tok.encodePieces(word);
        if (pieces.ids.length !== 1) continue;
        texts.push(word);
        ids.push(pieces.ids[0]!);
      }
      return new SimTokenizer(tok, { texts, ids });
    } catch (err) {
      tok.close();
      throw err;
    }
  }

  /** The prompt's token ids, as vLLM computes them. @throws TokenizeError */
  async promptTokens(g: GenerateRequest): Promise<number[]> {
    const ids =
      g.chatMessages !== undefined
        ? await this.#tok.encodeChat(g.chatMessages as readonly ChatTurn[], g.tools === undefined ? undefined : { tools: g.tools })
        : await this.#tok.encodePrompt(g.prompt ?? '');
    return Array.from(ids);
  }

  /**
   * The answer header's tokens for the stand-in's header text (output.ts `answerHeader`), without
   * its leading space. Cached (at most 1000 texts: names come from requests).
   */
  async header(text: string): Promise<AnswerPieces> {
    const t = text.trimStart();
    const known = this.#headers.get(t);
    if (known !== undefined) return known;
    const { ids, texts } = await this.#tok.encodePieces(t);
    // A token inside a UTF-8 character decodes to U+FFFD: then the first token carries the text.
    const pieces: AnswerPieces = {
      ids: Array.from(ids),
      texts: texts.join('') === t ? texts : Array.from(ids, (_, i) => (i === 0 ? t : '')),
    };
    if (this.#headers.size >= MAX_HEADERS) this.#headers.clear();
    this.#headers.set(t, pieces);
    return pieces;
  }

  close(): void {
    this.#tok.close();
  }
}

/** What a vLLM server answers when it cannot tokenise a request (the sim's wording). */
export function tokenizeRefusal(err: unknown): TokenizeRefusal {
  if (!(err instanceof TokenizeError)) return { status: 500, message: `Tokenizer failed: ${String(err)}`, type: 'InternalServerError' };
  switch (err.reason) {
    case 'busy':
    case 'worker':
    case 'closed':
      return { status: 503, message: `Tokenizer unavailable: ${err.message}`, type: 'ServiceUnavailableError' };
    case 'multimodal':
      return { status: 400, message: `This model is text-only: ${err.message}`, type: 'BadRequestError' };
    default:
      return { status: 400, message: err.message, type: 'BadRequestError' };
  }
}
