import type { KvBlockIndex } from './block-index.js';
import type { KvEvent, KvEventProblem } from './events.js';
import { KvEventSubscriber, type KvEventSubscriberOptions, type KvResetReason } from './subscriber.js';

/**
 * One KV-event subscriber per endpoint, added and removed as endpoint discovery reports pods
 * coming and going, all feeding one `KvBlockIndex`. An endpoint that leaves, or whose stream
 * resets (subscriber.ts), has its entries dropped from the index.
 */

/** Where one endpoint's events come from, and the pool's block size (tokens). */
export interface KvEventTarget {
  /** Events socket, e.g. `tcp://10.0.0.7:5557`. */
  readonly events: string;
  /** Replay ROUTER socket, e.g. `tcp://10.0.0.7:5558`; none: gaps reset the endpoint. */
  readonly replay?: string;
  /** Topic filter (see kvEventTargets); none: any topic. */
  readonly topic?: (topic: string) => boolean;
  /** The pool's block size in tokens (what request keys use). */
  readonly blockSize: number;
}

/** Tuning passed to every subscriber (limits, timeouts); defaults in SUBSCRIBER_DEFAULTS. */
export type KvSubscriberTuning = Omit<KvEventSubscriberOptions, 'events' | 'replay' | 'topic' | 'onBatch' | 'onReset' | 'onProblem' | 'onWarning' | 'onConnection'>;

export interface KvEventSubscriptionsOptions {
  /** An operator-facing line, at most once per kind per endpoint subscription. */
  readonly onWarning?: (endpointKey: string, message: string) => void;
  readonly tuning?: KvSubscriberTuning;
}

/** Counters since creation (gauges marked). */
export interface KvEventSubscriptionStats {
  /** Events handed to the index, by type (those the index skipped are also in `problems`). */
  readonly events: Readonly<Record<KvEvent['type'], number>>;
  /** Batches handed to the index. */
  readonly batches: number;
  /** Messages, batches or events skipped, by reason (decoding and index together). */
  readonly problems: ReadonlyMap<KvEventProblem, number>;
  /** Endpoint entries dropped because the stream could not be trusted, by reason. */
  readonly resets: ReadonlyMap<KvResetReason, number>;
  /** Gauge: subscribers (endpoints subscribed). */
  readonly subscribers: number;
  /** Gauge: subscribers whose socket is connected now. */
  readonly connected: number;
}

interface Entry {
  target: KvEventTarget;
  subscriber: KvEventSubscriber;
  removed: boolean;
  /** The block-size mismatch was warned about (once per subscription). */
  warnedBlockSize?: boolean;
}

export class KvEventSubscriptions {
  readonly #index: KvBlockIndex;
  readonly #options: KvEventSubscriptionsOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #closing = new Set<Promise<void>>();
  readonly #events: Record<KvEvent['type'], number> = { BlockStored: 0, BlockRemoved: 0, AllBlocksCleared: 0 };
  #batches = 0;
  readonly #problems = new Map<KvEventProblem, number>();
  readonly #resets = new Map<KvResetReason, number>();

  constructor(index: KvBlockIndex, options: KvEventSubscriptionsOptions = {}) {
    this.#index = index;
    this.#options = options;
  }

