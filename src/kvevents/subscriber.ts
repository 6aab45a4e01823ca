import { kvDealerSocket, kvSubSocket, type KvDealerSocket, type KvSubSocket } from './zmq.js';
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
 * - first contact (the socket's first connection, else the first message) asks the replay socket
 *   from seq 0 (a catch-up: what the engine stored before this gateway subscribed, as far as its
 *   replay buffer reaches) and applies whatever comes back in order, then the live batches;
 *   without a replay socket it applies as it is (the index is empty for this endpoint, nothing can
 *   be stale);
 * - `seq == last + 1` applies;
 * - a gap (`seq > last + 1`) asks the replay socket from `last` while live batches wait in a
 *   bounded buffer; the replay must return batch `last` byte-identical (proof that it is the same
 *   process and nothing before the gap was lost) and then every batch in order. Replayed batches
 *   apply, then the buffered ones. No replay socket, no answer within `replayTimeoutMs`, a replay
 *   that does not reach back, or a buffer overflow: `onReset('gap')` (the caller drops the
 *   endpoint's entries) and the index is rebuilt from what follows;
 * - `seq ≤ last` is a new engine process: `onReset('restart')`, then its history is read from its
 *   replay buffer from the start (a catch-up);
 * - the socket reconnected (the publisher went away and came back): the same replay from `last`,
 *   whose failure is `onReset('reconnect')` and a catch-up of the (new) process's history; without
 *   a replay socket, reset at once;
 * - a live batch whose topic does not match the pool's pattern: `onReset('topic')` (a catch-up
 *   may have applied batches before the first live one showed the topic wrong) and nothing more
 *   is applied from this publisher;
 * - not connected `connectWarningMs` after the start: one warning (a wrong address is otherwise
 *   silent: the index simply never hears from the endpoint).
 *
 * Hostile streams: the sockets are our own ZMTP reader for tcp:// (zmtp/, through zmq.ts), which
 * disconnects a peer sending a frame over `maxMessageSize` or a message of more than 3 frames
 * (checked on each frame's header, before allocating: zeromq.js gathers any number of frames),
 * the receive high-water mark bounds what waits unread (excess is dropped, which shows up as a gap),
 * the replay buffer and the replay itself are bounded in batches, bytes and time; a message that
 * is not three frames, a bad seq frame or an undecodable payload is counted (`malformed_batch`)
 * and skipped; a topic that does not match is counted (`topic_mismatch`) and skipped with one
 * warning per subscriber. Worst-case memory held for one endpoint: `receiveHighWaterMark ×
 * maxMessageSize` in the socket plus `maxBufferedBytes`.
 */

/** Why an endpoint's entries were dropped (a fixed set: metric labels). */
export type KvResetReason = 'gap' | 'restart' | 'reconnect' | 'topic';
export const KV_RESET_REASONS: readonly KvResetReason[] = ['gap', 'restart', 'reconnect', 'topic'];

/**
 * Defaults, and why:
 * - `maxMessageSize` 512 KiB: a larger frame disconnects its peer. A batch is one engine step's
 *   events: a step computes at most `max_num_batched_tokens` tokens (vLLM's defaults 2,048 to
 *   16,384), so its BlockStored events carry at most that many token ids, ~80 KB (wire.ts counts ≤ 5
 *   bytes per token id); 512 KiB is over 100,000 token ids, six of the largest default steps. The
 *   bound is also what one batch costs the event loop between two yields: decoding and applying
 *   1 MiB took 100–150 ms on a busy 2-core machine, 8 MiB 150–350 ms on a quieter one.
 * - `receiveHighWaterMark` 128 messages: over a second of an engine publishing every step (~10 ms)
 *   while the gateway is busy; beyond it ZeroMQ drops, and the gap is replayed. With the frame
 *   bound, at most 128 MiB waits for a hostile publisher, ~MBs for a real one.
 * - `replayTimeoutMs` 5,000, `maxReplayBatches` 10,000 (vLLM's `buffer_steps`: it never has more).
 * - `maxBufferedBatches` 1,024 and `maxBufferedBytes` 64 MiB: live batches held during a replay.
 */
export const SUBSCRIBER_DEFAULTS = Object.freeze({
  maxMessageSize: 512 * 1024,
  receiveHighWaterMark: 128,
  replayTimeoutMs: 5_000,
  maxReplayBatches: 10_000,
  maxBufferedBatches: 1_024,
  maxBufferedBytes: 64 * 1024 * 1024,
  /** A subscriber not connected this long after it started says so once (a wrong address or port is otherwise silent). */
  connectWarningMs: 10_000,
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
  /** Ask the replay socket for its whole buffer on first contact (default true; see above). */
  readonly catchUp?: boolean;
  /** Default SUBSCRIBER_DEFAULTS.connectWarningMs. */
  readonly connectWarningMs?: number;
  readonly limits?: WireLimits;
  readonly maxMessageSize?: number;
  readonly receiveHighWaterMark?: number;
  readonly replayTimeoutMs?: number;
  readonly maxReplayBatches?: number;
  readonly maxBufferedBatches?: number;
  readonly maxBufferedBytes?: number;
}

/** Longest topic frame decoded, bytes. */
const MAX_TOPIC_BYTES = 1_024;

type ReplayReason = KvResetReason | 'catchup';

interface Pending {
  readonly seq: bigint;
  readonly topicOk: boolean;
  readonly payload: Buffer;
}

export class KvEventSubscriber {
  readonly #o: KvEventSubscriberOptions;
  readonly #sub: KvSubSocket;
  readonly #done: Promise<void>;
  #dealer: KvDealerSocket | undefined;
  #closed = false;
  #connected = false;
  #everConnected = false;
  /** The last sequence number applied, and its payload (what a replay must return first). */
  #last: bigint | undefined;
  #lastPayload: Buffer | undefined;
  #replaying = false;
  /** The first message has started the catch-up replay (once per subscriber). */
  #caughtUp = false;
  #buffer: Pending[] = [];
  /** A live batch's topic matched the pool's pattern (replays are trusted only after one did). */
  #topicSeen = false;
  /** The first live batch's topic did not match: no catch-up replay for this publisher. */
  #topicMismatched = false;
  /** Set while a replay runs when its result must be thrown away (the topic proved wrong meanwhile). */
  #abandonReplay = false;
  readonly #connectWarning: NodeJS.Timeout;
  #bufferedBytes = 0;
  #overflow = false;

  constructor(options: KvEventSubscriberOptions) {
    this.#o = options;
    const connectWarningMs = options.connectWarningMs ?? SUBSCRIBER_DEFAULTS.connectWarningMs;
    this.#sub = kvSubSocket(options.events, {
      maxMessageSize: options.maxMessageSize ?? SUBSCRIBER_DEFAULTS.maxMessageSize,
      receiveHighWaterMark: options.receiveHighWaterMark ?? SUBSCRIBER_DEFAULTS.receiveHighWaterMark,
    });
    this.#sub.events.on('connect', () => this.#guard(() => this.#onConnect()));
    this.#sub.events.on('disconnect', () => this.#guard(() => this.#onDisconnect()));
    // The socket cut the publisher off for a message over its bounds (zmtp/): count and say so once.
    this.#sub.events.on('violation', () =>
      this.#guard(() => {
        this.#problem('oversized_message', 1);
        this.#warn('violation', `kv events from ${this.#o.events}: a message over the size or frame bounds; the publisher was cut off and is reconnected to after a backoff`);
      }),
    );
    this.#sub.subscribe(); // every topic: a mismatch is counted, not silently filtered out
    this.#sub.connect(options.events);
    this.#done = this.#run();
    this.#connectWarning = setTimeout(() => {
      if (!this.#everConnected && !this.#closed) this.#warn('connect', `kv events: not connected to ${options.events} after ${Math.round(connectWarningMs / 1000)} s; precise routing sees no blocks of this endpoint (is the pod publishing there?)`);
    }, connectWarningMs);
    this.#connectWarning.unref();
  }

  /** Whether the SUB socket is connected to the publisher now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** Closes both sockets; resolves when the receive loop has ended. Idempotent. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearTimeout(this.#connectWarning);
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
        this.#guard(() => this.#onMessage(frames));
        // Queued messages resolve the next receive at once: without a turn of the event loop a
        // publisher that keeps the queue full would starve every request (measured: 30 s stalls).
        await yieldToEventLoop();
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
    // A topic longer than any real one (`kv@<ip>:<port>@<model>`) is not decoded at all.
    const topicOk = this.#o.topic === undefined || (topic.length <= MAX_TOPIC_BYTES && this.#o.topic(topic.toString('utf8')));
    if (topicOk) {
      this.#topicSeen = true;
    } else if (!this.#topicSeen && !this.#topicMismatched) {
      // The first live batch says this is not the stream the pool describes (the configured topic
      // is wrong): a catch-up replay (whose frames carry no topic) must not have applied it.
      this.#topicMismatched = true;
      if (this.#replaying) this.#abandonReplay = true;
      else if (this.#caughtUp) this.#reset('topic');
    }
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
    // Replay frames carry no topic: a publisher whose live topic proved wrong is never replayed.
    const replay = this.#o.replay !== undefined && !this.#topicMismatched;
    if (last === undefined && !this.#caughtUp && item.topicOk && replay && this.#o.catchUp !== false) {
      this.#caughtUp = true;
      this.#startReplay('catchup', item);
    } else if (last === undefined || item.seq === last + 1n) {
      this.#deliver(item);
    } else if (item.seq <= last) {
      // A new process: its whole history so far may still be in its replay buffer.
      this.#reset('restart');
      if (replay && this.#o.catchUp !== false) this.#startReplay('catchup', item);
      else this.#deliver(item);
    } else if (replay) {
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

  #startReplay(reason: ReplayReason, first?: Pending): void {
    this.#replaying = true;
    this.#overflow = false;
    this.#buffer = [];
    this.#bufferedBytes = 0;
    if (first !== undefined) this.#handle(first);
    void this.#replay(reason);
  }

  /** Replays from `last`; then applies the buffered live batches, or resets. Never throws. */
  async #replay(reason: ReplayReason): Promise<void> {
    const catchup = reason === 'catchup';
    const from = catchup ? 0n : this.#last!;
    const expected = this.#lastPayload;
    const timeoutMs = this.#o.replayTimeoutMs ?? SUBSCRIBER_DEFAULTS.replayTimeoutMs;
    const maxBatches = this.#o.maxReplayBatches ?? SUBSCRIBER_DEFAULTS.maxReplayBatches;
    const deadline = performance.now() + timeoutMs;
    const dealer = kvDealerSocket(this.#o.replay!, {
      maxMessageSize: this.#o.maxMessageSize ?? SUBSCRIBER_DEFAULTS.maxMessageSize,
      receiveHighWaterMark: this.#o.receiveHighWaterMark ?? SUBSCRIBER_DEFAULTS.receiveHighWaterMark,
      sendTimeout: timeoutMs,
    });
    this.#dealer = dealer;
    let ok = false;
    try {
      dealer.connect(this.#o.replay!);
      await dealer.send(['', encodeSeq(from)]);
      let proven = catchup; // a catch-up has nothing to prove: the index holds nothing yet
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
          if (seq !== from || expected === undefined || !payload.equals(expected)) break; // another process, or `from` is gone
          proven = true;
          continue;
        }
        if (this.#last !== undefined && seq !== this.#last + 1n) break;
        this.#deliver({ seq, topicOk: true, payload });
        await yieldToEventLoop();
      }
    } catch {
      // A timeout (EAGAIN), or the socket closed under us: the replay failed.
    } finally {
      dealer.close();
      if (this.#dealer === dealer) this.#dealer = undefined;
    }
    if (this.#closed) return;
    if (this.#abandonReplay) {
      this.#abandonReplay = false;
      this.#replaying = false;
      this.#buffer = [];
      this.#bufferedBytes = 0;
      this.#reset('topic');
      return;
    }
    const buffered = this.#overflow ? [] : this.#buffer;
    // A catch-up that ends early still applied a consistent prefix of the history; lost live
    // batches (overflow) are another matter: they may have removed blocks.
    const failed = catchup ? this.#overflow : !ok || this.#overflow;
    if (failed) this.#reset(catchup ? 'gap' : reason);
    else if (catchup) ok = true;
    this.#replaying = false;
    this.#buffer = [];
    this.#bufferedBytes = 0;
    // Continuity was not proven (a restarted engine, or history past its buffer): what the engine
    // holds now is its replay buffer read from the start (a new process's whole history, the
    // batches it published before this subscriber reconnected included), then the live batches.
    // Never from a catch-up's own failure, so a flood cannot loop catch-ups.
    if (failed && !catchup && this.#o.catchUp !== false && !this.#overflow && !this.#topicMismatched) {
      this.#startReplay('catchup');
      for (const item of buffered) this.#handle(item);
      return;
    }
    for (const item of buffered) {
      // Batches the replay already applied come again live: skip them (not a restart).
      if (!this.#replaying && this.#last !== undefined && item.seq <= this.#last && ok) continue;
      this.#guard(() => this.#handle(item));
    }
  }

  /**
   * Runs `fn`; a throw (a bug downstream, in the index) must not end the subscription, and what
   * it half-applied cannot be trusted, so the endpoint starts clean.
   */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#warn('apply', `kv events from ${this.#o.events}: applying a batch failed (${errorName(err)}); the endpoint's entries were dropped`);
      if (!this.#replaying) this.#reset('gap');
    }
  }

  #onConnect(): void {
    this.#connected = true;
    this.#o.onConnection?.(true);
    const again = this.#everConnected;
    this.#everConnected = true;
    if (this.#closed || this.#replaying || this.#topicMismatched) return;
    // First contact: what the engine cached before this gateway subscribed is in its replay
    // buffer; read it now, not at the engine's next batch (a quiet pod's warm cache would stay
    // invisible until then).
    if (!again && this.#last === undefined && !this.#caughtUp && this.#o.replay !== undefined && this.#o.catchUp !== false) {
      this.#caughtUp = true;
      this.#startReplay('catchup');
      return;
    }
    if (!again || this.#last === undefined) return;
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

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function errorName(err: unknown): string {
  return err instanceof Error ? (err as Error & { code?: string }).code ?? err.name : 'error';
}
