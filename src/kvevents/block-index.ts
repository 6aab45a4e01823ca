import { blockKeys, ROOT_BLOCK_KEY } from './block-keys.js';
import { FifoMap } from './fifo-map.js';
import type { BlockStoredEvent, EngineBlockHash, KvEventBatch, KvEventProblem, KvMedium } from './events.js';

/**
 * Which KV blocks each model server really holds, learned from its KV events ("precise mode"),
 * keyed by the gateway's own block keys (block-keys.ts) so any engine hash seed or algorithm works.
 *
 * ```
 *   endpoint key ("ip:port") ─► engine   Map<engine entry, block key>   insertion order = age
 *                              held     Map<block key, GPU refs + CPU refs × 2^26>
 *                              speculative Map<block key, expiry ms>  (blocks just routed there)
 * ```
 *
 * An engine entry is the engine's 64-bit hash folded to 52 bits, times 2, plus 1 for CPU: the same
 * engine hash stored on GPU and offloaded to CPU is two entries, and two engine hashes with the same
 * tokens (one block key) are two references; removing one keeps the block held. `BlockRemoved`
 * carries only engine hashes and `BlockStored` chains on an engine hash, hence `engine`. Where the
 * engine's block is a multiple of the pool's block size, each engine block is split into
 * sub-blocks, each its own entry (derived from the engine hash), so all of them are removed with it.
 *
 * The index is per endpoint rather than one map block key → holders: a request is only ever matched
 * against its candidates, so `match` walks each candidate's `held` along the request's keys and
 * stops at that candidate's first miss: O(candidates + matched blocks), never O(index); dropping an
 * endpoint is O(1) plus the garbage collector's O(its entries); and a block costs two map entries,
 * not a holder list.
 *
 * Memory is bounded whatever the engines send: at most `maxBlocksPerEndpoint` engine entries per
 * endpoint and `maxBlocks` in all, the oldest evicted first (counted in `evicted`). Measured cost
 * (bench/kvevents/index-memory.ts: 1 Mi distinct GPU blocks through `apply`, heap after a full GC,
 * Node 20.20 x64, on one endpoint or spread over four): 88 bytes of V8 heap per block, so the
 * defaults bound an endpoint at about 22 MiB and the whole index at about 180 MiB.
 */

/**
 * Engine entries kept per endpoint by default: 262,144 blocks of 16 tokens are 4 Mi tokens of KV,
 * above the KV cache of any single model server today (an 8×H200 node serving a 70B model holds
 * about 2 M tokens), so a real server is never trimmed; a hostile one costs at most ~22 MiB.
 */
export const DEFAULT_MAX_BLOCKS_PER_ENDPOINT = 262_144;

/**
 * Engine entries kept across all endpoints by default: 2 Mi (about 180 MiB at the measured 88 bytes
 * per block). A server with ~500 K tokens of KV (Llama 3 8B on an H100, upstream's sizing) holds
 * ~31 K blocks of 16 tokens, so about 67 such servers fit before the global bound trims; raise it
 * for larger pools (each further Mi blocks costs ~88 MiB).
 */
export const DEFAULT_MAX_BLOCKS = 2_097_152;

/**
 * How long a block the gateway just routed somewhere counts as held there before its
 * `BlockStored` arrives: 2,000 ms, llm-d's `speculativeTTL` (llm-d/llm-d-kv-cache
 * docs/architecture.md). It covers the lag between a pick and the engine's prefill finishing.
 */
export const DEFAULT_SPECULATIVE_TTL_MS = 2_000;

/** Speculative blocks kept per endpoint: 16,384 blocks = 256 Ki tokens of prefill in flight. */
export const DEFAULT_MAX_SPECULATIVE_PER_ENDPOINT = 16_384;

/** Weight of a matched block by where it lives: llm-d's tier weights (gpu 1.0, cpu 0.8; max across tiers). */
export const TIER_WEIGHTS: Readonly<Record<KvMedium, number>> = { GPU: 1.0, CPU: 0.8 };

/** Most references one endpoint can hold on one block per medium (the per-endpoint bound is clamped to it). */
const REF_CPU = 2 ** 26;
const TWO_32 = 4294967296;

