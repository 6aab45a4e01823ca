import type { Logger } from 'pino';
import type { PrecisePrefixConfig } from '../config/prefix-mode.js';
import type { Endpoint } from '../core/endpoint.js';
import { KvBlockIndex } from '../kvevents/block-index.js';
import { kvEventTargets, KvEventSubscriptions, type KvEventTarget } from '../kvevents/subscriptions.js';
import type { PreciseFallbackReason, PreciseServices } from '../scheduling/precise-services.js';
import { loadTokenizer } from '../tokens/index.js';
import type { PoolRuntime, Runtime } from './runtime.js';
import { TokenizerCatalog, type ClosableTokenizer, type TokenizerState } from './tokenizer-catalog.js';

/**
 * The gateway's tokenizer bounds. Tokenising costs about 1 µs per character, so 1 M characters
 * waiting is about the precise scorer's 1 s deadline: a request that would wait longer is refused
 * at once (judged in estimate mode, `tokenize_failed`) instead of waiting the whole deadline
 * behind a few huge prompts (measured: four 1 M-character prompts made the next requests wait
 * 1 s each). 512 K characters (~128 K tokens) is the longest prompt matched.
 */
const GATEWAY_TOKENIZER_OPTIONS = { maxJobChars: 512 * 1024, maxQueuedChars: 1_000_000 } as const;

/** A pool's prefix-cache mode as `/debug/endpoints` and `infergate_prefix_cache_mode` show it. */
export interface PoolPrefixMode {
  readonly mode: 'estimate' | 'precise';
  /** Precise mode was asked for and cannot run: why (the pool runs in estimate mode). */
  readonly preciseUnavailable?: string;
  /** Precise pools: each configured model's tokenizer and its state (a failed one makes its requests fall back). */
  readonly tokenizers?: ReadonlyArray<{ readonly model: string; readonly path: string } & TokenizerState>;
  readonly blockSize?: number;
}

export interface PrecisePrefixOptions {
  readonly logger: Logger;
  /** Loads a tokenizer directory; default src/tokens `loadTokenizer`. Tests may pass their own. */
  readonly loadTokenizer?: (dir: string) => Promise<ClosableTokenizer>;
}

/**
 * Precise prefix-cache routing's gateway-wide state (docs/routing.md "Precise mode"): the index
 * of the engines' KV blocks, one KV-event subscriber per endpoint of every precise pool (added
 * and removed with the pods, src/kvevents/subscriptions.ts), and the tokenizers the precise pools
 * name (loaded once per directory). Shared by every pool and, through `services`, by every
 * precise scorer. Every gateway replica subscribes to the same events, so all of them see the
 * same caches with no shared store.
 */
export class PrecisePrefix {
  readonly index = new KvBlockIndex();
  readonly tokenizers: TokenizerCatalog;
  readonly services: PreciseServices;
  /** Requests of precise pools judged in estimate mode, by reason. */
  readonly fallbacks = new Map<PreciseFallbackReason, number>();
  /** Picks in precise mode: blocks the chosen endpoint held, and the prompts' blocks. */
  readonly picks = { requests: 0, matchedBlocks: 0, promptBlocks: 0 };
  readonly #subscriptions: KvEventSubscriptions;
  /** Endpoint key → the subscription it has now (a fingerprint of its target), for precise pools' members. */
  readonly #subscribed = new Map<string, string>();
  readonly #logger: Logger;

