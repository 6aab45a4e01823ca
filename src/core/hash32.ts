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
