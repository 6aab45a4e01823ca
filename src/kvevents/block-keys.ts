import { hashBlock } from '../core/block-chain-hash.js';
import { fmix32, fnv1a32 } from '../core/hash32.js';

/**
 * The gateway's own keys for full KV blocks, computed from token ids, so the engine's hash seed
 * and algorithm never matter (vLLM's `PYTHONHASHSEED` and `--prefix-caching-hash-algo`): the
 * llm-d indexer does the same, mapping each engine hash to a key of its own computed from the
 * event's tokens (llm-d/llm-d-kv-cache docs/architecture.md).
 *
 * `key_i = H(key_{i-1}, tokens of block i, extra)` chained from `ROOT_BLOCK_KEY`, H the 53-bit
 * hash of core/block-chain-hash.ts (a plain JS number, a cheap Map key). `extra` folds the LoRA
 * adapter name (adapters never share blocks, as in vLLM) and an optional digest of the blocks'
 * non-token extra keys (multimodal hashes, cache salt: `BlockStoredEvent.extraKeysDigest`), the same
 * for every block of one call. Only full blocks get keys; a trailing partial block is never a hit
 * in vLLM (docs/design/prefix_caching.md).
 *
 * Because each key depends only on its parent key and its own block, a request's whole token list
 * and the same tokens arriving as several `BlockStored` events (each chained on the previous
 * event's last block through `parent`) give identical keys.
 */

/** The chain's root: the parent of a sequence's first block. */
export const ROOT_BLOCK_KEY = 0;

export interface BlockKeyOptions {
  /** `BlockStoredEvent.extraKeysDigest`, or null/undefined for text-only blocks. */
  readonly extraDigest?: number | null;
  /** The key of the block before `tokens[0]`; default `ROOT_BLOCK_KEY`. */
  readonly parent?: number;
  /** Most keys to compute (a request's prompt may be longer than anything worth matching). */
  readonly maxBlocks?: number;
}

const TWO_32 = 4294967296;

/**
 * The 32-bit `extra` of every block: 0 for the base model without extra keys, otherwise a mix of
 * FNV-1a(LoRA name) and the digest (any finite number; its low 53 bits count).
 */
export function blockExtra(lora: string | null, extraDigest: number | null | undefined): number {
  let e = lora === null || lora === '' ? 0 : fnv1a32(lora) || 1;
  if (extraDigest !== null && extraDigest !== undefined && Number.isFinite(extraDigest)) {
    const d = Math.abs(Math.trunc(extraDigest));
    e = fmix32(e ^ fmix32((d >>> 0) ^ 0x27d4eb2f) ^ (Math.floor(d / TWO_32) >>> 0)) || 1;
  }
  return e;
}

/**
 * Keys of the full blocks of `tokens`: ⌊tokens.length / blockSize⌋ of them (at most
 * `options.maxBlocks`), in order. `blockSize` must be a positive integer (a RangeError otherwise).
 * `lora` is the adapter whose blocks these are (null for the base model).
 */
export function blockKeys(tokens: ArrayLike<number>, blockSize: number, lora: string | null, options: BlockKeyOptions = {}): Float64Array {
  if (!Number.isInteger(blockSize) || blockSize <= 0) throw new RangeError(`block size must be a positive integer, got ${blockSize}`);
  let n = Math.floor(tokens.length / blockSize);
  if (options.maxBlocks !== undefined) n = Math.min(n, Math.max(0, Math.floor(options.maxBlocks)));
  const extra = blockExtra(lora, options.extraDigest);
  const out = new Float64Array(n);
  let parent = options.parent ?? ROOT_BLOCK_KEY;
  for (let b = 0; b < n; b++) {
    parent = hashBlock(parent, tokens, b * blockSize, blockSize, extra);
    out[b] = parent;
  }
  return out;
}