  constructor(options: PrecisePrefixOptions) {
    this.#logger = options.logger;
    this.tokenizers = new TokenizerCatalog(options.loadTokenizer ?? ((dir) => loadTokenizer(dir, GATEWAY_TOKENIZER_OPTIONS)), options.logger);
    this.#subscriptions = new KvEventSubscriptions(this.index, {
      // At most once per kind per endpoint subscription (subscriptions.ts): a log line, never a flood.
      onWarning: (endpoint, message) => this.#logger.warn({ endpoint, warning: message.slice(0, 300) }, 'kv events: precise prefix routing for this endpoint is impaired'),
    });
    this.services = {
      blocks: this.index,
      tokenizers: this.tokenizers,
      fellBack: (reason) => this.fallbacks.set(reason, (this.fallbacks.get(reason) ?? 0) + 1),
      picked: (matched, total) => {
        this.picks.requests++;
        this.picks.matchedBlocks += matched;
        this.picks.promptBlocks += total;
      },
    };
  }

  /**
   * Makes the subscriptions and tokenizers match `runtime`: every member endpoint of a precise
   * pool subscribed with its pool's patterns, nothing else; the tokenizers the precise pools name
   * loaded. After a configuration change or a full discovery sync: O(precise pools' endpoints).
   */
  sync(runtime: Runtime | undefined): void {
    const paths = new Set<string>();
    const wanted = new Map<string, { target: KvEventTarget; fingerprint: string }>();
    for (const pool of runtime?.pools.values() ?? []) {
      const precise = pool.config.precise;
      if (precise === undefined) continue;
      for (const t of precise.tokenizers) paths.add(t.path);
      for (const e of pool.members.endpoints) {
        const target = this.#target(precise, e);
        if (target !== undefined) wanted.set(e.key, target);
      }
    }
    this.tokenizers.sync(paths);
    for (const key of [...this.#subscribed.keys()]) if (!wanted.has(key)) this.#unsubscribe(key);
    for (const [key, { target, fingerprint }] of wanted) this.#subscribe(key, target, fingerprint);
  }

  /** Pods came and went in `pools`: subscribe the added members of precise pools, unsubscribe the removed endpoints. O(the change). */
  moved(pools: readonly PoolRuntime[], added: ReadonlySet<Endpoint>, removed: ReadonlySet<Endpoint>): void {
    for (const e of removed) this.#unsubscribe(e.key);
    for (const pool of pools) {
      const precise = pool.config.precise;
      if (precise === undefined) continue;
      for (const e of added) {
        if (!pool.members.endpoints.includes(e)) continue;
        const target = this.#target(precise, e);
        if (target !== undefined) this.#subscribe(e.key, target.target, target.fingerprint);
      }
    }
  }

  /** The pool's mode and, when precise, its tokenizers' states. */
  modeOf(pool: PoolRuntime): PoolPrefixMode {
    const precise = pool.config.precise;
    if (precise === undefined) return pool.config.preciseUnavailable === undefined ? { mode: 'estimate' } : { mode: 'estimate', preciseUnavailable: pool.config.preciseUnavailable };
    return {
      mode: 'precise',
      blockSize: precise.blockSize,
      tokenizers: precise.tokenizers.map((t) => ({ model: t.model, path: t.path, ...(this.tokenizers.stateOf(t.path) ?? { state: 'loading' as const }) })),
    };
  }

  /** The endpoint's subscription (whether its events socket is connected now) and its blocks in the index, for `/debug/endpoints`. */
  endpointState(endpoint: Endpoint): { readonly subscribed: boolean; readonly connected: boolean; readonly blocks: number } | undefined {
    if (!this.#subscribed.has(endpoint.key)) return undefined;
    return { subscribed: true, connected: this.#subscriptions.connected(endpoint.key) === true, blocks: this.index.entriesOf(endpoint.key) };
  }

  stats(): ReturnType<KvEventSubscriptions['stats']> {
    return this.#subscriptions.stats();
  }

  async close(): Promise<void> {
    this.#subscribed.clear();
    await Promise.all([this.#subscriptions.close(), this.tokenizers.close()]);
  }

  #target(precise: PrecisePrefixConfig, e: Endpoint): { target: KvEventTarget; fingerprint: string } | undefined {
    try {
      const t = kvEventTargets({ endpoint: precise.events, ...(precise.replay === undefined ? {} : { replayEndpoint: precise.replay }), topic: precise.topic }, e);
      return { target: { ...t, blockSize: precise.blockSize }, fingerprint: `${t.events}|${t.replay ?? ''}|${precise.topic}|${precise.blockSize}` };
    } catch (err) {
      this.#logger.warn({ endpoint: e.name, address: e.key, error: (err as Error).message }, 'kv events: no subscription for this endpoint');
      return undefined;
    }
  }

  #subscribe(key: string, target: KvEventTarget, fingerprint: string): void {
    if (this.#subscribed.get(key) === fingerprint) return;
    // A changed target (new pattern or block size) starts clean: the old stream's blocks were keyed for the old settings.
    if (this.#subscribed.has(key)) this.#unsubscribe(key);
    this.#subscribed.set(key, fingerprint);
    this.#subscriptions.upsert(key, target);
  }

  #unsubscribe(key: string): void {
    if (!this.#subscribed.delete(key)) return;
    this.#subscriptions.remove(key);
    this.index.dropEndpoint(key);
  }
}
