import type { Endpoint } from '../core/endpoint.js';
import { fmix32 } from '../core/hash32.js';
import { hashText } from './block-hash.js';

/**
 * A prompt's "prefix home": the endpoint every gateway replica sends a shared prefix to when its
 * own prefix index knows nothing about it. Each replica of an active-active gateway learns its
 * prefix index only from the requests it routed itself, so without a common rule each replica
 * placed a shared-prefix group on its own choice of engine and the group's prefix was prefilled
 * and cached once per replica (docs/benchmarks.md, "Replicas"). The home is a pure function of the
 * prompt and the candidate endpoints, so replicas agree on it without sharing any state:
 *
 * ```
 *   anchor = chained block hash at index anchorBlocks − 1   (the first ~256 tokens; shorter: none)
 *   home   = argmax over candidates e of mix(anchor, e.key) (rendezvous hashing)
 * ```
 *
 * Rendezvous (highest-random-weight) hashing, Thaler & Ravishankar 1998: every (anchor, endpoint)
 * pair gets a pseudo-random weight and the heaviest candidate wins. An endpoint joining or leaving
 * moves only the anchors it wins or won (1/N of them); the others keep their home. The chained
 * hash already starts from the target model, so a LoRA adapter's prompts have their own homes.
 */

/**
 * The anchor hash of a prompt's block chain: its block `anchorBlocks` − 1, which stands for the
 * prompt's first `anchorBlocks` blocks. Undefined for a prompt with fewer blocks: its anchor
 * would be its last block, which changes with every turn of a short conversation, so the home
 * would pull turn 2 away from the endpoint that caches turn 1 (test/integration/smart-prefix, seed
 * 002: measured); and a prompt under `anchorBlocks` (the scorer's `minBlocksForFullScore`, ≈ 256
 * tokens) saves little prefill from a cache hit anyway.
 */
export function homeAnchor(hashes: Uint32Array, anchorBlocks: number): number | undefined {
  const at = Math.max(1, anchorBlocks) - 1;
  return at < hashes.length ? hashes[at] : undefined;
}

/**
 * The index in `endpoints` of the anchor's home (−1 for an empty list). Depends only on the
 * anchor and the endpoints' keys (`address:port`, the same in every replica that discovers the
 * same Pods), not on their order. O(candidates × key length).
 */
export function rendezvousHome(anchor: number, endpoints: readonly Endpoint[]): number {
  let best = -1;
  let bestWeight = -1;
  let bestKey = '';
  for (let i = 0; i < endpoints.length; i++) {
    const key = (endpoints[i] as Endpoint).key;
    const weight = homeWeight(anchor, key);
    // Equal 32-bit weights (rare) are broken by key, so the order of the candidates never matters.
    if (weight > bestWeight || (weight === bestWeight && key > bestKey)) {
      best = i;
      bestWeight = weight;
      bestKey = key;
    }
  }
  return best;
}

/** The pseudo-random weight of (anchor, endpoint key): FNV-1a of the key seeded with the anchor, then murmur3's finaliser so every output bit depends on every input bit. */
export function homeWeight(anchor: number, key: string): number {
  return fmix32(hashText(key, anchor));
}

