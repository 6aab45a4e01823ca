/**
 * The token ids of text pieces between added tokens (see added-tokens.ts), least recently used
 * first out, bounded by tokens.
 *
 * It lives on the main thread: a conversation's next turn resends every earlier turn, and those
 * pieces are found here without a message to the worker; only new pieces travel. Keys: a short
 * piece (≤ 64 UTF-16 units) is its own key; a longer one is keyed by its SHA-256 (32 bytes
 * whatever its length), so the cache holds ids, not prompt text.
 *
 * Cost of an entry in the bound: its ids plus `ENTRY_OVERHEAD_TOKENS` (the key, the Map entry and
 * the array header, ~128 bytes, counted as 32 four-byte tokens), so a flood of tiny pieces is
 * bounded too.
 */

import { hash } from 'node:crypto';

export const ENTRY_OVERHEAD_TOKENS = 32;
const SHORT_KEY = 64;

/** The cache key of a piece of text. */
export function pieceKey(text: string): string {
  return text.length <= SHORT_KEY ? 't' + text : 'h' + hash('sha256', text, 'base64');
}

export class SegmentCache {
  readonly #entries = new Map<string, Uint32Array>();
  #cost = 0;

  /** @param maxTokens the bound, in tokens (entry overheads included); 0 disables the cache. */
  constructor(readonly maxTokens: number) {}

  /** The ids cached under `key`, refreshed as most recently used. */
  get(key: string): Uint32Array | undefined {
    const ids = this.#entries.get(key);
    if (ids === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, ids);
    return ids;
  }

  /** Stores `ids` under `key`, evicting least recently used entries to stay within the bound. */
  set(key: string, ids: Uint32Array): void {
    const cost = ids.length + ENTRY_OVERHEAD_TOKENS;
    if (cost > this.maxTokens) return;
    const old = this.#entries.get(key);
    if (old !== undefined) {
      this.#entries.delete(key);
      this.#cost -= old.length + ENTRY_OVERHEAD_TOKENS;
    }
    this.#entries.set(key, ids);
    this.#cost += cost;
    for (const [k, v] of this.#entries) {
      if (this.#cost <= this.maxTokens) break;
      this.#entries.delete(k);
      this.#cost -= v.length + ENTRY_OVERHEAD_TOKENS;
    }
  }

  /** Entries and their cost in tokens. */
  get size(): { entries: number; tokens: number } {
    return { entries: this.#entries.size, tokens: this.#cost };
  }
}
