import type { Logger } from '../observability/logger.js';
import type { PortHandler } from './handler.js';
import { PortListener } from './port-listener.js';

/**
 * One listener per Gateway listener port, reconciled against each snapshot: new ports open,
 * removed ports stop accepting while their in-flight requests finish, kept ports are untouched
 * (their handler reads the current runtime per request, so nothing needs rebinding). Opening is
 * all or nothing: if one new port cannot be bound, the ports opened with it are closed again and
 * the change is refused, so a configuration never half-applies.
 */
export class ListenerSet {
  readonly #active = new Map<number, PortListener>();
  /** Removed ports still finishing their requests. */
  readonly #retiring = new Set<PortListener>();
  readonly #address: string;
  readonly #makeHandler: (port: number) => PortHandler;
  readonly #logger: Logger;

  constructor(address: string, makeHandler: (port: number) => PortHandler, logger: Logger) {
    this.#address = address;
    this.#makeHandler = makeHandler;
    this.#logger = logger;
  }

  get ports(): number[] {
    return [...this.#active.keys()];
  }

  /**
   * Opens the ports of `wanted` not open yet. Rejects with the first ListenError (and changes
   * nothing) when a port cannot be bound; otherwise returns a rollback that closes what it opened
   * (for a change refused later).
   */
  async open(wanted: ReadonlySet<number>): Promise<() => void> {
    const missing = [...wanted].filter((p) => !this.#active.has(p));
    const opened = await Promise.allSettled(missing.map((port) => PortListener.open(port, this.#address, this.#makeHandler(port))));
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) {
      for (const r of opened) if (r.status === 'fulfilled') r.value.close();
      throw failed.reason;
    }
    const added: PortListener[] = [];
    for (const r of opened) {
      if (r.status !== 'fulfilled') continue;
      this.#active.set(r.value.port, r.value);
      added.push(r.value);
      this.#logger.info({ port: r.value.port, address: this.#address }, 'listener started');
    }
    return () => {
      for (const listener of added) {
        this.#active.delete(listener.port);
        listener.close();
      }
    };
  }

  /** Drains the ports no longer wanted (once the change that drops them is committed). */
  retireUnwanted(wanted: ReadonlySet<number>): void {
    for (const [port, listener] of this.#active) {
      if (wanted.has(port)) continue;
      this.#active.delete(port);
      this.#retire(listener);
      this.#logger.info({ port }, 'listener closed');
    }
  }

  /** Opens what `wanted` adds and drains what it drops (start-up). */
  async reconcile(wanted: ReadonlySet<number>): Promise<void> {
    await this.open(wanted);
    this.retireUnwanted(wanted);
  }

  /** Graceful stop of every port (see PortListener.drain). */
  drain(): void {
    for (const listener of this.#active.values()) this.#retire(listener);
    this.#active.clear();
  }

  /** Closes every port and connection at once. */
  close(): void {
    this.drain();
    for (const listener of this.#retiring) listener.close();
  }

  #retire(listener: PortListener): void {
    listener.drain();
    this.#retiring.add(listener);
    void listener.closed.then(() => this.#retiring.delete(listener));
  }
}
