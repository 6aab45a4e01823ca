import { fmix32 } from './hash32.js';

const TWO_32 = 4294967296;

/**
 * One link of a chained 53-bit block hash: the simulator's prefix-cache keys (sim/engine/
 * block-hash.ts) and the gateway's KV-event block keys (kvevents/block-keys.ts) both chain it,
 * `h_i = hashBlock(h_{i-1}, tokens of block i, extra)`, as vLLM chains its block hashes
 * (vllm-project/vllm docs/design/prefix_caching.md).
 *
 * Two 32-bit murmur-style lanes folded into a 53-bit integer, so the result is a plain JS number
 * (a cheap Map key) with negligible collision odds at our block counts (~10^6 blocks: about
 * 10^12 / 2^54 ≈ 6·10^-5 expected collisions). Stable across processes (no random seed).
 *
 * `count` tokens of `tokens` from `start`, chained on `parent` (a previous result, or the chain's
 * root), with a 32-bit `extra` key. Token ids are taken as 32-bit integers. Returns an integer in
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
