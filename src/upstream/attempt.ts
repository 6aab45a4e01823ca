import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { util, type Dispatcher } from 'undici';
import type { Endpoint } from '../core/endpoint.js';

/** An upstream answer: status, headers, and the body as it arrives (with backpressure). */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
}

/** Bytes of upstream body buffered before the model server's connection is paused. */
const BODY_HIGH_WATER_MARK = 64 * 1024;

/**
 * One attempt to send a request to one endpoint, as an undici dispatch handler. Besides turning
 * the exchange into a status, headers and a readable body, it records what the watchdog and the
 * retry decision need:
 *
 * - `requestSent`: undici has written the whole request to the connection (`onRequestSent`, which
 *   undici calls only on handlers in its original form, hence the legacy callback style). A
 *   failure before that point never reached the model server's handler: no server starts on a
 *   request it has not read whole. Connection refused, unreachable and connect timeouts fail
 *   here, and so does a kept-alive connection the server closed before the request was written.
 * - `startedAt`, `headersAt`, `lastDataAt`: when the attempt was dispatched, when its response
 *   headers and its latest body bytes arrived (`performance.now()`), for the phase timeouts.
 * - `waitingForClient`, `waitingSince`: the exchange is paused because the client reads slowly
 *   (since then); upstream silence is then not the model server's fault, and a wait past the
 *   client stall timeout ends the request as the client's.
 *
 * `signal` aborts the attempt at any point: before the answer the response promise rejects with
 * its reason at once (even while undici is still connecting), after it the body errors.
 */
export class UpstreamAttempt implements Dispatcher.DispatchHandler {
  readonly endpoint: Endpoint;
  readonly response: Promise<UpstreamResponse>;
  readonly startedAt: number;
  headersAt: number | undefined;
  /** When the first body bytes arrived (`performance.now()`). */
  firstDataAt: number | undefined;
  lastDataAt: number;
  requestSent = false;
  waitingForClient = false;
  /** When the current wait for the client began (`performance.now()`), while `waitingForClient`. */
  waitingSince = 0;
  /** The response is streamed (SSE, or the client asked for a stream): idle time counts per chunk. */
  streaming: boolean;
  readonly #signal: AbortSignal;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #body: Readable | undefined;
  #settle: { resolve: (r: UpstreamResponse) => void; reject: (e: unknown) => void } | undefined;
  #done = false;

  /** `startedAt`: when it was dispatched (`performance.now()`; tests pass their own). */
  constructor(endpoint: Endpoint, signal: AbortSignal, streaming: boolean, startedAt = performance.now()) {
    this.endpoint = endpoint;
    this.startedAt = startedAt;
    this.lastDataAt = startedAt;
    this.#signal = signal;
    this.streaming = streaming;
    this.response = new Promise((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    // Callers may attach their handlers later: a rejection here is always read by `await`.
    this.response.catch(() => undefined);
    // A signal aborted already fires no 'abort' event: settle now (onConnect aborts undici).
    if (signal.aborted) this.#onAbort();
    else signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Undici is ready to write the request on a connection; `abort` cancels it from now on. */
  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#signal.aborted) abort(this.#reason());
  }

  /** Called by undici once the whole request (headers and body) was written to the connection. */
  onRequestSent(): void {
    this.requestSent = true;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // 1xx informational answers precede the real one.
    if (statusCode < 200) return true;
    this.headersAt = performance.now();
    this.lastDataAt = this.headersAt;
    this.#resume = resume;
    const body = new Readable({
      highWaterMark: BODY_HIGH_WATER_MARK,
      read: () => this.#resume?.(),
      destroy: (err, callback) => {
        // The reader gave up (client gone, timeout): stop the upstream exchange too.
        if (!this.#done) this.#abort?.(err ?? new Error('upstream body discarded'));
        callback(err);
      },
    });
    this.#body = body;
    this.#settle?.resolve({ status: statusCode, headers: util.parseHeaders(rawHeaders) as IncomingHttpHeaders, body });
    this.#settle = undefined;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.lastDataAt = performance.now();
    this.firstDataAt ??= this.lastDataAt;
    return this.#body?.push(chunk) ?? true;
  }

  onComplete(): void {
    this.#finish();
    this.#body?.push(null);
  }

  onError(err: Error): void {
    this.#finish();
    if (this.#settle !== undefined) {
      this.#settle.reject(err);
      this.#settle = undefined;
    } else {
      this.#body?.destroy(err);
    }
  }

  #finish(): void {
    this.#done = true;
    this.#signal.removeEventListener('abort', this.#onAbort);
  }

  #reason(): Error {
    const reason: unknown = this.#signal.reason;
    return reason instanceof Error ? reason : new Error('aborted');
  }

  readonly #onAbort = (): void => {
    const reason = this.#reason();
    // Undici may still be connecting: the caller learns now, the exchange ends when it can.
    if (this.#settle !== undefined) {
      this.#settle.reject(reason);
      this.#settle = undefined;
    }
    this.#abort?.(reason);
  };
}