export interface KvBlockIndexOptions {
  /** Engine entries per endpoint (1 … 2^26). Default DEFAULT_MAX_BLOCKS_PER_ENDPOINT. */
  readonly maxBlocksPerEndpoint?: number;
  /** Engine entries across all endpoints. Default DEFAULT_MAX_BLOCKS. */
  readonly maxBlocks?: number;
  /** Default DEFAULT_SPECULATIVE_TTL_MS. */
  readonly speculativeTtlMs?: number;
  /** Default DEFAULT_MAX_SPECULATIVE_PER_ENDPOINT. */
  readonly maxSpeculativePerEndpoint?: number;
  /** The clock `match` and `speculate` use when not given a time (ms). Default `performance.now`. */
  readonly now?: () => number;
}

/** Counters since the index was made (gauges marked). */
export interface KvBlockIndexStats {
  /** `match` calls. */
  readonly lookups: number;
  /** Keys asked for across lookups. */
  readonly lookupBlocks: number;
  /** Blocks matched: per lookup, the best candidate's run of consecutive blocks. */
  readonly hitBlocks: number;
  /** Gauge: engine entries held (a block on GPU and CPU counts twice). */
  readonly entries: number;
  /** Gauge: speculative blocks not yet expired or confirmed (lazily expired). */
  readonly speculative: number;
  /** Gauge: endpoints with state. */
  readonly endpoints: number;
  /** Engine entries dropped to keep the memory bounds. */
  readonly evicted: number;
  /** Events (or batches) skipped, by reason. */
  readonly problems: ReadonlyMap<KvEventProblem, number>;
}

interface EndpointBlocks {
  /** Engine entry → block key; insertion order is age (the oldest is evicted first). */
  readonly engine: FifoMap<number>;
  /** Block key → GPU refs + CPU refs × REF_CPU. */
  readonly held: Map<number, number>;
  /** Block key → expiry (ms); insertion order ≈ expiry order. */
  readonly speculative: FifoMap<number>;
  /** Sub-blocks per engine block at the last BlockStored (what BlockRemoved must remove). */
  ratio: number;
}

export class KvBlockIndex {
  readonly #endpoints = new Map<string, EndpointBlocks>();
  readonly #maxPerEndpoint: number;
  readonly #maxBlocks: number;
  readonly #ttlMs: number;
  readonly #maxSpeculative: number;
  readonly #now: () => number;
  #entries = 0;
  #lookups = 0;
  #lookupBlocks = 0;
  #hitBlocks = 0;
  #evicted = 0;
  readonly #problems = new Map<KvEventProblem, number>();

