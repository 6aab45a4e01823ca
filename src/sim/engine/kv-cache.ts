/**
 * Paged KV-cache block manager with prefix caching, after vLLM V1's KVCacheManager / BlockPool
 * (docs/design/prefix_caching.md, vllm/v1/core/kv_cache_utils.py):
 *
 * - `numBlocks` blocks of `blockSize` tokens. A block is either referenced (ref count > 0, held by
 *   running requests) or in the free queue.
 * - A full, computed block is registered under its chained hash (see block-hash.ts). When the last
 *   reference goes, the block joins the *tail* of the free queue but keeps its hash, so a later
 *   request can still hit it. Allocation pops from the *head* (least recently freed); only then is
 *   the hash evicted. This is an LRU cache made of the free list itself.
 * - A request frees its blocks in reverse order, so the tail of a sequence — the part least likely
 *   to be shared — is evicted first.
 * - Hitting a free cached block takes it out of the free queue (O(1): doubly linked list over
 *   typed arrays), so usage accounting stays exact.
 *
 * All operations cost O(blocks touched); nothing scans the pool.
 */

const NO_HASH = -1;

/** Block pool + hash index; see the file comment. */
export class KvCache {
  /** Total blocks. */
  readonly numBlocks: number;
  /** Tokens per block. */
  readonly blockSize: number;

  readonly #ref: Int32Array;
  readonly #hash: Float64Array;
  readonly #byHash = new Map<number, number>();
  // Free queue: doubly linked list; index `numBlocks` is the sentinel (head = next[s], tail = prev[s]).
  readonly #next: Int32Array;
  readonly #prev: Int32Array;
  readonly #sentinel: number;
  #numFree: number;
  readonly #onEvict: ((hash: number) => void) | undefined;

  /**
   * @param numBlocks total blocks (> 0)
   * @param blockSize tokens per block (default 16, vLLM's CUDA default)
   * @param onEvict called with a hash when its block is reused (vLLM's `BlockRemoved` moment)
   */
  constructor(numBlocks: number, blockSize = 16, onEvict?: (hash: number) => void) {
    if (!Number.isInteger(numBlocks) || numBlocks <= 0) throw new RangeError(`numBlocks must be a positive integer, got ${numBlocks}`);
    if (!Number.isInteger(blockSize) || blockSize <= 0) throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.#onEvict = onEvict;
    this.#ref = new Int32Array(numBlocks);
    this.#hash = new Float64Array(numBlocks).fill(NO_HASH);
    this.#next = new Int32Array(numBlocks + 1);
    this.#prev = new Int32Array(numBlocks + 1);
    this.#sentinel = numBlocks;
    // Initially every block is free, in id order.
    for (let i = 0; i <= numBlocks; i++) {
      this.#next[i] = i === numBlocks ? 0 : i + 1;
      this.#prev[i] = i === 0 ? numBlocks : i - 1;
    }
    this.#numFree = numBlocks;
  }

  /** Blocks in the free queue (including free blocks that still hold a cached hash). */
  get numFree(): number {
    return this.#numFree;
  }

  /** Blocks referenced by at least one request. */
  get numUsed(): number {
    return this.numBlocks - this.#numFree;
  }

  /** `numUsed / numBlocks`, what vLLM reports as `kv_cache_usage_perc` (0..1). */
  get usage(): number {
    return this.numUsed / this.numBlocks;
  }

  /** Number of distinct hashes currently cached (referenced or free). */
  get numCached(): number {
    return this.#byHash.size;
  }

  /** Number of blocks needed to hold `tokens` tokens. */
  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  /** Whether a block with this hash is cached. */
  isCached(hash: number): boolean {
    return this.#byHash.has(hash);
  }