  /**
   * Subscribes `endpointKey` (`Endpoint.key`) to `target`, or updates its subscription: a new
   * events or replay address reconnects from scratch (entries dropped); a new block size drops the
   * entries (their keys no longer match requests) and keeps the socket; a new topic filter applies
   * to the next message.
   */
  upsert(endpointKey: string, target: KvEventTarget): void {
    const old = this.#entries.get(endpointKey);
    if (old !== undefined) {
      if (old.target.events === target.events && old.target.replay === target.replay) {
        if (old.target.blockSize !== target.blockSize) this.#index.dropEndpoint(endpointKey);
        old.target = target;
        return;
      }
      this.remove(endpointKey);
    }
    const entry: Entry = { target, subscriber: undefined as unknown as KvEventSubscriber, removed: false };
    const count = <K>(m: Map<K, number>, k: K, n: number): void => {
      m.set(k, (m.get(k) ?? 0) + n);
    };
    entry.subscriber = new KvEventSubscriber({
      ...this.#options.tuning,
      events: target.events,
      ...(target.replay !== undefined ? { replay: target.replay } : {}),
      topic: (topic) => entry.target.topic?.(topic) ?? true,
      onBatch: (batch) => {
        if (entry.removed) return;
        this.#batches++;
        for (const ev of batch.events) this.#events[ev.type]++;
        for (const [p, n] of this.#index.apply(endpointKey, batch, entry.target.blockSize)) {
          count(this.#problems, p, n);
          if (p === 'block_size_mismatch' && entry.warnedBlockSize !== true) {
            entry.warnedBlockSize = true;
            // Otherwise silent: the endpoint would simply never match a request.
            this.#options.onWarning?.(endpointKey, `kv events: stored blocks whose size the pool's block size (${entry.target.blockSize} tokens) does not divide are skipped; set prefix.blockSize to a divisor of the engine's block size`);
          }
        }
      },
      onReset: (reason) => {
        if (entry.removed) return;
        count(this.#resets, reason, 1);
        this.#index.dropEndpoint(endpointKey);
      },
      onProblem: (p, n) => {
        if (!entry.removed) count(this.#problems, p, n);
      },
      onWarning: (message) => {
        if (!entry.removed) this.#options.onWarning?.(endpointKey, message);
      },
    });
    this.#entries.set(endpointKey, entry);
  }

  /** Unsubscribes `endpointKey` and drops its entries from the index. */
  remove(endpointKey: string): void {
    const entry = this.#entries.get(endpointKey);
    if (entry === undefined) return;
    entry.removed = true;
    this.#entries.delete(endpointKey);
    this.#index.dropEndpoint(endpointKey);
    const closing = entry.subscriber.close();
    this.#closing.add(closing);
    void closing.finally(() => this.#closing.delete(closing));
  }

  /** Whether `endpointKey`'s socket is connected now; undefined when it is not subscribed. */
  connected(endpointKey: string): boolean | undefined {
    return this.#entries.get(endpointKey)?.subscriber.connected;
  }

  /** Endpoint keys subscribed now. */
  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }

  /** Closes every subscriber (their sockets included); resolves when all have stopped. */
  async close(): Promise<void> {
    for (const key of [...this.#entries.keys()]) this.remove(key);
    await Promise.all([...this.#closing]);
  }

  stats(): KvEventSubscriptionStats {
    let connected = 0;
    for (const e of this.#entries.values()) if (e.subscriber.connected) connected++;
    return {
      events: { ...this.#events },
      batches: this.#batches,
      problems: new Map(this.#problems),
      resets: new Map(this.#resets),
      subscribers: this.#entries.size,
      connected,
    };
  }
}

/** The pool's KV-event address patterns (`prefixCache.kvEvents`). */
export interface KvEventPattern {
  /** Events socket, e.g. `tcp://{ip}:5557` (vLLM's default port). */
  readonly endpoint: string;
  /** Replay socket, e.g. `tcp://{ip}:5558`; none: no replay. */
  readonly replayEndpoint?: string;
  /** Topic, e.g. `kv@{ip}:{port}@{model}`; none or empty: any topic. */
  readonly topic?: string;
}

const RANK = /-rank-(\d{1,4})$/;

/**
 * One endpoint's addresses and topic filter from the pool's patterns: `{ip}` is the endpoint's
 * address (in brackets inside an IPv6 URL), `{port}` its target port, `{model}` (topics only) any
 * non-empty model name. Data-parallel rank r (an endpoint named `<pod>-rank-<r>`, as endpoint
 * discovery names each target port) publishes on the events port + r and replays on the replay
 * port + r (vLLM). Throws a RangeError when a rank's port would pass 65535.
 */
export function kvEventTargets(
  pattern: KvEventPattern,
  endpoint: { readonly address: string; readonly port: number; readonly name: string },
): { events: string; replay?: string; topic?: (topic: string) => boolean } {
  const rank = Number(RANK.exec(endpoint.name)?.[1] ?? 0);
  const host = endpoint.address.includes(':') ? `[${endpoint.address}]` : endpoint.address;
  const url = (p: string): string => {
    const u = p.replaceAll('{ip}', host).replaceAll('{port}', String(endpoint.port));
    if (rank === 0) return u;
    const m = /:(\d+)$/.exec(u);
    if (m === null) return u;
    const port = Number(m[1]) + rank;
    if (port > 65535) throw new RangeError(`kv events port ${m[1]} + rank ${rank} is past 65535`);
    return `${u.slice(0, m.index)}:${port}`;
  };
  const out: { events: string; replay?: string; topic?: (topic: string) => boolean } = { events: url(pattern.endpoint) };
  if (pattern.replayEndpoint !== undefined && pattern.replayEndpoint !== '') out.replay = url(pattern.replayEndpoint);
  if (pattern.topic !== undefined && pattern.topic !== '') {
    const source = pattern.topic
      .split(/(\{ip\}|\{port\}|\{model\})/)
      .map((part) => (part === '{ip}' ? escape(endpoint.address) : part === '{port}' ? String(endpoint.port) : part === '{model}' ? '.+' : escape(part)))
      .join('');
    const re = new RegExp(`^${source}$`, 's');
    out.topic = (topic) => re.test(topic);
  }
  return out;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