  constructor(options: KvBlockIndexOptions = {}) {
    this.#maxPerEndpoint = clampInt(options.maxBlocksPerEndpoint ?? DEFAULT_MAX_BLOCKS_PER_ENDPOINT, 1, REF_CPU - 1);
    this.#maxBlocks = clampInt(options.maxBlocks ?? DEFAULT_MAX_BLOCKS, 1, Number.MAX_SAFE_INTEGER);
    this.#ttlMs = Math.max(0, options.speculativeTtlMs ?? DEFAULT_SPECULATIVE_TTL_MS);
    this.#maxSpeculative = clampInt(options.maxSpeculativePerEndpoint ?? DEFAULT_MAX_SPECULATIVE_PER_ENDPOINT, 0, Number.MAX_SAFE_INTEGER);
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * Applies one decoded batch of `endpoint`'s events, in order. `blockSize` is the pool's block
   * size in tokens (what request keys use). Returns this batch's problems by reason (also added to
   * the totals): `block_size_mismatch` (an event whose block size the pool's does not divide),
   * `malformed_event` (token count ≠ blocks × block size), `orphan_block` (a parent the index does
   * not know: that event is skipped; its successors will be orphans too until the chain restarts).
   */
  apply(endpoint: string, batch: KvEventBatch, blockSize: number): ReadonlyMap<KvEventProblem, number> {
    const problems = new Map<KvEventProblem, number>();
    const st = this.#state(endpoint);
    for (const ev of batch.events) {
      switch (ev.type) {
        case 'BlockStored': {
          const problem = this.#store(st, ev, blockSize);
          if (problem !== undefined) problems.set(problem, (problems.get(problem) ?? 0) + 1);
          break;
        }
        case 'BlockRemoved': {
          const cpu = ev.medium === 'CPU' ? 1 : 0;
          for (const h of ev.blockHashes) {
            const base = engineEntry(h, cpu);
            for (let s = 0; s < st.ratio - 1; s++) this.#remove(st, subEntry(base, s));
            this.#remove(st, base);
          }
          break;
        }
        case 'AllBlocksCleared':
          this.#clear(st);
          break;
      }
    }
    for (const [p, n] of problems) this.#problems.set(p, (this.#problems.get(p) ?? 0) + n);
    return problems;
  }

  /** Forgets everything about `endpoint` (it left, or its event stream can no longer be trusted). */
  dropEndpoint(endpoint: string): void {
    const st = this.#endpoints.get(endpoint);
    if (st === undefined) return;
    this.#entries -= st.engine.size;
    this.#endpoints.delete(endpoint);
  }

  /**
   * For each `endpoints[i]` (`Endpoint.key`), writes into `out[i]` the weighted length of its
   * longest run of `keys` from the start that it holds: each block counts TIER_WEIGHTS of the best
   * medium holding it (a speculative block counts as GPU). Unknown endpoints score 0. `out` must be
   * at least `endpoints.length` long. `nowMs` (for speculative expiry) defaults to the index clock.
   * Cost O(endpoints + Σ matched blocks).
   */
  match(keys: Float64Array, endpoints: readonly string[], out: Float64Array, nowMs: number = this.#now()): void {
    this.#lookups++;
    this.#lookupBlocks += keys.length;
    let best = 0;
    for (let i = 0; i < endpoints.length; i++) {
      const st = this.#endpoints.get(endpoints[i]!);
      if (st === undefined) {
        out[i] = 0;
        continue;
      }
      const spec = st.speculative;
      if (spec.size > 0) this.#expire(st, nowMs);
      let score = 0;
      let j = 0;
      for (; j < keys.length; j++) {
        const k = keys[j]!;
        const refs = st.held.get(k);
        if (refs !== undefined) {
          score += refs % REF_CPU > 0 ? TIER_WEIGHTS.GPU : TIER_WEIGHTS.CPU;
          continue;
        }
        if (spec.size > 0) {
          const expiry = spec.get(k);
          if (expiry !== undefined && expiry > nowMs) {
            score += TIER_WEIGHTS.GPU;
            continue;
          }
        }
        break;
      }
      if (j > best) best = j;
      out[i] = score;
    }
    this.#hitBlocks += best;
  }

  /**
   * Marks `keys` as held by `endpoint` (on GPU) until `nowMs + speculativeTtlMs`, or until their
   * real `BlockStored` arrives: the gateway just routed a request with these blocks there, and the
   * engine's events lag its prefill. Bounded by `maxSpeculativePerEndpoint` (oldest dropped).
   */
  speculate(endpoint: string, keys: Float64Array, nowMs: number = this.#now()): void {
    if (this.#maxSpeculative === 0 || this.#ttlMs === 0) return;
    const st = this.#state(endpoint);
    const spec = st.speculative;
    if (spec.size > 0) this.#expire(st, nowMs);
    const expiry = nowMs + this.#ttlMs;
    for (let j = 0; j < keys.length; j++) {
      const k = keys[j]!;
      if (st.held.has(k)) continue;
      spec.set(k, expiry); // moved to the end: insertion order stays expiry order
    }
    while (spec.size > this.#maxSpeculative) spec.shift();
  }

  /** Whether the index has any state for `endpoint`. */
  has(endpoint: string): boolean {
    return this.#endpoints.has(endpoint);
  }

  /** Engine entries held for `endpoint` (0 when unknown). */
  entriesOf(endpoint: string): number {
    return this.#endpoints.get(endpoint)?.engine.size ?? 0;
  }

  stats(): KvBlockIndexStats {
    let speculative = 0;
    for (const st of this.#endpoints.values()) speculative += st.speculative.size;
    return {
      lookups: this.#lookups,
      lookupBlocks: this.#lookupBlocks,
      hitBlocks: this.#hitBlocks,
      entries: this.#entries,
      speculative,
      endpoints: this.#endpoints.size,
      evicted: this.#evicted,
      problems: new Map(this.#problems),
    };
  }

  #state(endpoint: string): EndpointBlocks {
    let st = this.#endpoints.get(endpoint);
    if (st === undefined) {
      st = { engine: new FifoMap(), held: new Map(), speculative: new FifoMap(), ratio: 1 };
      this.#endpoints.set(endpoint, st);
    }
    return st;
  }

  #store(st: EndpointBlocks, ev: BlockStoredEvent, blockSize: number): KvEventProblem | undefined {
    const eventBlockSize = ev.blockSize;
    if (!Number.isInteger(eventBlockSize) || eventBlockSize <= 0 || eventBlockSize % blockSize !== 0) return 'block_size_mismatch';
    const n = ev.blockHashes.length;
    if (ev.tokenIds.length !== n * eventBlockSize) return 'malformed_event';
    let parent = ROOT_BLOCK_KEY;
    if (ev.parentBlockHash !== null) {
      const p = engineEntry(ev.parentBlockHash, 0);
      const known = st.engine.get(p) ?? st.engine.get(p + 1);
      if (known === undefined) return 'orphan_block';
      parent = known;
    }
    const ratio = eventBlockSize / blockSize;
    st.ratio = ratio;
    const keys = blockKeys(ev.tokenIds, blockSize, ev.loraName, { parent, extraDigest: ev.extraKeysDigest });
    const cpu = ev.medium === 'CPU' ? 1 : 0;
    for (let j = 0; j < n; j++) {
      const base = engineEntry(ev.blockHashes[j]!, cpu);
      for (let s = 0; s < ratio - 1; s++) this.#put(st, subEntry(base, s), keys[j * ratio + s]!, cpu);
      this.#put(st, base, keys[j * ratio + ratio - 1]!, cpu);
    }
    return undefined;
  }

  #put(st: EndpointBlocks, entry: number, key: number, cpu: number): void {
    const old = st.engine.get(entry);
    if (old === undefined) this.#entries++;
    else if (old !== key) this.#unref(st, old, cpu);
    st.engine.set(entry, key); // a re-stored block moves to the end: it is young again
    if (old !== key) st.held.set(key, (st.held.get(key) ?? 0) + (cpu === 1 ? REF_CPU : 1));
    if (st.speculative.size > 0) st.speculative.delete(key);
    while (st.engine.size > this.#maxPerEndpoint) this.#evictOldest(st);
    if (this.#entries > this.#maxBlocks) this.#evictGlobal(st);
  }

  #remove(st: EndpointBlocks, entry: number): void {
    const key = st.engine.get(entry);
    if (key === undefined) return; // stored before we listened, or already evicted
    st.engine.delete(entry);
    this.#entries--;
    this.#unref(st, key, entry % 2);
  }

  #unref(st: EndpointBlocks, key: number, cpu: number): void {
    const refs = (st.held.get(key) ?? 0) - (cpu === 1 ? REF_CPU : 1);
    if (refs > 0) st.held.set(key, refs);
    else st.held.delete(key);
  }

  #evictOldest(st: EndpointBlocks): void {
    const oldest = st.engine.oldest();
    if (oldest === undefined) return;
    this.#remove(st, oldest[0]);
    this.#evicted++;
  }

  /**
   * Over the global bound: trims the endpoint just written if it holds at least its fair share,
   * else the largest endpoint, by a 1/64 chunk (so the O(endpoints) scan is amortised).
   */
  #evictGlobal(writing: EndpointBlocks): void {
    const fair = this.#maxBlocks / this.#endpoints.size;
    let victim = writing;
    let chunk = 1;
    if (writing.engine.size < fair) {
      for (const st of this.#endpoints.values()) if (st.engine.size > victim.engine.size) victim = st;
      chunk = Math.max(1, victim.engine.size >> 6);
    }
    for (let i = 0; i < chunk && victim.engine.size > 0; i++) this.#evictOldest(victim);
  }

  #expire(st: EndpointBlocks, nowMs: number): void {
    for (let e = st.speculative.oldest(); e !== undefined && e[1] <= nowMs; e = st.speculative.oldest()) st.speculative.delete(e[0]);
  }

  #clear(st: EndpointBlocks): void {
    this.#entries -= st.engine.size;
    st.engine.clear();
    st.held.clear();
    st.speculative.clear();
  }
}

/** The engine hash folded to 52 bits (all 64 count), times 2, plus 1 on CPU. */
function engineEntry(h: EngineBlockHash, cpu: number): number {
  return Number(BigInt.asUintN(52, h ^ (h >> 52n))) * 2 + cpu;
}

/** Entry of sub-block `s` (0-based, not the last) of the engine block whose entry is `base`; same medium bit. */
function subEntry(base: number, s: number): number {
  const lo = Math.imul((base >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(s + 1, 0xc2b2ae35);
  const hi = Math.imul((Math.floor(base / TWO_32) >>> 0) ^ lo, 0x27d4eb2f) ^ (lo >>> 15);
  return ((hi >>> 12) * TWO_32 + (lo >>> 0)) * 2 + (base % 2);
}

function clampInt(v: number, lo: number, hi: number): number {
  return Number.isFinite(v) ? Math.min(hi, Math.max(lo, Math.floor(v))) : hi;
}
