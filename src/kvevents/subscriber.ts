import { Dealer, Subscriber } from 'zeromq';
import type { KvEventBatch, KvEventProblem } from './events.js';
import { decodeEventBatch, decodeSeq, encodeSeq, WIRE_LIMITS, type WireLimits } from './wire.js';

/**
 * One endpoint's KV events: a ZeroMQ SUB socket on the engine's publisher, the sequence numbers
 * checked, and the engine's replay socket asked for whatever was missed.
 *
 * vLLM (vllm/distributed/kv_events.py) publishes three frames per batch, `topic`, `seq` (8-byte
 * big-endian, +1 per batch from 0 in each process) and the msgpack payload (wire.ts), and keeps
 * its last `buffer_steps` (10,000) batches for a ROUTER "replay" socket: a client sends
 * `["", start_seq]` (a DEALER's empty delimiter, as vLLM's examples/online_serving/
 * kv_events_subscriber.py does) and gets `["", seq, payload]` for each buffered batch with
 * `seq ≥ start_seq`, then `["", -1, ""]`.
 *
 * Sequence rules (the index must never hold blocks the engine no longer has):
 * - the first message applies as it is (the index is empty for this endpoint);
 * - `seq == last + 1` applies;
 * - a gap (`seq > last + 1`) asks the replay socket from `last` while live batches wait in a
 *   bounded buffer; the replay must return batch `last` byte-identical (proof that it is the same
 *   process and nothing before the gap was lost) and then every batch in order. Replayed batches
 *   apply, then the buffered ones. No replay socket, no answer within `replayTimeoutMs`, a replay
 *   that does not reach back, or a buffer overflow: `onReset('gap')` (the caller drops the
 *   endpoint's entries) and the index is rebuilt from what follows;
 * - `seq ≤ last` is a new engine process: `onReset('restart')`, then it applies;
 * - the socket reconnected (the publisher went away and came back): the same replay from `last`,
 *   whose failure is `onReset('reconnect')`; without a replay socket, reset at once.
 *
 * Hostile streams: ZeroMQ's `maxMessageSize` disconnects a peer sending a bigger frame, the
 * receive high-water mark bounds what waits in ZeroMQ (excess is dropped, which shows up as a gap),
 * the replay buffer and the replay itself are bounded in batches, bytes and time; a message that
 * is not three frames, a bad seq frame or an undecodable payload is counted (`malformed_batch`)
 * and skipped; a topic that does not match is counted (`topic_mismatch`) and skipped with one
 * warning per subscriber. Worst-case memory held for one endpoint: `receiveHighWaterMark ×
 * maxMessageSize` in ZeroMQ plus `maxBufferedBytes`.
 */

/** Why an endpoint's entries were dropped (a fixed set: metric labels). */
export type KvResetReason = 'gap' | 'restart' | 'reconnect';
export const KV_RESET_REASONS: readonly KvResetReason[] = ['gap', 'restart', 'reconnect'];

/**
 * Defaults, and why:
 * - `maxMessageSize` 8 MiB: ZeroMQ disconnects a peer that sends a larger frame. A batch is one
 *   engine step's events, typically KBs; 8 MiB holds a 1.6 M-token BlockStored (wire.ts counts ≤ 5
 *   bytes per token id), more than any prompt an engine stores in one step.
 * - `receiveHighWaterMark` 128 messages: over a second of an engine publishing every step (~10 ms)
 *   while the gateway is busy; beyond it ZeroMQ drops, and the gap is replayed. With the frame
 *   bound, at most 1 GiB waits in ZeroMQ for a hostile publisher, ~MBs for a real one.
 * - `replayTimeoutMs` 5,000, `maxReplayBatches` 10,000 (vLLM's `buffer_steps`: it never has more).
 * - `maxBufferedBatches` 1,024 and `maxBufferedBytes` 64 MiB: live batches held during a replay.
 */
export const SUBSCRIBER_DEFAULTS = Object.freeze({
  maxMessageSize: 8 * 1024 * 1024,
  receiveHighWaterMark: 128,
  replayTimeoutMs: 5_000,
  maxReplayBatches: 10_000,
  maxBufferedBatches: 1_024,
  maxBufferedBytes: 64 * 1024 * 1024,
});

