import { createSecureServer, createServer, type Http2SecureServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { GrpcServerCall, refuseStream, type CallLimits } from './call.js';
import { GrpcCode } from './status.js';

/** Serves one method: called with each new call to its path (`/package.Service/Method`). */
export type MethodHandler = (call: GrpcServerCall) => void;

/** Keepalive pings the server sends on each connection. */
export interface Keepalive {
  /** Time after a connection opens (or its last ping was answered) before the next ping, ms. */
  readonly timeMs: number;
  /** Time a ping has to be answered before the connection is closed, ms. */
  readonly timeoutMs: number;
}

export interface GrpcH2ServerOptions {
  /** TLS (ALPN `h2`) with this certificate, or plaintext HTTP/2 (h2c, prior knowledge) when absent. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
  /** Methods by path. Any other path is answered UNIMPLEMENTED. */
  readonly methods: ReadonlyMap<string, MethodHandler>;
  readonly limits: CallLimits;
  /** SETTINGS_MAX_CONCURRENT_STREAMS advertised to each client. */
  readonly maxConcurrentStreams: number;
  readonly keepalive?: Keepalive;
}

/**
 * Memory one connection's HTTP/2 state may hold before node:http2 refuses new streams on it
 * (ENHANCE_YOUR_CALM), MB (node's `maxSessionMemory` unit). Node's default is 10; a picker
 * connection carries thousands of concurrent streams whose request bodies and answers sit in its
 * buffers (200 concurrent 200 KB prompts hold ~13 MB of 64 KiB stream windows at once), and grpc-js
 * set no bound at all, so this keeps the old behaviour for real loads while still bounding a peer
 * that piles up state.
 */
export const MAX_SESSION_MEMORY_MB = 512;

/**
 * A gRPC server on node:http2 (gRPC over HTTP/2, grpc/grpc doc/PROTOCOL-HTTP2.md) for the few
 * methods the endpoint picker serves: requests routed by `:path`, `content-type` checked
 * (`application/grpc…`, else HTTP 415), unknown methods answered UNIMPLEMENTED, keepalive pings
 * sent and their answers awaited, and a graceful close (GOAWAY, then a deadline for open streams).
 * Node answers the client's pings itself and sets no limit on how often they come.
 */
export class GrpcH2Server {
  readonly #server: Http2Server | Http2SecureServer;
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #options: GrpcH2ServerOptions;
  #closing = false;

  constructor(options: GrpcH2ServerOptions) {
    this.#options = options;
    const common = { settings: { maxConcurrentStreams: options.maxConcurrentStreams }, maxSessionMemory: MAX_SESSION_MEMORY_MB };
    this.#server = options.tls === undefined ? createServer(common) : createSecureServer({ ...common, cert: options.tls.cert, key: options.tls.key, ALPNProtocols: ['h2'] });
    this.#server.on('session', (session: ServerHttp2Session) => this.#onSession(session));
    this.#server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => this.#onStream(stream, headers));
    // A client's TLS or HTTP/2 error ends its own connection, never the server.
    this.#server.on('sessionError', () => undefined);
    this.#server.on('tlsClientError', () => undefined);
  }

  /** Binds `address:port` (0: any free port); resolves to the bound port, rejects with the bind error. */
  listen(address: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const server = this.#server;
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen(port, address, () => {
        server.off('error', onError);
        const bound = server.address();
        resolve(typeof bound === 'object' && bound !== null ? bound.port : port);
      });
    });
  }

  /**
   * Graceful close: the listener stops accepting, every connection gets a GOAWAY (no new streams;
   * the open ones go on), and once they are all closed the promise resolves. After `drainMs` the
   * connections still open are destroyed (their streams close, their calls' listeners hear it).
   * Calls the caller wants cut at once it ends itself.
   */
  close(drainMs: number, onDeadline?: () => void): Promise<void> {
    this.#closing = true;
    return new Promise((resolve) => {
      const cut = setTimeout(() => {
        onDeadline?.();
        for (const s of this.#sessions) s.destroy();
      }, drainMs);
      this.#server.close(() => {
        clearTimeout(cut);
        resolve();
      });
      for (const s of this.#sessions) s.close();
    });
  }

  /** Destroys every connection now and stops listening. */
  destroy(): void {
    this.#closing = true;
    this.#server.close();
    for (const s of this.#sessions) s.destroy();
  }

  #onSession(session: ServerHttp2Session): void {
    this.#sessions.add(session);
    session.on('error', () => undefined);
    let timer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    };
    session.once('close', () => {
      stop();
      this.#sessions.delete(session);
    });
    if (this.#closing) {
      session.close();
      return;
    }
    const keepalive = this.#options.keepalive;
    if (keepalive === undefined) return;
    // A connection whose peer stops answering pings is dead (a crashed or partitioned Envoy):
    // destroying it closes its streams, whose calls then end as cancelled.
    const schedule = (): void => {
      timer = setTimeout(ping, keepalive.timeMs);
      timer.unref();
    };
    const ping = (): void => {
      if (session.destroyed || session.closed) return;
      let sent = false;
      try {
        sent = session.ping((err) => {
          stop();
          if (err !== null) session.destroy();
          else schedule();
        });
      } catch {
        sent = false;
      }
      if (!sent) {
        session.destroy();
        return;
      }
      timer = setTimeout(() => session.destroy(), keepalive.timeoutMs);
      timer.unref();
    };
    schedule();
  }

  #onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      refuseStream(stream, 415);
      return;
    }
    const path = headers[':path'] ?? '';
    const handler = this.#options.methods.get(path);
    if (handler === undefined) {
      // grpc-js's wording.
      refuseStream(stream, { code: GrpcCode.UNIMPLEMENTED, details: `The server does not implement the method ${path}` });
      return;
    }
    handler(new GrpcServerCall(stream, headers, this.#options.limits));
  }
}
