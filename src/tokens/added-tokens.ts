/**
 * Added (special) tokens, and when a text may be tokenised piece by piece.
 *
 * Hugging Face tokenizers (the Rust crate vLLM uses, and @huggingface/tokenizers, which mirrors it)
 * first cut the input at every added token (longest match at the earliest position), then
 * normalise, pre-tokenise and run the model on each piece between them on its own. So
 * `ids(text) = concat(ids(piece) | added token id)`, and a piece's ids can be cached by its text.
 *
 * That identity breaks when an added token has `lstrip`/`rstrip` (it eats its neighbours'
 * whitespace), `single_word` (whether it matches depends on its neighbours), or `normalized: true`
 * under a normalizer (it is matched after normalisation, inside a piece), or when the
 * pre-tokenizer treats the first piece differently (Metaspace `prepend_scheme: "first"`).
 * `segmentPlan` says whether a tokenizer is free of those; otherwise text is tokenised whole.
 */

export interface AddedTokenEntry {
  readonly content: string;
  readonly id: number;
}

export interface SegmentPlan {
  /** Every added token (special or not), as tokenizer.json lists them. */
  readonly addedTokens: readonly AddedTokenEntry[];
  /** Whether piecewise tokenisation is exactly whole-text tokenisation for this tokenizer. */
  readonly exact: boolean;
  /** Why it is not exact (absent when it is). */
  readonly why?: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether any node of a pre-tokenizer tree is a Metaspace that prefixes only the first piece. */
function firstPieceSpecial(node: unknown, depth = 0): boolean {
  if (depth > 32) return true; // absurd nesting: do not guess
  if (Array.isArray(node)) return node.some((n) => firstPieceSpecial(n, depth + 1));
  if (!isRecord(node)) return false;
  if (node['type'] === 'Metaspace' && node['prepend_scheme'] === 'first') return true;
  return Object.values(node).some((v) => (typeof v === 'object' ? firstPieceSpecial(v, depth + 1) : false));
}

/** Reads tokenizer.json's `added_tokens` and decides whether piecewise tokenisation is exact. */
export function segmentPlan(tokenizerJson: Record<string, unknown>): SegmentPlan {
  const raw = tokenizerJson['added_tokens'];
  const list = Array.isArray(raw) ? raw : [];
  const addedTokens: AddedTokenEntry[] = [];
  const hasNormalizer = tokenizerJson['normalizer'] !== null && tokenizerJson['normalizer'] !== undefined;
  let why: string | undefined;
  for (const t of list) {
    if (!isRecord(t) || typeof t['content'] !== 'string' || typeof t['id'] !== 'number') {
      why ??= 'an added token without content or id';
      continue;
    }
    const content = t['content'];
    if (content.length === 0) continue;
    addedTokens.push({ content, id: t['id'] });
    if (t['lstrip'] === true || t['rstrip'] === true) why ??= `added token ${JSON.stringify(content)} strips whitespace (lstrip/rstrip)`;
    else if (t['single_word'] === true) why ??= `added token ${JSON.stringify(content)} is single_word`;
    else if (t['normalized'] === true && hasNormalizer) why ??= `added token ${JSON.stringify(content)} is matched after normalisation`;
  }
  if (why === undefined && firstPieceSpecial(tokenizerJson['pre_tokenizer'])) {
    why = 'the pre-tokenizer treats the first piece differently (Metaspace prepend_scheme "first")';
  }
  return why === undefined ? { addedTokens, exact: true } : { addedTokens, exact: false, why };
}

interface TrieNode {
  next: Map<number, TrieNode> | undefined;
  id: number; // -1: no token ends here
  length: number;
}

/**
 * Cuts text at added tokens exactly as the tokenizer does: at each position, the longest added
 * token starting there; otherwise the character joins the current piece. Linear in the text
 * (times the longest token, a few dozen characters).
 */
export class AddedTokenSplitter {
  readonly #root: TrieNode = { next: new Map(), id: -1, length: 0 };
  /** Finds the next character that starts some added token (a regex scan, far faster than a Map lookup per character). */
  readonly #firstChars: RegExp | undefined;

  constructor(tokens: readonly AddedTokenEntry[]) {
    const firsts = new Set<number>();
    for (const { content } of tokens) firsts.add(content.charCodeAt(0));
    this.#firstChars =
      firsts.size === 0 ? undefined : new RegExp(`[${[...firsts].map((c) => `\\u${c.toString(16).padStart(4, '0')}`).join('')}]`, 'g');
    for (const { content, id } of tokens) {
      let node = this.#root;
      for (let i = 0; i < content.length; i++) {
        const c = content.charCodeAt(i);
        node.next ??= new Map();
        let child = node.next.get(c);
        if (child === undefined) {
          child = { next: undefined, id: -1, length: i + 1 };
          node.next.set(c, child);
        }
        node = child;
      }
      if (node.id === -1) node.id = id; // the first listed wins a duplicate, as a Map would
    }
  }

  /**
   * Calls `piece(start, end)` for each text piece and `token(id)` for each added token, in order.
   * Pieces are never empty.
   */
  split(text: string, piece: (start: number, end: number) => void, token: (id: number) => void): void {
    const root = this.#root.next;
    const firsts = this.#firstChars;
    const n = text.length;
    let start = 0;
    let i = 0;
    while (i < n && firsts !== undefined) {
      firsts.lastIndex = i;
      if (firsts.exec(text) === null) break;
      i = firsts.lastIndex - 1;
      let node = root?.get(text.charCodeAt(i));
      if (node === undefined) {
        i++;
        continue;
      }
      let matchId = -1;
      let matchLen = 0;
      let j = i;
      while (node !== undefined) {
        if (node.id !== -1) {
          matchId = node.id;
          matchLen = node.length;
        }
        j++;
        if (j >= n || node.next === undefined) break;
        node = node.next.get(text.charCodeAt(j));
      }
      if (matchId === -1) {
        i++;
        continue;
      }
      if (i > start) piece(start, i);
      token(matchId);
      i += matchLen;
      start = i;
    }
    if (start < n) piece(start, n);
  }
}
