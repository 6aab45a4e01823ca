/**
 * Small, fast, stable 32-bit hash helpers shared by the tokenizer (token ids), the answer
 * generator (seeds) and the block hasher. Stable across processes: no random seeds. They live in
 * core/hash32.ts, which the gateway's KV-event index shares.
 */

export { FNV_OFFSET, FNV_PRIME, fmix32, fnv1a32 } from '../../core/hash32.js';
