/**
 * The simulator's tokenizer: deterministic, cheap, identical in every engine and process.
 *
 * It is not a real BPE; it only needs realistic *counts* (≈ 4 characters per token on English
 * text) and stable *ids*, so that identical text gives identical KV blocks on every simulated
 * server, and a multi-turn conversation shares its earlier turns' blocks.
 *
 * Pieces, scanned left to right:
 * 1. a special token `<|im_start|>` or `<|im_end|>` (one token each);
 * 2. a single space followed by up to 4 non-whitespace characters (`" word"`), like GPT-style
 *    tokenizers that glue a space to the next word;
 * 3. up to 4 non-whitespace characters;
 * 4. a run of whitespace, except that a final space directly followed by a non-whitespace
 *    character is left for rule 2.
 * Non-whitespace pieces also stop before a special token. Whitespace is ASCII space, \t, \n, \v,
 * \f, \r.
 *
 * Consequences the rest of the simulator relies on:
 * - `tokenize(a + b)` equals `tokenize(a).concat(tokenize(b))` when `b` starts with a special
 *   token or `a` ends with one (no piece crosses a special token), and also when `a` ends with
 *   "\n" and `b` starts with a space + word or a word (this is the `assistant\n` → answer seam);
 * - token ids are FNV-1a 32-bit hashes of the piece's UTF-16 code units: the same text gives the
 *   same ids everywhere. Ids are not vocabulary indexes and may (very rarely) collide.
 */

import { FNV_OFFSET, FNV_PRIME, fnv1a32 } from './hash.js';

/** Special tokens of the ChatML template, each one token. */
export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';

const MAX_WORD = 4;
const LT = 0x3c; // '<'

const IM_START_ID = fnv1a32(IM_START);
const IM_END_ID = fnv1a32(IM_END);

function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/** Length of the special token starting at `i`, or 0. Only called when text[i] is '<'. */
function specialAt(text: string, i: number): number {
  if (text.startsWith(IM_START, i)) return IM_START.length;
  if (text.startsWith(IM_END, i)) return IM_END.length;
  return 0;
}

/**
 * Scans `text` and calls `emit(start, end, id)` for every piece. The single implementation behind
 * every public function below, so counting, ids and piece texts can never disagree.
 */
function scan(text: string, emit: (start: number, end: number, id: number) => void): void {
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    const start = i;
    if (c === LT) {
      const len = specialAt(text, i);
      if (len > 0) {
        emit(i, i + len, len === IM_START.length ? IM_START_ID : IM_END_ID);
        i += len;
        continue;
      }
    }
    let h = FNV_OFFSET;
    if (isSpace(c)) {
      const next = i + 1 < n ? text.charCodeAt(i + 1) : 32;
      const glues = c === 32 && !isSpace(next) && !(next === LT && specialAt(text, i + 1) > 0);
      if (!glues) {
        // Whitespace run; stop before a space that glues to the following word.
        while (i < n) {
          const w = text.charCodeAt(i);
          if (!isSpace(w)) break;
          if (w === 32 && i > start && i + 1 < n) {
            const after = text.charCodeAt(i + 1);
            if (!isSpace(after) && !(after === LT && specialAt(text, i + 1) > 0)) break;
          }
          h = Math.imul(h ^ w, FNV_PRIME);
          i++;
        }
        emit(start, i, h >>> 0);
        continue;
      }
      h = Math.imul(h ^ c, FNV_PRIME); // the glued leading space
      i++;
    }
    // Up to 4 non-whitespace characters, stopping before whitespace or a special token.
    const limit = Math.min(n, i + MAX_WORD);
    while (i < limit) {
      const w = text.charCodeAt(i);
      if (isSpace(w) || (w === LT && specialAt(text, i) > 0)) break;
      h = Math.imul(h ^ w, FNV_PRIME);
      i++;
    }
    emit(start, i, h >>> 0);
  }
}

/** Characters per token of English text: the rule of thumb the benchmark workloads are sized by. */
const CHARS_PER_TOKEN = 4;

/**
 * A prompt's token count without tokenising it, ⌈characters / 4⌉, in O(1): for profiles that count
 * prompts (`tokenizePrompts: false`). Within ~10 % of `countTokens` on English text.
 */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}

/** Token ids of `text` (see the file comment for the rules). */
export function tokenize(text: string): number[] {
  const ids: number[] = [];
  scan(text, (_s, _e, id) => {
    ids.push(id);
  });
  return ids;
}

/** Number of tokens in `text`, without building the id array. */
export function countTokens(text: string): number {
  let n = 0;
  scan(text, () => {
    n++;
  });
  return n;
}

/** The piece texts of `text` (for tests, demos and output generation; allocates one string per piece). */
export function tokenizePieces(text: string): string[] {
  const pieces: string[] = [];
  scan(text, (s, e) => {
    pieces.push(text.slice(s, e));
  });
  return pieces;
}

/** Token id of one piece's text (assumes `piece` is a single piece; no check). */
export function pieceId(piece: string): number {
  return fnv1a32(piece);
}

/** An OpenAI content part; only `text` parts contribute to the prompt. */
export interface ChatContentPart {
  type: string;
  text?: string;
}

/** An OpenAI chat message as far as the template needs it. */
export interface ChatMessage {
  role: string;
  content?: string | readonly ChatContentPart[] | null;
}

/** The text of a message's content: a string as is, content parts' `text` joined with "\n". */
export function messageText(content: ChatMessage['content']): string {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  let out = '';
  let first = true;
  for (const part of content) {
    if (typeof part.text !== 'string') continue;
    out += first ? part.text : '\n' + part.text;
    first = false;
  }
  return out;
}

/**
 * Renders chat messages with the ChatML template (as Qwen models use):
 * `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then the generation prompt
 * `<|im_start|>assistant\n`. Content-part arrays contribute their `text` parts joined by "\n"
 * (vLLM's string content format does the same).
 */
export function renderChat(messages: readonly ChatMessage[]): string {
  let out = '';
  for (const m of messages) out += `${IM_START}${m.role}\n${messageText(m.content)}${IM_END}\n`;
  return out + `${IM_START}assistant\n`;
}
