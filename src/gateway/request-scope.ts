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

/**
 * One request's life on a data plane (the proxy, the endpoint picker, the sidecar), from the first header to the last byte sent. Whatever
 * ends it early stops it with the error that says why: the client leaving (`client_gone`), a
 * timeout of the upstream watchdog (`upstream_timeout`), the end of the shutdown grace period
 * (`gateway_shutting_down`). Everything the request waits on (the queue, the body, the upstream
 * exchange, a slow client) listens to `signal`, so one call ends all of it; the first stop wins.
 */
export class RequestScope implements Stoppable {
  readonly #controller = new AbortController();

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Why the request was stopped; undefined while it runs. */
  get stopped(): GatewayError | undefined {
    const reason: unknown = this.#controller.signal.reason;
    return reason instanceof Stopped ? reason.error : undefined;
  }

  /** True when the client went away (nothing more can be sent to it). */
  get clientGone(): boolean {
    return isClientGone(this.stopped);
  }

  stop(error: GatewayError): void {
    if (!this.#controller.signal.aborted) this.#controller.abort(new Stopped(error));
  }
}
