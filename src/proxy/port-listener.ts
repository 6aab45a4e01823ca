import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttp2Server, type ServerHttp2Session } from 'node:http2';
import { Server as NetServer, type Socket } from 'node:net';
import { answerClientErrors, H2_HEADER_LIST_ALLOWANCE, refuseOversizedH2Headers } from '../upstream/client-error.js';
import type { PortHandler } from './handler.js';
import { refuseTunnel } from './refuse-tunnel.js';
import { sniffProtocol } from './sniff.js';

/**
 * Limits every listener applies to what clients send (docs/configuration.md, "Limits").
 */
export const CLIENT_LIMITS = {
  /** Request headers, in bytes (Node's default; HTTP/2 counts 32 bytes more per header). */
  maxHeaderBytes: 16 * 1024,
  /** Time for a request's headers to arrive, and for a new connection's first bytes. */
  headersTimeoutMs: 60_000,
  /** Time for a whole HTTP/1.1 request (headers and body) to arrive. */
  requestTimeoutMs: 300_000,
  /**
   * Idle keep-alive connections are closed after this. Longer than common client and load
   * balancer idle timeouts (60 s), so the client closes first and never races a new request.
   */
  keepAliveTimeoutMs: 65_000,
  /** Concurrent streams per HTTP/2 connection. */
  maxConcurrentStreams: 128,
} as const;

/** A failure to bind a port, as one line naming what, where and why. */
export class ListenError extends Error {
  constructor(
    readonly what: string,
    readonly address: string,
    readonly port: number,
    cause: unknown,
  ) {
    super(`cannot listen on ${address.includes(':') ? `[${address}]` : address}:${port} (${what}): ${describe(cause)}`, { cause });
    this.name = 'ListenError';
  }
}

function describe(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const why: Record<string, string> = {
    EADDRINUSE: 'the address is already in use',
    EACCES: 'permission denied (ports below 1024 need privileges)',
    EADDRNOTAVAIL: 'the address is not available on this host',
  };
  if (typeof code === 'string') return `${why[code] ?? (err as Error).message} (${code})`;
  return err instanceof Error ? err.message : String(err);
}

