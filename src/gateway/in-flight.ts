import type { GatewayError } from '../core/errors.js';
import type { Stoppable } from './request-scope.js';

/**
 * The requests a data plane is serving (each one's scope, or anything it can stop), and whether
 * it is draining for shutdown. Draining is a one-way switch: from then on new requests are
 * refused (the proxy also asks HTTP/1.1 clients to close their connection).
 */
export class InFlight {
  readonly #scopes = new Set<Stoppable>();
  readonly #whenEmpty: Array<() => void> = [];
  #draining = false;

  get draining(): boolean {
    return this.#draining;
  }

  get size(): number {
    return this.#scopes.size;
  }

  add(scope: Stoppable): void {
    this.#scopes.add(scope);
  }

  delete(scope: Stoppable): void {
    if (!this.#scopes.delete(scope)) return;
    if (this.#scopes.size === 0) for (const wake of this.#whenEmpty.splice(0)) wake();
  }

  drain(): void {
    this.#draining = true;
  }

  /** Resolves true once nothing is in flight, or false after `ms` with requests still running. */
  settled(ms: number): Promise<boolean> {
    if (this.#scopes.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = this.#whenEmpty.indexOf(wake);
        if (i !== -1) this.#whenEmpty.splice(i, 1);
        resolve(false);
      }, ms);
      this.#whenEmpty.push(wake);
    });
  }

  /** Stops every request still in flight with `error` (the end of the shutdown grace period). */
  stopAll(error: GatewayError): void {
    for (const scope of this.#scopes) scope.stop(error);
  }
}