  /** Length of the longest run of cached blocks at the start of `hashes`, at most `maxBlocks`. */
  matchPrefix(hashes: ArrayLike<number>, maxBlocks: number): number {
    const n = Math.min(maxBlocks, hashes.length);
    let i = 0;
    while (i < n && this.#byHash.has(hashes[i]!)) i++;
    return i;
  }

  /** Of the first `count` hashes (all cached), how many sit in the free queue (allocating them costs free blocks). */
  countFreeHits(hashes: ArrayLike<number>, count: number): number {
    let free = 0;
    for (let i = 0; i < count; i++) {
      const b = this.#byHash.get(hashes[i]!);
      if (b !== undefined && this.#ref[b] === 0) free++;
    }
    return free;
  }

  /** Takes a reference on the cached blocks of the first `count` hashes; appends their ids to `out`. */
  acquireHits(hashes: ArrayLike<number>, count: number, out: number[]): void {
    for (let i = 0; i < count; i++) {
      const b = this.#byHash.get(hashes[i]!);
      if (b === undefined) throw new Error(`acquireHits: hash #${i} is not cached`);
      if (this.#ref[b] === 0) this.#unlink(b);
      this.#ref[b]! += 1;
      out.push(b);
    }
  }

  /**
   * Pops `n` blocks from the head of the free queue (evicting their hashes) with one reference
   * each, appending ids to `out`. Returns false and changes nothing if fewer than `n` are free.
   */
  allocate(n: number, out: number[]): boolean {
    if (n > this.#numFree) return false;
    for (let k = 0; k < n; k++) {
      const b = this.#next[this.#sentinel]!;
      this.#unlink(b);
      const h = this.#hash[b]!;
      if (h !== NO_HASH) {
        this.#hash[b] = NO_HASH;
        if (this.#byHash.get(h) === b) {
          this.#byHash.delete(h);
          this.#onEvict?.(h);
        }
      }
      this.#ref[b] = 1;
      out.push(b);
    }
    return true;
  }

  /**
   * Registers a full, computed block under `hash`. If another block already holds that hash (two
   * requests computed the same prefix at once), the first one stays the cached copy and this
   * returns false, as vLLM does.
   */
  cacheBlock(block: number, hash: number): boolean {
    if (this.#hash[block] !== NO_HASH) return false;
    if (this.#byHash.has(hash)) return false;
    this.#hash[block] = hash;
    this.#byHash.set(hash, block);
    return true;
  }

  /**
   * Drops one reference on each of `blocks`, last block first; blocks reaching 0 are appended to
   * the free queue's tail, keeping their hash (so the sequence's tail is evicted first).
   */
  release(blocks: readonly number[]): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = blocks[i]!;
      const r = this.#ref[b]! - 1;
      if (r < 0) throw new Error(`release: block ${b} is not referenced`);
      this.#ref[b] = r;
      if (r === 0) this.#append(b);
    }
  }

  /**
   * Forgets every hash of a free block (vLLM `reset_prefix_cache`, SGLang `flush_cache`); blocks
   * still referenced keep theirs. Returns the number of hashes dropped. O(numBlocks): admin only.
   */
  clearCache(): number {
    let dropped = 0;
    for (let b = 0; b < this.numBlocks; b++) {
      const h = this.#hash[b]!;
      if (h === NO_HASH || this.#ref[b] !== 0) continue;
      this.#hash[b] = NO_HASH;
      this.#byHash.delete(h);
      this.#onEvict?.(h);
      dropped++;
    }
    return dropped;
  }

  /** Reference count of a block (tests, diagnostics). */
  refCount(block: number): number {
    return this.#ref[block] ?? 0;
  }

  /** Hash held by a block, or null (tests, diagnostics). */
  hashOf(block: number): number | null {
    const h = this.#hash[block];
    return h === undefined || h === NO_HASH ? null : h;
  }

  /** Free queue from head (next evicted) to tail; O(numFree), for tests only. */
  freeQueue(): number[] {
    const out: number[] = [];
    for (let b = this.#next[this.#sentinel]!; b !== this.#sentinel; b = this.#next[b]!) out.push(b);
    return out;
  }

  #unlink(b: number): void {
    const p = this.#prev[b]!;
    const n = this.#next[b]!;
    this.#next[p] = n;
    this.#prev[n] = p;
    this.#numFree--;
  }

  #append(b: number): void {
    const s = this.#sentinel;
    const tail = this.#prev[s]!;
    this.#next[tail] = b;
    this.#prev[b] = tail;
    this.#next[b] = s;
    this.#prev[s] = b;
    this.#numFree++;
  }
}
