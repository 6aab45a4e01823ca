import type { Endpoint } from '../core/endpoint.js';

/**
 * Which prompt blocks each endpoint probably holds in its KV cache, learned from the gateway's own
 * routing decisions ("estimate mode"): a request's block hashes are recorded on the endpoint it
 * was sent to, and at the end of a response the prompt plus the generated text are recorded, so
 * the next turn of a conversation matches its whole history.
 *
 * ```
 *   endpoint ─► LRU Set<blockHash>   (insertion order = recency; oldest evicted first)
 *               capacity = the server's KV capacity in our blocks, else `defaultCapacity`
 * ```
 *
 * Memory is bounded whatever the servers report and the clients send: an endpoint's capacity is
 * clamped to `maxCapacity` blocks, and the whole index never holds more than `maxEntries` after a
 * `record` (past it, every endpoint is trimmed to an equal share, oldest entries first; within one
 * call it may pass the bound by that call's chain, at most `maxCapacity` and in the gateway at most
 * DEFAULT_MAX_BLOCKS = 2,048 hashes). Entries of endpoints that leave every pool are dropped.
 * Matching walks each candidate's LRU along the request's chain and stops at the first miss, so a
 * lookup costs O(candidates × matched blocks).
 *
 * Measured cost per block held (bench/prefix/index-memory.ts: 2 Mi blocks over 8 endpoints, V8 heap
 * after a full GC, Node 20.20 x64): 28 bytes once filled, 48 bytes once the LRU has turned over (a
 * Set keeps deleted slots until it rehashes, and its table then sits at up to twice the next power
 * of two; keys above 2^30 are heap numbers of their own). So an endpoint at the default 31,250
 * blocks costs about 1.5 MiB, one at MAX_BLOCKS_PER_ENDPOINT about 12 MiB, and the whole index at
 * MAX_INDEX_ENTRIES about 96 MiB.
 */

/**
 * Most blocks kept for one endpoint, whatever its `num_gpu_blocks` says: 262,144 index blocks are
 * 4 Mi tokens of KV, above the KV cache of any single model server today (an 8×H200 node serving a
 * 70B model holds about 2 M tokens). A server reporting more (2^53 − 1 has been seen) gets this.
 */
export const MAX_BLOCKS_PER_ENDPOINT = 262_144;

/**
 * Most entries in the whole index: 2 Mi entries (32 Mi tokens of KV: 64 servers of ~500 K tokens
 * each). At the measured 48 bytes a block (above) the index stays under about 96 MiB however many
 * endpoints report however large a cache.
 */
export const MAX_INDEX_ENTRIES = 2_097_152;
export interface PrefixIndexOptions {
  /** Blocks kept per endpoint when the server does not report its KV size. Default 31,250
   *  (upstream's sizing: ~500k tokens of KV in 16-token blocks). */
  readonly defaultCapacity?: number;
  /** Tokens one index block stands for (64 chars / 4). Default 16. */
  readonly tokensPerBlock?: number;
  /** Most blocks per endpoint, whatever the server reports. Default MAX_BLOCKS_PER_ENDPOINT. */
  readonly maxCapacity?: number;
  /** Most entries across all endpoints. Default MAX_INDEX_ENTRIES. */
  readonly maxEntries?: number;
}

export class PrefixIndex {
  readonly #lru = new Map<Endpoint, Set<number>>();
  readonly #defaultCapacity: number;
  readonly #tokensPerBlock: number;
  readonly #maxCapacity: number;
  readonly #maxEntries: number;
  /** Entries across all endpoints (kept exact by record and retainOnly). */
  #size = 0;
  #lookups = 0;
  #lookupBlocks = 0;
  #hitBlocks = 0;
  /** Told of every record this process's own routing makes (see `onRecord`); undefined: nobody listens. */
  #listener: ((endpoint: Endpoint, hashes: Uint32Array) => void) | undefined;

  constructor(options: PrefixIndexOptions = {}) {
    this.#maxCapacity = Math.max(1, options.maxCapacity ?? MAX_BLOCKS_PER_ENDPOINT);
    this.#maxEntries = Math.max(1, options.maxEntries ?? MAX_INDEX_ENTRIES);
    this.#defaultCapacity = Math.min(options.defaultCapacity ?? 31_250, this.#maxCapacity);
    this.#tokensPerBlock = options.tokensPerBlock ?? 16;
  }