export interface KvEventSubscriberOptions {
  /** The events socket, e.g. `tcp://10.0.0.7:5557` (connected, never bound). */
  readonly events: string;
  /** The engine's replay ROUTER socket, e.g. `tcp://10.0.0.7:5558`; none: every gap resets. */
  readonly replay?: string;
  /** Which topics are this endpoint's; others are counted `topic_mismatch`. Default: any. */
  readonly topic?: (topic: string) => boolean;
  /** A decoded batch, in sequence order. */
  readonly onBatch: (batch: KvEventBatch) => void;
  /** Drop everything known about the endpoint: the stream can no longer be trusted. */
  readonly onReset: (reason: KvResetReason) => void;
  /** Skipped messages or events, by reason (decode problems included). */
  readonly onProblem?: (problem: KvEventProblem, count: number) => void;
  /** One line for an operator, at most once per kind per subscriber (bounded text). */
  readonly onWarning?: (message: string) => void;
  /** The SUB socket connected (true) or lost its connection (false). */
  readonly onConnection?: (connected: boolean) => void;
  readonly limits?: WireLimits;
  readonly maxMessageSize?: number;
  readonly receiveHighWaterMark?: number;
  readonly replayTimeoutMs?: number;
  readonly maxReplayBatches?: number;
  readonly maxBufferedBatches?: number;
  readonly maxBufferedBytes?: number;
}

interface Pending {
  readonly seq: bigint;
  readonly topicOk: boolean;
  readonly payload: Buffer;
}

export class KvEventSubscriber {
  readonly #o: KvEventSubscriberOptions;
  readonly #sub: Subscriber;
  readonly #done: Promise<void>;
  #dealer: Dealer | undefined;
  #closed = false;
  #connected = false;
  #everConnected = false;
  /** The last sequence number applied, and its payload (what a replay must return first). */
  #last: bigint | undefined;
  #lastPayload: Buffer | undefined;
  #replaying = false;
  #buffer: Pending[] = [];
  #bufferedBytes = 0;
  #overflow = false;

