import { EventEmitter } from 'node:events';
import { ZmtpConnection, type ConnectionViolation } from './connection.js';
import { encodeMessage } from './frames.js';
import { frameLimits, timing, ZMTP_DEFAULTS, type ZmtpSocketOptions } from './options.js';
import { codeError, MessageQueue } from './queue.js';

export interface ZmtpDealerOptions extends ZmtpSocketOptions {
  /** `receive()` waits at most this long, ms, then rejects with code 'EAGAIN'; −1: for ever (default). */
  readonly receiveTimeout?: number;
  /** Most messages waiting to be sent while not connected; past it `send` rejects with 'EAGAIN'. Default 1,000 (libzmq's ZMQ_SNDHWM). */
  readonly sendHighWaterMark?: number;
  /** Accepted for zeromq.js compatibility (a send never waits: it queues or rejects). */
  readonly sendTimeout?: number;
}

/**
 * A ZeroMQ DEALER socket over one TCP connection (ZMTP 3.0 to a libzmq 4.x ROUTER), in place of
 * zeromq.js's `Dealer` for the replay request: `connect()`, `send(frames)` (frames go as given:
 * a ROUTER peer's REQ-style envelope needs the caller's empty delimiter first, as `['', seq]`),
 * `receive()` with `receiveTimeout`, `close()`.
 *
 * The same per-message bounds as ZmtpSubscriber. Unlike a SUB it never drops: when
 * `receiveHighWaterMark` messages wait unread the connection stops reading (TCP pushes back on
 * the peer) until the reader takes one.
 */
export class ZmtpDealer {
  /** 'connect' and 'disconnect', each with `{ address }`. */
  readonly events = new EventEmitter();
  /** `receive()` timeout, ms; −1 waits for ever. */
  receiveTimeout: number;
  readonly #options: ZmtpDealerOptions;
  readonly #queue: MessageQueue;
  readonly #outbox: Buffer[] = [];
  #connection: ZmtpConnection | undefined;
  #closed = false;
  readonly #violations = new Map<ConnectionViolation, number>();

  constructor(options: ZmtpDealerOptions = {}) {
    this.#options = options;
    this.receiveTimeout = options.receiveTimeout ?? -1;
    this.#queue = new MessageQueue(options.receiveHighWaterMark ?? ZMTP_DEFAULTS.receiveHighWaterMark);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Connections cut off, by reason. */
  get violations(): ReadonlyMap<ConnectionViolation, number> {
    return this.#violations;
  }

  /** Connects to `tcp://HOST:PORT` (one endpoint per socket); throws for another transport. */
  connect(endpoint: string): void {
    if (this.#closed) throw codeError('ENOTSOCK', 'Socket is closed');
    if (this.#connection !== undefined) throw new Error('ZmtpDealer: connects to one endpoint only');
    const address = endpoint;
    this.#connection = new ZmtpConnection(endpoint, {
      socketType: 'DEALER',
      limits: frameLimits(this.#options),
      ...timing(this.#options),
      onReady: () => {
        for (const m of this.#outbox.splice(0)) this.#connection?.write(m);
        this.events.emit('connect', { address });
      },
      onMessage: (frames) => {
        this.#queue.push(frames);
        return !this.#queue.full;
      },
      onLost: () => this.events.emit('disconnect', { address }),
      onViolation: (reason) => this.#violations.set(reason, (this.#violations.get(reason) ?? 0) + 1),
    });
  }

  /** Sends one message now, or once connected. Rejects with 'ENOTSOCK' when closed, 'EAGAIN' when too many wait. */
  async send(frames: readonly (Buffer | string)[] | Buffer | string): Promise<void> {
    if (this.#closed) throw codeError('ENOTSOCK', 'Socket is closed');
    const bytes = encodeMessage(Array.isArray(frames) ? frames : [frames as Buffer | string]);
    if (this.#connection?.write(bytes)) return;
    if (this.#outbox.length >= (this.#options.sendHighWaterMark ?? 1_000)) throw codeError('EAGAIN', 'Socket temporarily unavailable');
    this.#outbox.push(bytes);
  }

  /** The next message; rejects with code 'EAGAIN' after `receiveTimeout` ms, 'ENOTSOCK' once closed. */
  async receive(): Promise<Buffer[]> {
    if (this.#closed) throw codeError('ENOTSOCK', 'Socket is closed');
    const m = await this.#queue.next(this.receiveTimeout);
    if (m === undefined) throw codeError('ENOTSOCK', 'Socket is closed');
    if (!this.#queue.full) this.#connection?.resume();
    return m;
  }

  /** Closes the connection; unsent and unread messages are dropped, a waiting receive rejects. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#outbox.length = 0;
    this.#connection?.close();
    this.#queue.close();
    this.events.removeAllListeners();
  }
}
