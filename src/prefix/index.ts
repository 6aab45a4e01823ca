import type { Endpoint } from '../core/endpoint.js';

/**
 * Which prompt blocks each endpoint probably holds in its KV cache, learned from the gateway's own
 * routing decisions ("estimate mode"): a request's block hashes are recorded on the endpoint it
 * was sent to, and at the end of a response the prompt plus the generated text are recorded, so
 * the next turn of a conversation matches its whole history.
 *
 * ```
 *   endpoint ─► LRU Map<blockHash, 1>   (insertion order = recency; oldest evicted first)
 *               capacity = the server's KV capacity in our blocks, else `defaultCapacity`
 * ```
 *
 * Memory is bounded by Σ capacities; entries of endpoints that leave every pool are dropped.
 * Matching walks each candidate's LRU along the request's chain and stops at the first miss,
 * so a lookup costs O(candidates × matched blocks).
 */
export interface PrefixIndexOptions {
  /** Blocks kept per endpoint when the server does not report its KV size. Default 31,250
   *  (upstream's sizing: ~500k tokens of KV in 16-token blocks). */
  readonly defaultCapacity?: number;
  /** Tokens one index block stands for (64 chars / 4). Default 16. */
  readonly tokensPerBlock?: number;
}

export class PrefixIndex {
  readonly #lru = new Map<Endpoint, Map<number, 1>>();
  readonly #defaultCapacity: number;
  readonly #tokensPerBlock: number;
  #lookups = 0;
  #lookupBlocks = 0;
  #hitBlocks = 0;

  constructor(options: PrefixIndexOptions = {}) {
    this.#defaultCapacity = options.defaultCapacity ?? 31_250;
    this.#tokensPerBlock = options.tokensPerBlock ?? 16;
  }

  /**
   * The server's KV capacity in index blocks when its metrics report it (`num_gpu_blocks` ×
   * `block_size` tokens), so the index forgets about as fast as the server's cache does.
   */
  capacityOf(endpoint: Endpoint): number {
    const m = endpoint.metrics;
    if (m?.numGpuBlocks !== undefined && m.blockSize !== undefined && m.numGpuBlocks > 0) {
      return Math.max(1, Math.floor((m.numGpuBlocks * m.blockSize) / this.#tokensPerBlock));
    }
    return this.#defaultCapacity;
  }

  /** Writes into `out[i]` how many leading blocks of `hashes` `endpoints[i]` holds. */
  match(hashes: Uint32Array, endpoints: readonly Endpoint[], out: Int32Array): void {
    for (let e = 0; e < endpoints.length; e++) {
      const lru = this.#lru.get(endpoints[e] as Endpoint);
      let n = 0;
      if (lru !== undefined) while (n < hashes.length && lru.has(hashes[n] as number)) n++;
      out[e] = n;
    }
  }

  /** Counts a scheduling lookup for the hit-ratio metric: `hit` of `total` blocks were found. */
  countLookup(hit: number, total: number): void {
    this.#lookups++;
    this.#lookupBlocks += total;
    this.#hitBlocks += hit;
  }

  /** Records that `endpoint` now caches `hashes` (most recent last), evicting its oldest entries. */
  record(endpoint: Endpoint, hashes: Uint32Array): void {
    if (hashes.length === 0) return;
    let lru = this.#lru.get(endpoint);
    if (lru === undefined) {
      lru = new Map();
      this.#lru.set(endpoint, lru);
    }
    for (const h of hashes) {
      lru.delete(h);
      lru.set(h, 1);
    }
    const capacity = this.capacityOf(endpoint);
    if (lru.size > capacity) {
      let excess = lru.size - capacity;
      for (const key of lru.keys()) {
        if (excess-- <= 0) break;
        lru.delete(key);
      }
    }
  }

  /** Drops the entries of endpoints that are not in `keep` (they left every pool). */
  retainOnly(keep: ReadonlySet<Endpoint>): void {
    for (const endpoint of this.#lru.keys()) if (!keep.has(endpoint)) this.#lru.delete(endpoint);
  }

  /** Total entries across endpoints. */
  get size(): number {
    let n = 0;
    for (const lru of this.#lru.values()) n += lru.size;
    return n;
  }

  entriesOf(endpoint: Endpoint): number {
    return this.#lru.get(endpoint)?.size ?? 0;
  }

  /** Share of looked-up blocks that some candidate held, over the process lifetime. */
  get hitRatio(): number {
    return this.#lookupBlocks === 0 ? 0 : this.#hitBlocks / this.#lookupBlocks;
  }

  get lookups(): number {
    return this.#lookups;
  }
}
