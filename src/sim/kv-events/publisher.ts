/**
 * The simulator's KV-event publisher, after vLLM's ZmqEventPublisher
 * (vllm-project/vllm vllm/distributed/kv_events.py):
 *
 * - a ZeroMQ PUB socket sends each batch as three frames: topic (UTF-8), seq (8-byte big-endian,
 *   0, 1, 2, … per server start) and the msgpack EventBatch (src/kvevents/wire.ts);
 * - the last `bufferSteps` batches stay in a ring buffer, served on a ROUTER replay socket: a
 *   request `[identity, "", start_seq]` gets `[identity, "", seq, payload]` for every buffered
 *   batch with seq ≥ start_seq, then `[identity, "", −1, ""]` (vLLM `_service_replay`);
 * - vLLM publishes one batch per engine step. The engine emits a step's events synchronously, so
 *   events are gathered until the current task ends (a microtask) and go out as one batch;
 *   consecutive BlockStored of one sequence merge into one event, as vLLM sends a request's new
 *   blocks of a step together;
 * - the first batch of every start is an AllBlocksCleared: whatever a subscriber knew of an
 *   earlier process is gone (a restarted vLLM has an empty cache and starts seq at 0 again).
 */
import { Publisher, Router } from 'zeromq';
import type { EngineBlockHash, KvEvent, KvEventBatch } from '../../kvevents/events.js';
import { decodeSeq, encodeEventBatch, encodeSeq, type EncodeOptions } from '../../kvevents/wire.js';
import type { KvEvent as EngineKvEvent } from '../engine/index.js';
import { DEFAULT_BUFFER_STEPS, DEFAULT_HWM, resolveEndpoint } from './config.js';

/** What the publisher needs, resolved for one server. */
export interface KvPublisherOptions {
  /** PUB endpoint as configured (`*` host = `host`; see config.ts). */
  readonly endpoint: string;
  readonly replayEndpoint: string | null;
  readonly topic: string;
  /** The server's host (for `*` endpoints). */
  readonly host: string;
  readonly encoding: EncodeOptions['encoding'];
  readonly hashes: EncodeOptions['hashes'];
  readonly bufferSteps?: number;
  readonly hwm?: number;
  readonly dataParallelRank: number;
  /** Modelled ms → Unix epoch ms (batch timestamps). */
  readonly toEpochMs: (modelledMs: number) => number;
}

/** Where a running publisher is: the endpoints actually bound (a `*` port resolved) and its topic. */
export interface KvEventsInfo {
  /** The PUB endpoint (bound: subscribers connect here). */
  readonly endpoint: string;
  readonly replayEndpoint: string | null;
  readonly topic: string;
  readonly dataParallelRank: number;
}

/** One server's publisher; `start` binds, `add` takes engine events, `close` ends it. */
export class KvEventPublisher {
  readonly #options: KvPublisherOptions;
  readonly #pub: Publisher;
  readonly #router: Router | undefined;
  readonly #encode: EncodeOptions;
  readonly #topic: Buffer;
  /** Replay ring: `#ring[(#first + i) % capacity]` holds batch seq `#firstSeq + i`. */
  readonly #ring: Array<Buffer | undefined>;
  #ringStart = 0;
  #ringSize = 0;
  #firstSeq = 0n;
  #nextSeq = 0n;
  #pending: MutableEvent[] = [];
  #pendingTs = 0;
  #flushQueued = false;
  #pubChain: Promise<void> = Promise.resolve();
  #replayLoop: Promise<void> | undefined;
  #closed = false;
  #info: KvEventsInfo | undefined;

