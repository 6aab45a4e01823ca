import net from 'node:net';
import { encodeCommand, FrameDecoder, type FrameLimits, type FrameViolation } from './frames.js';
import { encodeGreeting, GREETING_BYTES, parseGreeting } from './greeting.js';
import { checkReady, encodeReady, type ZmtpSocketType } from './handshake.js';
import { parseTcpEndpoint, type TcpEndpoint } from './endpoint.js';

/**
 * One ZMTP peer over TCP, reconnecting for as long as it is open: connect, exchange greetings
 * (greeting.ts) and READY commands (handshake.ts), then decode frames as they arrive (frames.ts)
 * and hand whole messages to the owner. A bound broken, a bad greeting or READY, or no
 * handshake within `handshakeTimeoutMs` drops the connection (counted through `onViolation`).
 *
 * Reconnect: after `reconnectIvlMs` (100 ms, libzmq's ZMQ_RECONNECT_IVL default), doubling per
 * failed attempt up to `reconnectIvlMaxMs`; a connection that completed its handshake and ended
 * without a violation starts the backoff again from the bottom, one cut off for a violation does
 * not (a hostile peer is not hammered, nor does it make us spin).
 *
 * Back-pressure: when `onMessage` returns false the socket stops reading (the rest of the chunk
 * in hand, ≤ one socket read, waits) until `resume()`.
 */
export interface ConnectionOptions {
  readonly socketType: ZmtpSocketType;
  readonly limits: FrameLimits;
  readonly reconnectIvlMs: number;
  readonly reconnectIvlMaxMs: number;
  readonly handshakeTimeoutMs: number;
  /** The handshake completed: the connection may carry messages (a SUB sends its subscriptions). */
  readonly onReady: () => void;
  /** A whole message; false pauses reading until `resume()`. */
  readonly onMessage: (frames: Buffer[]) => boolean;
  /** A connection that had completed its handshake ended. */
  readonly onLost: () => void;
  /** The peer broke a bound or the protocol; the connection is being dropped. */
  readonly onViolation: (reason: ConnectionViolation) => void;
}

export type ConnectionViolation = FrameViolation | 'handshake';

/** Largest command accepted (READY with its metadata, PING, ERROR). */
export const MAX_COMMAND_BYTES = 64 * 1024;

export class ZmtpConnection {
  readonly #o: ConnectionOptions;
  readonly #target: TcpEndpoint;
  #socket: net.Socket | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #backoff: number;
  #ready = false;
  #violated = false;
  #greeting: Buffer | undefined;
  #greetingLen = 0;
  #decoder: FrameDecoder | undefined;
  #paused = false;
  #stash: Buffer | undefined;

  /** Throws for an endpoint that is not tcp://HOST:PORT. Connects at once. */
  constructor(endpoint: string, options: ConnectionOptions) {
    this.#target = parseTcpEndpoint(endpoint);
    this.#o = options;
    this.#backoff = options.reconnectIvlMs;
    this.#attempt();
  }

  /** Whether the handshake has completed on the current connection. */
  get ready(): boolean {
    return this.#ready;
  }

  /** Writes bytes on a ready connection; false (nothing written) when there is none. */
  write(bytes: Buffer): boolean {
    if (!this.#ready || this.#socket === undefined) return false;
    this.#socket.write(bytes);
    return true;
  }

  /** Reads again after `onMessage` returned false. */
  resume(): void {
    if (!this.#paused || this.#closed) return;
    this.#paused = false;
    const stash = this.#stash;
    this.#stash = undefined;
    if (stash !== undefined) this.#feed(stash);
    if (!this.#paused) this.#socket?.resume();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#stash = undefined;
    this.#socket?.destroy();
  }

  #attempt(): void {
    if (this.#closed) return;
    this.#ready = false;
    this.#violated = false;
    this.#paused = false;
    this.#stash = undefined;
    this.#greeting = Buffer.alloc(GREETING_BYTES);
    this.#greetingLen = 0;
    const decoder = new FrameDecoder(this.#o.limits);
    decoder.sink = {
      onMessage: (frames) => (this.#ready ? this.#o.onMessage(frames) : (this.#violation('handshake'), false)),
      onCommand: (name, data) => this.#onCommand(name, data),
    };
    this.#decoder = decoder;
    const socket = net.connect({ host: this.#target.host, port: this.#target.port });
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(encodeGreeting()));
    socket.on('data', (chunk: Buffer) => {
      if (this.#socket === socket) this.#onData(chunk);
    });
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => {
      if (this.#socket === socket) this.#onClose();
    });
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      if (!this.#ready && this.#socket === socket) this.#violation('handshake');
    }, this.#o.handshakeTimeoutMs);
  }

  #onData(chunk: Buffer): void {
    let start = 0;
    if (this.#greeting !== undefined) {
      const take = Math.min(GREETING_BYTES - this.#greetingLen, chunk.length);
      chunk.copy(this.#greeting, this.#greetingLen, 0, take);
      this.#greetingLen += take;
      start = take;
      // The signature's first byte tells a non-ZMTP peer at once.
      if (this.#greeting[0] !== 0xff) return this.#violation('handshake');
      if (this.#greetingLen < GREETING_BYTES) return;
      const g = parseGreeting(this.#greeting);
      this.#greeting = undefined;
      if (!g.ok) return this.#violation('handshake');
      this.#socket?.write(encodeReady(this.#o.socketType));
    }
    this.#feed(start === 0 ? chunk : chunk.subarray(start));
  }

  #feed(chunk: Buffer): void {
    const decoder = this.#decoder;
    if (decoder === undefined || chunk.length === 0) return;
    const r = decoder.decode(chunk);
    if (this.#violated) return;
    if (!r.ok) return this.#violation(r.reason);
    if (r.consumed < chunk.length) {
      this.#paused = true;
      this.#stash = chunk.subarray(r.consumed);
      this.#socket?.pause();
    }
  }

  #onCommand(name: string, data: Buffer): void {
    if (this.#violated) return;
    if (!this.#ready) {
      if (name !== 'READY' || checkReady(this.#o.socketType, data) !== undefined) return this.#violation('handshake');
      this.#ready = true;
      clearTimeout(this.#timer);
      this.#o.onReady();
      return;
    }
    if (name === 'PING') {
      // RFC 37 §"PING": 2-byte TTL, then up to 16 bytes of context the PONG echoes.
      this.#socket?.write(encodeCommand('PONG', data.subarray(2, 18)));
    } else if (name === 'ERROR') {
      this.#socket?.destroy();
    }
    // Other commands (PONG, SUBSCRIBE from a confused peer, …) are ignored, as libzmq does.
  }

  #violation(reason: ConnectionViolation): void {
    if (this.#violated || this.#closed) return;
    this.#violated = true;
    this.#decoder = undefined; // its partial message and frame go with it
    this.#stash = undefined;
    this.#o.onViolation(reason);
    this.#socket?.destroy();
  }

  #onClose(): void {
    const wasReady = this.#ready;
    this.#ready = false;
    this.#socket = undefined;
    this.#decoder = undefined;
    this.#stash = undefined;
    clearTimeout(this.#timer);
    if (this.#closed) return; // no events after close()
    if (wasReady) this.#o.onLost();
    if (wasReady && !this.#violated) this.#backoff = this.#o.reconnectIvlMs;
    const delay = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, this.#o.reconnectIvlMaxMs);
    this.#timer = setTimeout(() => this.#attempt(), delay);
  }
}