  constructor(options: KvEventSubscriberOptions) {
    this.#o = options;
    this.#sub = new Subscriber({
      linger: 0,
      maxMessageSize: options.maxMessageSize ?? SUBSCRIBER_DEFAULTS.maxMessageSize,
      receiveHighWaterMark: options.receiveHighWaterMark ?? SUBSCRIBER_DEFAULTS.receiveHighWaterMark,
    });
    this.#sub.events.on('connect', () => this.#onConnect());
    this.#sub.events.on('disconnect', () => this.#onDisconnect());
    this.#sub.subscribe(); // every topic: a mismatch is counted, not silently filtered out
    this.#sub.connect(options.events);
    this.#done = this.#run();
  }

  /** Whether the SUB socket is connected to the publisher now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Closes both sockets; resolves when the receive loop has ended. Idempotent. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#buffer = [];
      this.#dealer?.close();
      this.#sub.close();
    }
    await this.#done;
  }

  async #run(): Promise<void> {
    try {
      for await (const frames of this.#sub) {
        if (this.#closed) break;
        this.#onMessage(frames);
      }
    } catch (err) {
      if (!this.#closed) this.#warn('receive', `kv events: receive failed on ${this.#o.events}: ${errorName(err)}`);
    }
  }

  #onMessage(frames: Buffer[]): void {
    const seq = frames.length === 3 ? decodeSeq(frames[1]!) : undefined;
    if (seq === undefined || seq < 0n) {
      this.#problem('malformed_batch', 1);
      return;
    }
    const topic = frames[0]!;
    const topicOk = this.#o.topic === undefined || this.#o.topic(topic.toString('utf8'));
    this.#handle({ seq, topicOk, payload: frames[2]! });
  }

  #handle(item: Pending): void {
    if (this.#replaying) {
      if (this.#overflow) return;
      const maxBatches = this.#o.maxBufferedBatches ?? SUBSCRIBER_DEFAULTS.maxBufferedBatches;
      const maxBytes = this.#o.maxBufferedBytes ?? SUBSCRIBER_DEFAULTS.maxBufferedBytes;
      if (this.#buffer.length >= maxBatches || this.#bufferedBytes + item.payload.length > maxBytes) {
        this.#overflow = true; // these batches are lost: the replay's end resets
        this.#buffer = [];
        this.#bufferedBytes = 0;
        return;
      }
      this.#buffer.push(item);
      this.#bufferedBytes += item.payload.length;
      return;
    }
    const last = this.#last;
    if (last === undefined || item.seq === last + 1n) {
      this.#deliver(item);
    } else if (item.seq <= last) {
      this.#reset('restart');
      this.#deliver(item);
    } else if (this.#o.replay !== undefined) {
      this.#startReplay('gap', item);
    } else {
      this.#reset('gap');
      this.#deliver(item);
    }
  }

  #deliver(item: Pending): void {
    this.#last = item.seq;
    this.#lastPayload = item.payload;
    if (!item.topicOk) {
      this.#problem('topic_mismatch', 1);
      this.#warn('topic', `kv events from ${this.#o.events}: a topic that does not match the configured pattern; its batches are skipped`);
      return;
    }
    const decoded = decodeEventBatch(item.payload, this.#o.limits ?? WIRE_LIMITS);
    if (!decoded.ok) {
      this.#problem('malformed_batch', 1);
      return;
    }
    for (const [p, n] of decoded.problems) this.#problem(p, n);
    this.#o.onBatch(decoded.batch);
  }

  #reset(reason: KvResetReason): void {
    this.#last = undefined;
    this.#lastPayload = undefined;
    this.#o.onReset(reason);
  }

  #startReplay(reason: 'gap' | 'reconnect', first?: Pending): void {
    this.#replaying = true;
    this.#overflow = false;
    this.#buffer = [];
    this.#bufferedBytes = 0;
    if (first !== undefined) this.#handle(first);
    void this.#replay(reason);
  }

  /** Replays from `last`; then applies the buffered live batches, or resets. Never throws. */
  async #replay(reason: 'gap' | 'reconnect'): Promise<void> {
    const from = this.#last!;
    const expected = this.#lastPayload!;
    const timeoutMs = this.#o.replayTimeoutMs ?? SUBSCRIBER_DEFAULTS.replayTimeoutMs;
    const maxBatches = this.#o.maxReplayBatches ?? SUBSCRIBER_DEFAULTS.maxReplayBatches;
    const deadline = performance.now() + timeoutMs;
    const dealer = new Dealer({
      linger: 0,
      maxMessageSize: this.#o.maxMessageSize ?? SUBSCRIBER_DEFAULTS.maxMessageSize,
      receiveHighWaterMark: this.#o.receiveHighWaterMark ?? SUBSCRIBER_DEFAULTS.receiveHighWaterMark,
      sendTimeout: timeoutMs,
    });
    this.#dealer = dealer;
    let ok = false;
    try {
      dealer.connect(this.#o.replay!);
      await dealer.send(['', encodeSeq(from)]);
      let proven = false;
      for (let n = 0; n <= maxBatches && !this.#closed; n++) {
        const left = Math.floor(deadline - performance.now());
        if (left <= 0) break;
        dealer.receiveTimeout = left;
        const frames = await dealer.receive();
        if (this.#closed) break;
        const seq = frames.length >= 2 ? decodeSeq(frames[frames.length - 2]!) : undefined;
        const payload = frames[frames.length - 1]!;
        if (seq === -1n) {
          ok = proven;
          break;
        }
        if (seq === undefined) break;
        if (!proven) {
          if (seq !== from || !payload.equals(expected)) break; // another process, or `from` is gone
          proven = true;
          continue;
        }
        if (seq !== this.#last! + 1n) break;
        this.#deliver({ seq, topicOk: true, payload });
      }
    } catch {
      // A timeout (EAGAIN), or the socket closed under us: the replay failed.
    } finally {
      dealer.close();
      if (this.#dealer === dealer) this.#dealer = undefined;
    }
    if (this.#closed) return;
    const buffered = this.#overflow ? [] : this.#buffer;
    if (!ok || this.#overflow) this.#reset(reason);
    this.#replaying = false;
    this.#buffer = [];
    this.#bufferedBytes = 0;
    for (const item of buffered) {
      // Batches the replay already applied come again live: skip them (not a restart).
      if (!this.#replaying && this.#last !== undefined && item.seq <= this.#last && ok) continue;
      this.#handle(item);
    }
  }

  #onConnect(): void {
    this.#connected = true;
    this.#o.onConnection?.(true);
    const again = this.#everConnected;
    this.#everConnected = true;
    if (!again || this.#last === undefined || this.#replaying || this.#closed) return;
    // Batches published while we were away are lost from the SUB stream, and a new process may
    // have replaced the old one: only a replay that proves continuity keeps the entries.
    if (this.#o.replay !== undefined) this.#startReplay('reconnect');
    else this.#reset('reconnect');
  }

  #onDisconnect(): void {
    if (!this.#connected) return;
    this.#connected = false;
    this.#o.onConnection?.(false);
  }

  #problem(p: KvEventProblem, n: number): void {
    this.#o.onProblem?.(p, n);
  }

  readonly #warned = new Set<string>();
  #warn(kind: string, message: string): void {
    if (this.#warned.has(kind)) return;
    this.#warned.add(kind);
    this.#o.onWarning?.(message);
  }
}

function errorName(err: unknown): string {
  return err instanceof Error ? (err as Error & { code?: string }).code ?? err.name : 'error';
}