/** Binds `server` on `port` at `address`, or rejects with the listen error. */
export function listen(server: Server, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, address, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * One Gateway listener port, speaking HTTP/1.1 and HTTP/2 cleartext with prior knowledge on the
 * same socket (Envoy does too): each new connection's first bytes decide which server gets it
 * (sniff.ts). Both servers call the same handler through Node's compatible request/response
 * API. `drain` starts a graceful stop, `close` ends everything still open.
 */
export class PortListener {
  readonly port: number;
  readonly #h1: Server;
  readonly #sessions = new Set<ServerHttp2Session>();
  /** HTTP/1.1 connections and how many of their responses are not done (pipelined ones included). */
  readonly #h1Connections = new Map<Socket, number>();
  /** Connections whose protocol is not known yet (no server owns them). */
  readonly #sniffing = new Set<Socket>();
  #draining = false;
  /** Resolves when the port is closed and its last connection has ended. */
  readonly closed: Promise<void>;

  private constructor(port: number, handler: PortHandler) {
    this.port = port;
    // A missing Host is refused by the handler (400 invalid_host in words), not by Node's bare 400.
    const h1 = createServer({ maxHeaderSize: CLIENT_LIMITS.maxHeaderBytes, requireHostHeader: false });
    h1.keepAliveTimeout = CLIENT_LIMITS.keepAliveTimeoutMs;
    h1.headersTimeout = CLIENT_LIMITS.headersTimeoutMs;
    h1.requestTimeout = CLIENT_LIMITS.requestTimeoutMs;
    // Node's default keeps the first 2000 header fields and silently drops the rest, a
    // Content-Length or Authorization among them (the body is then framed by one length and read
    // by another). The header size limit already bounds how many there can be.
    h1.maxHeadersCount = 0;
    answerClientErrors(h1, CLIENT_LIMITS.maxHeaderBytes);
    h1.on('request', (req, res) => {
      this.#track(req, res);
      handler(req, res, false);
    });
    // With a listener here Node no longer answers `Expect: 100-continue` by itself: the handler does.
    h1.on('checkContinue', (req, res) => {
      this.#track(req, res);
      handler(req, res, true);
    });
    // CONNECT asks for a tunnel: Node hands over the socket; the gateway refuses (405) and closes it.
    h1.on('connect', refuseTunnel);
    // Node resets a stream past its header setting before any handler: the setting leaves room
    // so that the bound itself is refused in words (431), as on HTTP/1.1 (client-error.ts).
    const h2 = createHttp2Server({ settings: { maxConcurrentStreams: CLIENT_LIMITS.maxConcurrentStreams, maxHeaderListSize: CLIENT_LIMITS.maxHeaderBytes * H2_HEADER_LIST_ALLOWANCE } });
    h2.on('request', (req, res) => {
      if (!refuseOversizedH2Headers(req, res, CLIENT_LIMITS.maxHeaderBytes)) handler(req, res, false);
    });
    h2.on('checkContinue', (req, res) => {
      if (!refuseOversizedH2Headers(req, res, CLIENT_LIMITS.maxHeaderBytes)) handler(req, res, true);
    });
    h2.on('session', (session) => {
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      if (this.#draining) session.close();
    });
    // The HTTP/1.1 server listens; its own connection listener takes only what is not HTTP/2.
    const own = h1.listeners('connection');
    if (own.length !== 1) throw new Error(`unexpected HTTP server internals: ${own.length} connection listeners`);
    const h1Connection = own[0] as (socket: Socket) => void;
    h1.removeAllListeners('connection');
    h1.on('connection', (socket: Socket) => {
      this.#sniffing.add(socket);
      sniffProtocol(socket, CLIENT_LIMITS.headersTimeoutMs, (protocol) => {
        this.#sniffing.delete(socket);
        if (protocol === 'h2') {
          // The listening server keeps a connection half-open after the client's FIN (HTTP/1.1 may
          // still finish an answer then). HTTP/2 has no half-close: a client that stopped sending
          // has dropped the connection, and nothing else may tell (with its flow-control window
          // full the gateway writes nothing that could fail), so its streams would stay in flight
          // for ever. Ended here: the session closes and aborts them.
          socket.once('end', () => socket.destroy());
          // Node's HTTP/2 session reads bytes already buffered in the socket first.
          h2.emit('connection', socket);
        } else {
          this.#h1Connections.set(socket, 0);
          socket.once('close', () => this.#h1Connections.delete(socket));
          h1Connection.call(h1, socket);
          socket.resume();
        }
      });
      socket.once('close', () => this.#sniffing.delete(socket));
    });
    this.#h1 = h1;
    // The listening server counts every accepted connection, HTTP/2 ones included.
    this.closed = new Promise((resolve) => h1.once('close', () => resolve()));
    // Draining closes the port through net.Server#close (see drain); http.Server#close, called
    // once everything is closed, also stops Node's connection-checking timer.
    h1.once('close', () => h1.close(() => undefined));
  }

  /** Opens `port` on `address`; rejects with a ListenError when it cannot be bound. */
  static async open(port: number, address: string, handler: PortHandler): Promise<PortListener> {
    const listener = new PortListener(port, handler);
    try {
      await listen(listener.#h1, port, address);
    } catch (err) {
      throw new ListenError('Gateway listener', address, port, err);
    }
    return listener;
  }

  /**
   * Starts a graceful stop: no new connections; HTTP/1.1 connections close as soon as every
   * response on them is done (idle ones now), HTTP/2 connections get a GOAWAY and close when
   * their streams end.
   */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    // Stop accepting only. http.Server#close would also destroy "idle" connections, including
    // one whose last response is ended but still being flushed to a slow client.
    NetServer.prototype.close.call(this.#h1);
    for (const [socket, pending] of this.#h1Connections) if (pending === 0) socket.end();
    for (const socket of this.#sniffing) socket.destroy();
    for (const session of this.#sessions) session.close();
  }

  /** Closes every connection still open, whatever it is doing. */
  close(): void {
    this.drain();
    this.#h1.closeAllConnections();
    for (const socket of this.#h1Connections.keys()) socket.destroy();
    for (const session of this.#sessions) session.destroy();
  }

  /** Counts a response on its connection; while draining, the connection ends after its last one. */
  #track(req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    this.#h1Connections.set(socket, (this.#h1Connections.get(socket) ?? 0) + 1);
    res.once('close', () => {
      const pending = (this.#h1Connections.get(socket) ?? 1) - 1;
      if (!this.#h1Connections.has(socket)) return;
      this.#h1Connections.set(socket, pending);
      // 'close' comes after Node has flushed the response and taken up any pipelined request.
      if (pending === 0 && this.#draining) socket.end();
    });
  }
}
