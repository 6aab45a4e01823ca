/**
 * MurmurHash3's 32-bit finaliser (public domain, Austin Appleby): spreads a 32-bit hash's bits so
 * every output bit depends on every input bit (unsigned result). Shared by the prefix home's
 * rendezvous weights and the simulator's hashes: both need stable, process-independent values.
 */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a offset basis and prime (32-bit, public domain: Fowler, Noll, Vo). */
export const FNV_OFFSET = 0x811c9dc5;
export const FNV_PRIME = 0x01000193;

/** FNV-1a 32-bit over the UTF-16 code units of `s` (an unsigned 32-bit integer). */
export function fnv1a32(s: string, seed: number = FNV_OFFSET): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}
