import { Router, XPublisher } from 'zeromq';
import type { KvEventBatch } from '../../src/kvevents/events.js';
import { encodeEventBatch, encodeSeq, decodeSeq } from '../../src/kvevents/wire.js';

/**
 * A tiny stand-in for a vLLM KV-event publisher (vllm/distributed/kv_events.py), on loopback:
 * three-frame messages `[topic, seq, payload]` on a PUB socket (an XPUB here, so a test can wait
 * until a subscriber has really subscribed: ZeroMQ drops what is published before that), and a
 * ROUTER replay socket answering `[id, "", start_seq]` with `[id, "", seq, payload]` for each
 * remembered batch with `seq ≥ start_seq`, then `[id, "", -1, ""]`.
 *
 * `publish` can also skip sending (the batch is lost on the way but still replayable) and write
 * any raw payload (malformed ones).
 */
export class TestKvPublisher {
  #pub: XPublisher;
  readonly #router: Router | undefined;
  readonly #history: { seq: bigint; payload: Uint8Array }[] = [];
  readonly #topic: string;
  readonly #encoding: 'array' | 'map';
  #subscribed = 0;
  #seq = 0n;
  #replayLoop: Promise<void> = Promise.resolve();
  #subLoop: Promise<void> = Promise.resolve();
  /** When false the replay socket receives requests and never answers. */
  answerReplays = true;
  /** Replay requests seen. */
  replayRequests = 0;
  events: string;
  readonly replay: string | undefined;

  private constructor(pub: XPublisher, router: Router | undefined, topic: string, encoding: 'array' | 'map') {
    this.#pub = pub;
    this.#router = router;
    this.#topic = topic;
    this.#encoding = encoding;
    this.events = pub.lastEndpoint!;
    this.replay = router?.lastEndpoint ?? undefined;
  }

  /**
   * Binds on 127.0.0.1: a free port, or `ports` (a publisher restarting in place). Retries a bind
   * that fails while the previous process's port is being released. A small `sendHighWaterMark`
   * makes the publisher drop what a slow subscriber cannot take (vLLM's `hwm` is 100,000).
   * `history`: batches published (and so replayable) before any subscriber can connect.
   */
  static async start(options: { topic?: string; replay?: boolean; encoding?: 'array' | 'map'; ports?: { events: number; replay?: number }; sendHighWaterMark?: number; history?: readonly KvEventBatch[] } = {}): Promise<TestKvPublisher> {
    const pub = new XPublisher({ linger: 0, sendHighWaterMark: options.sendHighWaterMark ?? 1_000_000 });
    await bindRetrying(pub, options.ports?.events);
    let router: Router | undefined;
    if (options.replay ?? true) {
      router = new Router({ linger: 0 });
      await bindRetrying(router, options.ports?.replay);
    }
    const p = new TestKvPublisher(pub, router, options.topic ?? 'kv@127.0.0.1:8000@m', options.encoding ?? 'array');
    for (const batch of options.history ?? []) await p.publish(batch, { send: false });
    p.#subLoop = p.#watchSubscriptions();
    if (router !== undefined) p.#replayLoop = p.#serveReplays(router);
    return p;
  }

  get eventsPort(): number {
    return portOf(this.events);
  }

  get replayPort(): number | undefined {
    return this.replay === undefined ? undefined : portOf(this.replay);
  }

  /** Subscription messages seen (one per subscriber that subscribed). */
  get subscribed(): number {
    return this.#subscribed;
  }

  /** The seq the next publish uses. */
  get nextSeq(): bigint {
    return this.#seq;
  }

  /**
   * Publishes `batch` (or a raw `payload`) as the next seq, remembered for replay. `send: false`
   * loses it on the way (a gap the subscriber sees at the next message).
   */
  async publish(batch: KvEventBatch | Uint8Array, options: { send?: boolean; topic?: string } = {}): Promise<bigint> {
    const payload = batch instanceof Uint8Array ? batch : encodeEventBatch(batch, { encoding: this.#encoding, hashes: 'int' });
    const seq = this.#seq++;
    this.#history.push({ seq, payload });
    if (options.send ?? true) await this.#pub.send([options.topic ?? this.#topic, encodeSeq(seq), payload]);
    return seq;
  }

  /** Starts counting from 0 again with an empty replay buffer, as a new engine process would. */
  resetSequence(): void {
    this.#seq = 0n;
    this.#history.length = 0;
  }

  /**
   * Closes the events socket and binds a new one on the same port, keeping the seq counter and
   * the replay socket: the subscriber's connection drops and comes back, nothing is lost.
   */
  async rebindEvents(): Promise<void> {
    const port = this.eventsPort;
    this.#pub.close();
    await this.#subLoop;
    this.#pub = new XPublisher({ linger: 0, sendHighWaterMark: 1_000_000 });
    await bindRetrying(this.#pub, port);
    this.events = this.#pub.lastEndpoint!;
    this.#subLoop = this.#watchSubscriptions();
  }

  /** Forgets remembered batches below `seq` (a replay buffer that no longer reaches back). */
  forgetBefore(seq: bigint): void {
    while (this.#history.length > 0 && this.#history[0]!.seq < seq) this.#history.shift();
  }

  async close(): Promise<void> {
    this.#pub.close();
    this.#router?.close();
    await Promise.allSettled([this.#replayLoop, this.#subLoop]);
  }

  async #watchSubscriptions(): Promise<void> {
    try {
      for await (const [msg] of this.#pub) if (msg !== undefined && msg[0] === 1) this.#subscribed++;
    } catch {
      // closed
    }
  }

  async #serveReplays(router: Router): Promise<void> {
    try {
      for await (const frames of router) {
        this.replayRequests++;
        if (!this.answerReplays) continue;
        const id = frames[0]!;
        const start = decodeSeq(frames[frames.length - 1]!) ?? 0n;
        for (const { seq, payload } of this.#history) if (seq >= start) await router.send([id, '', encodeSeq(seq), payload]);
        await router.send([id, '', encodeSeq(-1n), '']);
      }
    } catch {
      // closed
    }
  }
}

async function bindRetrying(socket: XPublisher | Router, port: number | undefined): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await socket.bind(`tcp://127.0.0.1:${port ?? '*'}`);
      return;
    } catch (err) {
      if (port === undefined || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function portOf(address: string): number {
  return Number(/:(\d+)$/.exec(address)![1]);
}
