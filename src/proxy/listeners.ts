import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * One HTTP server per listening port, reconciled against each snapshot: new ports open, removed
 * ports stop accepting while their in-flight requests finish, kept ports are untouched (their
 * handler reads the current runtime per request, so nothing needs rebinding).
 */
export class ListenerSet {
  readonly #servers = new Map<number, Server>();
  readonly #failed = new Set<number>();
  readonly #address: string;
  readonly #makeHandler: (port: number) => Handler;
  readonly #logger: Logger;

  constructor(address: string, makeHandler: (port: number) => Handler, logger: Logger) {
    this.#address = address;
    this.#makeHandler = makeHandler;
    this.#logger = logger;
  }

  /** True when every wanted port is bound. */
  get healthy(): boolean {
    return this.#failed.size === 0;
  }

  get ports(): number[] {
    return [...this.#servers.keys()];
  }

  async reconcile(wanted: ReadonlySet<number>): Promise<void> {
    for (const [port, server] of this.#servers) {
      if (wanted.has(port)) continue;
      this.#servers.delete(port);
      server.close();
      server.closeIdleConnections();
      this.#logger.info({ port }, 'listener closed');
    }
    this.#failed.clear();
    await Promise.all(
      [...wanted].filter((p) => !this.#servers.has(p)).map(async (port) => {
        const server = createServer(this.#makeHandler(port));
        // Longer than common client and load-balancer idle timeouts (60 s), so the client, not
        // the gateway, closes idle keep-alive connections and never races a new request.
        server.keepAliveTimeout = 65_000;
        try {
          await listen(server, port, this.#address);
          this.#servers.set(port, server);
          this.#logger.info({ port, address: this.#address }, 'listener started');
        } catch (err) {
          this.#failed.add(port);
          this.#logger.error({ port, address: this.#address, err: (err as Error).message }, 'listener failed to start');
        }
      }),
    );
  }

  /** Stops accepting, waits up to `graceMs` for in-flight requests, then cuts the rest. */
  async close(graceMs: number): Promise<void> {
    const servers = [...this.#servers.values()];
    this.#servers.clear();
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => s.closeAllConnections(), graceMs);
            timer.unref();
            s.close(() => {
              clearTimeout(timer);
              resolve();
            });
            s.closeIdleConnections();
          }),
      ),
    );
  }
}

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
