import { DEFAULT_BLOCK_CHARS, DEFAULT_MAX_BLOCKS } from './block-hash.js';

/**
 * Characters of prompt text the prefix index ever looks at: hashing stops after
 * DEFAULT_MAX_BLOCKS blocks of DEFAULT_BLOCK_CHARS (131,072 characters ≈ 32k tokens), so text past
 * that is never built. A 15 MiB body thus costs at most this much text, not another copy of
 * itself (upstream's endpoint picker truncates the same way, at `maxPrefixBlocksToMatch` 256
 * blocks of 64 characters).
 */
export const MAX_PREFIX_CHARS = DEFAULT_MAX_BLOCKS * DEFAULT_BLOCK_CHARS;

/** A request's prompt as the prefix index reads it. */
export interface PromptText {
  /** The rendering's first `maxChars` characters. */
  readonly text: string;
  /** The whole rendering's length in characters (for the token estimate), counted without building it. */
  readonly chars: number;
}

/** Appends text up to a cap and counts all of it. */
class Capped {
  text = '';
  chars = 0;
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  add(s: string): void {
    this.chars += s.length;
    const room = this.#max - this.text.length;
    if (room > 0) this.text += s.length <= room ? s : s.slice(0, room);
  }
}

/**
 * The text a request's prefix is judged by. Completions: the `prompt` (string, list of strings, or
 * token ids as text). Chat: the messages in order, each rendered as `role\ncontent\n\n`.
 * Responses API: the `instructions` as a system message, then the `input` (a string is a user
 * message; items are messages). Embeddings: the `input` (string, strings or token ids). Any fixed
 * rendering works for matching requests against each other; this one has the property that
 * matters for multi-turn chat: rendering a conversation plus the assistant's answer is a prefix of
 * rendering the next turn, so the index can credit a pod with the answer it generated.
 *
 * Only the first `maxChars` characters are built (see MAX_PREFIX_CHARS); `chars` counts the whole.
 * Walks at most two levels into the body (message → content part, prompt list → token list), with
 * loops, never recursion.
 */
export function promptOf(body: Readonly<Record<string, unknown>>, maxChars = MAX_PREFIX_CHARS): PromptText | undefined {
  const out = new Capped(maxChars);
  const messages = body['messages'];
  if (Array.isArray(messages)) {
    renderInto(out, messages);
    return out;
  }
  const prompt = body['prompt'];
  if (prompt !== undefined) return valueInto(out, prompt) ? out : undefined;
  const input = body['input'];
  if (input === undefined) return undefined;
  const instructions = body['instructions'];
  if (typeof instructions === 'string') renderInto(out, [{ role: 'system', content: instructions }]);
  if (typeof input === 'string') {
    renderInto(out, [{ role: 'user', content: input }]);
    return out;
  }
  if (Array.isArray(input) && input.some((i) => i !== null && typeof i === 'object' && !Array.isArray(i))) {
    renderInto(out, input);
    return out;
  }
  // Embeddings-style input: no instructions rendering (as before: the value alone).
  const plain = new Capped(maxChars);
  return valueInto(plain, input) ? plain : undefined;
}

/** The prompt text (its first `maxChars` characters), or undefined when the body has none. */
export function promptText(body: Readonly<Record<string, unknown>>, maxChars = MAX_PREFIX_CHARS): string | undefined {
  return promptOf(body, maxChars)?.text;
}

/** A string, a list of strings, token ids or lists of token ids, as text; false when it is none of these. */
function valueInto(out: Capped, prompt: unknown): boolean {
  if (typeof prompt === 'string') {
    out.add(prompt);
    return true;
  }
  if (!Array.isArray(prompt)) return false;
  for (let i = 0; i < prompt.length; i++) {
    if (i > 0) out.add('\n');
    const p: unknown = prompt[i];
    if (typeof p === 'string') out.add(p);
    else if (Array.isArray(p)) {
      for (let j = 0; j < p.length; j++) {
        if (j > 0) out.add(' ');
        out.add(scalarText(p[j]));
      }
    } else out.add(p !== null && typeof p === 'object' ? '' : String(p));
  }
  return true;
}

/** A token id (or any scalar) as text; containers deeper than a token list count as nothing. */
function scalarText(v: unknown): string {
  return v === null || v === undefined || typeof v === 'object' ? '' : String(v);
}

function renderInto(out: Capped, messages: readonly unknown[]): void {
  for (const m of messages) {
    if (m === null || typeof m !== 'object') continue;
    const { role, content } = m as { role?: unknown; content?: unknown };
    out.add(typeof role === 'string' ? role : '');
    out.add('\n');
    contentInto(out, content);
    out.add('\n\n');
  }
}

/** Renders messages as `role\ncontent\n\n` each (the whole text: for short, known inputs). */
export function renderMessages(messages: readonly unknown[]): string {
  const out = new Capped(Number.POSITIVE_INFINITY);
  renderInto(out, messages);
  return out.text;
}

/** A message's text: a string, or the `text` parts of a content-part array (`text`, `input_text`, `output_text`). */
function contentInto(out: Capped, content: unknown): void {
  if (typeof content === 'string') {
    out.add(content);
    return;
  }
  if (!Array.isArray(content)) return;
  for (const part of content) {
    if (part !== null && typeof part === 'object' && typeof (part as { text?: unknown }).text === 'string') out.add((part as { text: string }).text);
  }
}

/**
 * The text of an answer appended to its request's prompt, for indexing what the pod now caches:
 * chat and Responses add it as an assistant message, completions as plain text. At most
 * `maxChars` characters, like promptText.
 */
export function withAnswer(body: Readonly<Record<string, unknown>>, answer: string, maxChars = MAX_PREFIX_CHARS): string | undefined {
  const prompt = promptOf(body, maxChars);
  if (prompt === undefined) return undefined;
  const out = new Capped(maxChars);
  out.add(prompt.text);
  const chat = Array.isArray(body['messages']) || (body['input'] !== undefined && body['prompt'] === undefined);
  if (chat) renderInto(out, [{ role: 'assistant', content: answer }]);
  else out.add(answer);
  return out.text;
}

/** Rough token count (≈ 4 characters per token), for load accounting before the server says. */
export function estimateTokens(chars: number): number {
  return Math.ceil(chars / 4);
}
