/**
 * Chained hashes of full KV blocks, the keys of the prefix cache.
 *
 * Like vLLM (docs/design/prefix_caching.md): `h_i = hash(h_{i-1}, tokens of block i, extra)`, so a
 * block's hash identifies the whole prefix up to and including it. `extra` is the LoRA adapter
 * name (adapters never share blocks) and, on the first block only, an optional cache salt (vLLM
 * V1 `cache_salt`). Only full blocks are hashed.
 *
 * The hash is core/block-chain-hash.ts (53 bits, a plain JS number). The chain root is 0. It is our
 * own function, not vLLM's: ids only need to agree between simulators.
 */

import { hashBlock } from '../../core/block-chain-hash.js';
import { fnv1a32 } from './hash.js';

export { hashBlock };

/** 32-bit key for an "extra key" string (LoRA name, cache salt); 0 for none. */
export function extraKey(s: string | null | undefined): number {
  return s === null || s === undefined || s === '' ? 0 : fnv1a32(s) || 1;
}

/**
 * Hashes of every full block of `tokens` (⌊length / blockSize⌋ of them), appended to `out`
 * (default a new array). `lora` and `cacheSalt` are the extra keys described above.
 */
export function hashFullBlocks(
  tokens: ArrayLike<number>,
  blockSize: number,
  lora: string | null = null,
  cacheSalt: string | null = null,
  out: number[] = [],
): number[] {
  const loraKey = extraKey(lora);
  const first = loraKey ^ extraKey(cacheSalt);
  const full = Math.floor(tokens.length / blockSize);
  let parent = 0;
  for (let b = 0; b < full; b++) {
    parent = hashBlock(parent, tokens, b * blockSize, blockSize, b === 0 ? first : loraKey);
    out.push(parent);
  }
  return out;
}
