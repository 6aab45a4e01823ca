/**
 * Small, fast, stable 32-bit hash helpers shared by the tokenizer (token ids), the answer
 * generator (seeds) and the block hasher. Stable across processes: no random seeds.
 */

/** FNV-1a offset basis and prime (32-bit). */
export const FNV_OFFSET = 0x811c9dc5;
export const FNV_PRIME = 0x01000193;

/** FNV-1a 32-bit over the UTF-16 code units of `s` (an unsigned 32-bit integer). */
export function fnv1a32(s: string, seed: number = FNV_OFFSET): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

/** Murmur3's final avalanche (core/hash32.ts). */
export { fmix32 } from '../../core/hash32.js';