  /**
   * The server's KV capacity in index blocks when its metrics report it (`num_gpu_blocks` ×
   * `block_size` tokens), so the index forgets about as fast as the server's cache does; never
   * more than `maxCapacity`, and `defaultCapacity` when the report is absent or not a number.
   */
  capacityOf(endpoint: Endpoint): number {
    const m = endpoint.metrics;
    if (m?.numGpuBlocks !== undefined && m.blockSize !== undefined && m.numGpuBlocks > 0) {
      const blocks = Math.floor((m.numGpuBlocks * m.blockSize) / this.#tokensPerBlock);
      if (Number.isNaN(blocks)) return this.#defaultCapacity;
      return Math.max(1, Math.min(this.#maxCapacity, blocks));
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

  /**
   * Tells `listener` of every `record` from now on (not of `recordShared`): how the workers of
   * `infergate serve --workers N` let their siblings know where they routed a prefix
   * (src/workers/prefix-share.ts). One listener; undefined removes it. The listener must not keep
   * `hashes` past the call without copying it.
   */
  onRecord(listener: ((endpoint: Endpoint, hashes: Uint32Array) => void) | undefined): void {
    this.#listener = listener;
  }

  /** Records that `endpoint` now caches `hashes` (most recent last), evicting its oldest entries. */
  record(endpoint: Endpoint, hashes: Uint32Array): void {
    if (hashes.length === 0) return;
    this.#insert(endpoint, hashes);
    this.#listener?.(endpoint, hashes);
  }

  /**
   * `record` for a routing decision another worker of the same gateway made: the same effect on
   * the index, without telling the `onRecord` listener (which would send it back).
   */
  recordShared(endpoint: Endpoint, hashes: Uint32Array): void {
    if (hashes.length > 0) this.#insert(endpoint, hashes);
  }

  #insert(endpoint: Endpoint, hashes: Uint32Array): void {
    let lru = this.#lru.get(endpoint);
    if (lru === undefined) {
      lru = new Set();
      this.#lru.set(endpoint, lru);
    }
    const capacity = this.capacityOf(endpoint);
    // A chain longer than the capacity keeps its newest blocks only: never grow past it, even briefly.
    const from = hashes.length > capacity ? hashes.length - capacity : 0;
    const before = lru.size;
    for (let i = from; i < hashes.length; i++) {
      const h = hashes[i] as number;
      lru.delete(h);
      lru.add(h);
    }
    this.#size += trim(lru, capacity) - before;
    if (this.#size > this.#maxEntries) this.#shrinkToShare();
  }

  /** The index holds more than `maxEntries`: every endpoint keeps at most an equal share. */
  #shrinkToShare(): void {
    const share = Math.max(1, Math.floor(this.#maxEntries / this.#lru.size));
    let size = 0;
    for (const lru of this.#lru.values()) size += trim(lru, share);
    this.#size = size;
  }

  /** Drops the entries of endpoints that are not in `keep` (they left every pool). */
  retainOnly(keep: ReadonlySet<Endpoint>): void {
    for (const [endpoint, lru] of this.#lru) {
      if (keep.has(endpoint)) continue;
      this.#size -= lru.size;
      this.#lru.delete(endpoint);
    }
  }

  /** Drops what the index holds for `endpoints` (they left discovery): O(their number). */
  forget(endpoints: Iterable<Endpoint>): void {
    for (const endpoint of endpoints) {
      const lru = this.#lru.get(endpoint);
      if (lru === undefined) continue;
      this.#size -= lru.size;
      this.#lru.delete(endpoint);
    }
  }

  /** Total entries across endpoints. */
  get size(): number {
    return this.#size;
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

/** Evicts the oldest entries of `lru` beyond `capacity`; returns its size after. */
function trim(lru: Set<number>, capacity: number): number {
  let excess = lru.size - capacity;
  if (excess <= 0) return lru.size;
  for (const key of lru.keys()) {
    if (excess-- <= 0) break;
    lru.delete(key);
  }
  return lru.size;
}
