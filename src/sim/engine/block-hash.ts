/**
 * Chained hashes of full KV blocks, the keys of the prefix cache.
 *
 * Like vLLM (docs/design/prefix_caching.md): `h_i = hash(h_{i-1}, tokens of block i, extra)`, so a
 * block's hash identifies the whole prefix up to and including it. `extra` is the LoRA adapter
 * name (adapters never share blocks) and, on the first block only, an optional cache salt (vLLM
 * V1 `cache_salt`). Only full blocks are hashed.
 *
 * The hash is two 32-bit murmur-style lanes folded into a 53-bit integer, so it is a plain JS
 * number (a cheap Map key) with negligible collision odds at our block counts (~10^5–10^6). The
 * chain root is 0. It is our own function, not vLLM's: ids only need to agree between simulators.
 */

import { fmix32, fnv1a32 } from './hash.js';

const TWO_32 = 4294967296;

/** 32-bit key for an "extra key" string (LoRA name, cache salt); 0 for none. */
export function extraKey(s: string | null | undefined): number {
  return s === null || s === undefined || s === '' ? 0 : fnv1a32(s) || 1;
}

/**
 * Hash of one block: `count` tokens of `tokens` starting at `start`, chained on `parent` (a
 * previous result, or 0 for the first block), with a 32-bit `extra` key. Returns an integer in
 * [0, 2^53).
 */
export function hashBlock(parent: number, tokens: ArrayLike<number>, start: number, count: number, extra: number): number {
  let h1 = (parent >>> 0) ^ 0x9747b28c; // ToUint32 keeps the low 32 bits
  let h2 = (Math.floor(parent / TWO_32) >>> 0) ^ extra ^ 0x5bd1e995;
  const end = start + count;
  for (let i = start; i < end; i++) {
    const t = tokens[i] ?? 0;
    let k = Math.imul(t, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h1 ^= k;
    h1 = (h1 << 13) | (h1 >>> 19);
    h1 = (Math.imul(h1, 5) + 0xe6546b64) | 0;
    h2 ^= Math.imul(t ^ (t >>> 16), 0x85ebca6b);
    h2 = (h2 << 17) | (h2 >>> 15);
    h2 = (Math.imul(h2, 9) + 0x38495ab5) | 0;
  }
  h1 ^= count;
  h2 ^= extra;
  h1 = fmix32((h1 + h2) | 0);
  h2 = fmix32((h2 + h1) | 0);
  return (h2 >>> 11) * TWO_32 + h1; // 21 + 32 = 53 bits
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
