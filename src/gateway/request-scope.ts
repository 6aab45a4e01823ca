import type { GatewayError } from '../core/errors.js';
import { isClientGone } from './client-gone.js';

/** The reason a request's scope was stopped, carried as its AbortSignal's reason. */
export class Stopped extends Error {
  constructor(readonly error: GatewayError) {
    super(error.message);
  }
}

/** What the in-flight set can stop (InFlight.stopAll): a request's scope. */
export interface Stoppable {
  /** Ends everything the request waits on with `error`; the first stop wins. */
  stop(error: GatewayError): void;
}

/** Called once when a scope stops, with its reason (a Stopped). */
export type StopListener = (reason: Stopped) => void;

/**
 * One request's life on a data plane (the proxy, the endpoint picker, the sidecar), from the first header to the last byte sent. Whatever
 * ends it early stops it with the error that says why: the client leaving (`client_gone`), a
 * timeout of the upstream watchdog (`upstream_timeout`), the end of the shutdown grace period
 * (`gateway_shutting_down`). Everything the request waits on (the queue, the body, the upstream
 * exchange, a slow client) listens to it, so one call ends all of it; the first stop wins.
 *
 * What runs for every request listens through `onStop`; `signal` (an AbortSignal, for APIs that
 * take one) is made only when first read. An AbortController and its listeners cost about 10 us
 * of CPU per request (micro-benchmark), a fair share of the proxy's own work on a short request.
 */
export class RequestScope implements Stoppable {
  #controller: AbortController | undefined;
  #reason: Stopped | undefined;
  #listeners: StopListener[] = [];

  /** Aborted with the Stopped reason when the scope stops (made on first read). */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Why the request was stopped; undefined while it runs. */
  get stopped(): GatewayError | undefined {
    return this.#reason?.error;
  }

  /** The Stopped reason (what `signal.reason` holds); undefined while it runs. */
  get reason(): Stopped | undefined {
    return this.#reason;
  }

  /** True when the client went away (nothing more can be sent to it). */
  get clientGone(): boolean {
    return isClientGone(this.stopped);
  }

  /** Calls `listener` when the scope stops (never if it has stopped already: check `stopped` first). */
  onStop(listener: StopListener): void {
    this.#listeners.push(listener);
  }

  /** Removes a listener added with `onStop`. */
  offStop(listener: StopListener): void {
    const i = this.#listeners.lastIndexOf(listener);
    if (i !== -1) this.#listeners.splice(i, 1);
  }

  stop(error: GatewayError): void {
    if (this.#reason !== undefined) return;
    const reason = new Stopped(error);
    this.#reason = reason;
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const listener of listeners) listener(reason);
    this.#controller?.abort(reason);
  }
}
