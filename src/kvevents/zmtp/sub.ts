import { EventEmitter } from 'node:events';
import { ZmtpConnection, type ConnectionViolation } from './connection.js';
import { encodeMessage } from './frames.js';
import { frameLimits, timing, ZMTP_DEFAULTS, type ZmtpSocketOptions } from './options.js';
import { codeError, MessageQueue } from './queue.js';

/**
 * A ZeroMQ SUB socket over one TCP connection (ZMTP 3.0 to a libzmq 4.x PUB/XPUB), in place of
 * zeromq.js's `Subscriber` for what the KV events subscriber uses: `subscribe()`, `connect()`,
 * `events.on('connect' | 'disconnect')`, async iteration of `Buffer[]` messages, `close()`.
 *
 * Bounds (options.ts): frames per message, bytes per frame and per message are checked on each
 * frame's header as it arrives (frames.ts); a peer breaking one is cut off, counted in
 * `violations`, and reconnected to after the backoff. Messages waiting unread are at most
 * `receiveHighWaterMark`; past it new messages are dropped (counted in `dropped`), as a libzmq
 * SUB socket does. Memory for one socket: `receiveHighWaterMark × maxMessageBytes` queued plus
 * one message in progress.
 *
 * Subscriptions are sent on every connection (3.0's form: a message `0x01 + prefix`) and also
 * applied here, since a publisher may ignore them.
 */
export class ZmtpSubscriber {
  /** 'connect' (handshake done) and 'disconnect' (a connected peer went away), each with `{ address }`; 'violation' (the peer was cut off) with its `ConnectionViolation`. */
  readonly events = new EventEmitter();
  readonly #options: ZmtpSocketOptions;
  readonly #queue: MessageQueue;
  readonly #prefixes: Buffer[] = [];
  #connection: ZmtpConnection | undefined;
  #closed = false;
  #dropped = 0;
  readonly #violations = new Map<ConnectionViolation, number>();

  constructor(options: ZmtpSocketOptions = {}) {
    this.#options = options;
    this.#queue = new MessageQueue(options.receiveHighWaterMark ?? ZMTP_DEFAULTS.receiveHighWaterMark);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Messages dropped because `receiveHighWaterMark` were waiting unread. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Connections cut off, by reason. */
  get violations(): ReadonlyMap<ConnectionViolation, number> {
    return this.#violations;
  }

  /** Subscribes to messages whose first frame starts with one of `prefixes`; none: every message. */
  subscribe(...prefixes: (string | Buffer)[]): void {
    const add = prefixes.length === 0 ? [Buffer.alloc(0)] : prefixes.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p));
    for (const p of add) {
      this.#prefixes.push(p);
      this.#connection?.write(subscription(p));
    }
  }

  /** Connects to `tcp://HOST:PORT` (one endpoint per socket); throws for another transport. */
  connect(endpoint: string): void {
    if (this.#closed) throw codeError('ENOTSOCK', 'Socket is closed');
    if (this.#connection !== undefined) throw new Error('ZmtpSubscriber: connects to one endpoint only');
    const address = endpoint;
    this.#connection = new ZmtpConnection(endpoint, {
      socketType: 'SUB',
      limits: frameLimits(this.#options),
      ...timing(this.#options),
      onReady: () => {
        for (const p of this.#prefixes) this.#connection?.write(subscription(p));
        this.events.emit('connect', { address });
      },
      onMessage: (frames) => {
        if (this.#matches(frames[0]!) && !this.#queue.push(frames)) this.#dropped++;
        return true; // a SUB never stops reading: it drops
      },
      onLost: () => this.events.emit('disconnect', { address }),
      onViolation: (reason) => {
        this.#violations.set(reason, (this.#violations.get(reason) ?? 0) + 1);
        this.events.emit('violation', reason);
      },
    });
  }

  /** The next message. Rejects with code 'ENOTSOCK' once closed. */
  async receive(): Promise<Buffer[]> {
    const m = await this.#queue.next();
    if (m === undefined) throw codeError('ENOTSOCK', 'Socket is closed');
    return m;
  }

  /** Messages until the socket is closed. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer[], void, undefined> {
    for (;;) {
      const m = await this.#queue.next();
      if (m === undefined) return;
      yield m;
    }
  }

  /** Closes the connection and drops what waits; no events after it. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#connection?.close();
    this.#queue.close();
    this.events.removeAllListeners();
  }

  #matches(topic: Buffer): boolean {
    for (const p of this.#prefixes) if (p.length === 0 || (topic.length >= p.length && topic.subarray(0, p.length).equals(p))) return true;
    return false;
  }
}

/** RFC 23 §"The SUB socket type": a subscription is a message of 0x01 followed by the prefix. */
function subscription(prefix: Buffer): Buffer {
  return encodeMessage([Buffer.concat([Buffer.from([0x01]), prefix])]);
}