  constructor(options: KvPublisherOptions) {
    this.#options = options;
    const capacity = options.bufferSteps ?? DEFAULT_BUFFER_STEPS;
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`kv events bufferSteps must be an integer >= 1 (got ${capacity})`);
    this.#ring = new Array<Buffer | undefined>(capacity);
    this.#encode = { encoding: options.encoding, hashes: options.hashes };
    this.#topic = Buffer.from(options.topic, 'utf8');
    this.#pub = new Publisher({ linger: 0, sendHighWaterMark: options.hwm ?? DEFAULT_HWM });
    // A replay answers up to the whole buffer at once: a ROUTER drops what is past its high-water mark.
    this.#router = options.replayEndpoint === null ? undefined : new Router({ linger: 0, sendHighWaterMark: capacity + 16 });
  }

  /**
   * Binds (or connects) the sockets and publishes the start's AllBlocksCleared.
   * @throws when an endpoint is malformed or cannot be bound (the caller closes the publisher).
   */
  async start(nowMs: number): Promise<KvEventsInfo> {
    const o = this.#options;
    const rank = o.dataParallelRank;
    const pub = resolveEndpoint(o.endpoint, o.host, rank);
    if (pub.bind) await this.#pub.bind(pub.endpoint);
    else this.#pub.connect(pub.endpoint);
    let replay: string | null = null;
    if (this.#router !== undefined && o.replayEndpoint !== null) {
      const r = resolveEndpoint(o.replayEndpoint, o.host, rank, true);
      await this.#router.bind(r.endpoint);
      replay = this.#router.lastEndpoint ?? r.endpoint;
      this.#replayLoop = this.#serveReplay(this.#router);
    }
    this.#info = {
      endpoint: (pub.bind ? this.#pub.lastEndpoint : null) ?? pub.endpoint,
      replayEndpoint: replay,
      topic: o.topic,
      dataParallelRank: rank,
    };
    this.#push({ type: 'AllBlocksCleared' }, nowMs);
    return this.#info;
  }

  get info(): KvEventsInfo | undefined {
    return this.#info;
  }

  /** Batches published so far (the next seq). */
  get published(): bigint {
    return this.#nextSeq;
  }

  /** Takes one engine event into the current batch (sent when the current task ends). */
  add(event: EngineKvEvent): void {
    if (this.#closed || this.#info === undefined) return;
    switch (event.type) {
      case 'AllBlocksCleared':
        return this.#push({ type: 'AllBlocksCleared' }, event.timeMs);
      case 'BlockRemoved':
        return this.#push({ type: 'BlockRemoved', blockHashes: [BigInt(event.blockHashes[0])], medium: 'GPU' }, event.timeMs);
      case 'BlockStored': {
        const hash = BigInt(event.blockHashes[0]);
        const parent = event.parentBlockHash === null ? null : BigInt(event.parentBlockHash);
        const last = this.#pending[this.#pending.length - 1];
        if (
          last !== undefined &&
          last.type === 'BlockStored' &&
          parent !== null &&
          event.saltKey === null &&
          last.extraKeysDigest === null &&
          last.loraName === event.loraName &&
          last.blockSize === event.blockSize &&
          last.blockHashes[last.blockHashes.length - 1] === parent
        ) {
          last.blockHashes.push(hash);
          for (const t of event.tokenIds) last.tokenIds.push(t);
          return;
        }
        return this.#push(
          {
            type: 'BlockStored',
            blockHashes: [hash],
            parentBlockHash: parent,
            tokenIds: [...event.tokenIds],
            blockSize: event.blockSize,
            loraName: event.loraName,
            medium: 'GPU',
            extraKeysDigest: event.saltKey,
          },
          event.timeMs,
        );
      }
    }
  }

  /** Closes both sockets (pending events are dropped, as vLLM's shutdown drops its queue after 1 s). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = [];
    await this.#pubChain;
    this.#pub.close();
    this.#router?.close();
    await this.#replayLoop;
  }

  #push(event: MutableEvent, timeMs: number): void {
    if (this.#pending.length === 0) this.#pendingTs = timeMs;
    this.#pending.push(event);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushQueued = false;
    if (this.#closed || this.#pending.length === 0) return;
    const batch: KvEventBatch = {
      ts: this.#options.toEpochMs(this.#pendingTs) / 1000,
      events: this.#pending,
      dataParallelRank: this.#options.dataParallelRank,
    };
    this.#pending = [];
    const payload = Buffer.from(encodeEventBatch(batch, this.#encode));
    const seq = this.#nextSeq++;
    this.#remember(payload);
    const frames = [this.#topic, encodeSeq(seq), payload];
    // One send at a time per socket (zeromq.js); a PUB never waits (past its HWM it drops, as vLLM's does).
    this.#pubChain = this.#pubChain.then(
      () => this.#pub.send(frames),
    ).catch(() => undefined);
  }

  #remember(payload: Buffer): void {
    const capacity = this.#ring.length;
    if (this.#ringSize < capacity) {
      this.#ring[(this.#ringStart + this.#ringSize) % capacity] = payload;
      this.#ringSize++;
    } else {
      this.#ring[this.#ringStart] = payload;
      this.#ringStart = (this.#ringStart + 1) % capacity;
      this.#firstSeq++;
    }
  }

  /** Serves replay requests until the socket closes; a malformed request is ignored (vLLM logs it). */
  async #serveReplay(router: Router): Promise<void> {
    try {
      for await (const frames of router) {
        if (frames.length !== 3) continue;
        const [identity, , startFrame] = frames as [Buffer, Buffer, Buffer];
        const start = startSeqOf(startFrame);
        if (start === undefined) continue;
        // Snapshot first: batches published while this answer goes out are not part of it.
        const size = this.#ringSize;
        const first = this.#firstSeq;
        const begin = start <= first ? 0n : start - first;
        const out: Array<[bigint, Buffer]> = [];
        for (let i = begin; i < BigInt(size); i++) {
          const payload = this.#ring[(this.#ringStart + Number(i)) % this.#ring.length];
          if (payload !== undefined) out.push([first + i, payload]);
        }
        for (const [seq, payload] of out) await router.send([identity, EMPTY, encodeSeq(seq), payload]);
        await router.send([identity, EMPTY, END_SEQ, EMPTY]);
      }
    } catch {
      // Closed while waiting or sending: the loop ends with the socket.
    }
  }
}

const EMPTY = Buffer.alloc(0);
const END_SEQ = encodeSeq(-1n);

/** A replay request's start seq: vLLM reads it as an unsigned big-endian int (`int.from_bytes(…, "big")`). */
function startSeqOf(frame: Buffer): bigint | undefined {
  if (frame.length === 8) return BigInt.asUintN(64, decodeSeq(frame) ?? 0n);
  if (frame.length === 0 || frame.length > 8) return undefined;
  let v = 0n;
  for (const b of frame) v = (v << 8n) | BigInt(b);
  return v;
}

/** A wire event under construction (merging appends to its arrays before it is encoded). */
type MutableEvent =
  | {
      type: 'BlockStored';
      blockHashes: EngineBlockHash[];
      parentBlockHash: EngineBlockHash | null;
      tokenIds: number[];
      blockSize: number;
      loraName: string | null;
      medium: 'GPU';
      extraKeysDigest: number | null;
    }
  | { type: 'BlockRemoved'; blockHashes: EngineBlockHash[]; medium: 'GPU' }
  | { type: 'AllBlocksCleared' };

// Compile-time check: a MutableEvent is a wire KvEvent.
const _isWireEvent = (e: MutableEvent): KvEvent => e;
void _isWireEvent;
