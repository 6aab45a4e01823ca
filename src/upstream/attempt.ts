import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { util, type Dispatcher } from 'undici';
import type { Endpoint } from '../core/endpoint.js';
import type { StopSource } from './scope.js';

/**
 * An upstream answer: status, headers, and the body as it arrives (with backpressure). `body` is
 * made when first read; an answer taken with `UpstreamAttempt.take` never makes one.
 */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
}

/**
 * Where an answer's body goes when it is taken straight from the exchange (`take`), with no
 * stream in between: each call comes from undici's own callback, in order, and after `end` or
 * `error` none comes.
 */
export interface BodySink {
  /** A chunk as it arrived; false pauses the exchange until `UpstreamAttempt.resume`. */
  data(chunk: Buffer): boolean;
  /** The body ended whole. */
  end(): void;
  /** The exchange failed (or was aborted) after its headers. */
  error(err: Error): void;
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
 * The scope's stop (`scope`) aborts the attempt at any point: before the answer the response
 * promise rejects with its reason at once (even while undici is still connecting), after it the
 * body errors.
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
  readonly #scope: StopSource;
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  /** The body's reader, once there is one: a stream (`response.body`) or a sink (`take`). */
  #body: Readable | undefined;
  #sink: BodySink | undefined;
  /** Chunks that arrived before the body had a reader, and how the exchange ended meanwhile. */
  #early: Buffer[] = [];
  #earlyBytes = 0;
  #earlyEnd: { readonly error: Error | undefined } | undefined;
  #settle: { resolve: (r: UpstreamResponse) => void; reject: (e: unknown) => void } | undefined;
  #done = false;

  /** `startedAt`: when it was dispatched (`performance.now()`; tests pass their own). */
  constructor(endpoint: Endpoint, scope: StopSource, streaming: boolean, startedAt = performance.now()) {
    this.endpoint = endpoint;
    this.startedAt = startedAt;
    this.lastDataAt = startedAt;
    this.#scope = scope;
    this.streaming = streaming;
    this.response = new Promise((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    // Callers may attach their handlers later: a rejection here is always read by `await`.
    this.response.catch(() => undefined);
    // A scope stopped already calls no listener: settle now (onConnect aborts undici).
    if (scope.stopped !== undefined) this.#onAbort();
    else scope.onStop(this.#onAbort);
  }

  /** Undici is ready to write the request on a connection; `abort` cancels it from now on. */
  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    if (this.#scope.stopped !== undefined) abort(this.#reason());
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
    const attempt = this;
    this.#settle?.resolve({
      status: statusCode,
      headers: util.parseHeaders(rawHeaders) as IncomingHttpHeaders,
      get body(): Readable {
        return attempt.#stream();
      },
    });
    this.#settle = undefined;
    return true;
  }

  onData(chunk: Buffer): boolean {
    // A taken body's reader times the pieces of one socket read once (`dataArrived`), not each.
    if (this.#sink !== undefined) return this.#sink.data(chunk);
    this.dataArrived(performance.now());
    if (this.#body !== undefined) return this.#body.push(chunk);
    // No reader yet (the answer is on its way to one): held, within the stream's bound.
    this.#early.push(chunk);
    this.#earlyBytes += chunk.length;
    return this.#earlyBytes < BODY_HIGH_WATER_MARK;
  }

  onComplete(): void {
    this.#finish();
    if (this.#sink !== undefined) this.#sink.end();
    else if (this.#body !== undefined) this.#body.push(null);
    else this.#earlyEnd = { error: undefined };
  }

  onError(err: Error): void {
    this.#finish();
    if (this.#settle !== undefined) {
      this.#settle.reject(err);
      this.#settle = undefined;
    } else if (this.#sink !== undefined) {
      this.#sink.error(err);
    } else if (this.#body !== undefined) {
      this.#body.destroy(err);
    } else {
      this.#earlyEnd = { error: err };
    }
  }

  /**
   * Takes the answer's body straight from the exchange (instead of `response.body`): what already
   * arrived goes to `sink` now, the rest as it arrives, with no stream, promise or tick between
   * the socket and the sink. The data plane's relay of an uncompressed answer reads it this way.
   * The sink times the pieces (`dataArrived`) for the watchdog.
   */
  take(sink: BodySink): void {
    if (this.#sink !== undefined || this.#body !== undefined) throw new Error('the answer already has a reader');
    this.#sink = sink;
    const early = this.#early;
    this.#early = [];
    this.#earlyBytes = 0;
    let more = true;
    for (const chunk of early) {
      // A sink that said "enough" resumes the exchange itself when it is ready again.
      const ok = sink.data(chunk);
      more &&= ok;
    }
    const end = this.#earlyEnd;
    if (end !== undefined) {
      if (end.error === undefined) sink.end();
      else sink.error(end.error);
    } else if (more) {
      this.resume();
    }
  }

  /** Body bytes arrived at `now` (`performance.now()`): the idle timeouts count from there. */
  dataArrived(now: number): void {
    this.lastDataAt = now;
    this.firstDataAt ??= now;
  }

  /** Resumes an exchange paused by a sink's `data` returning false. */
  resume(): void {
    if (!this.#done) this.#resume?.();
  }

  /** Ends the exchange (the reader of a taken body gave up: client gone, timeout, a refused event). */
  cancel(err: Error): void {
    if (!this.#done) this.#abort?.(err);
  }

  /** The body as a stream, made on first use with what already arrived. */
  #stream(): Readable {
    if (this.#body !== undefined) return this.#body;
    if (this.#sink !== undefined) throw new Error('the answer was taken by a sink');
    const body = new Readable({
      highWaterMark: BODY_HIGH_WATER_MARK,
      read: () => this.resume(),
      destroy: (err, callback) => {
        // The reader gave up (client gone, timeout): stop the upstream exchange too.
        if (!this.#done) this.#abort?.(err ?? new Error('upstream body discarded'));
        callback(err);
      },
    });
    this.#body = body;
    for (const chunk of this.#early) body.push(chunk);
    this.#early = [];
    this.#earlyBytes = 0;
    const end = this.#earlyEnd;
    if (end !== undefined) {
      if (end.error === undefined) body.push(null);
      else body.destroy(end.error);
    }
    return body;
  }

  #finish(): void {
    this.#done = true;
    this.#scope.offStop(this.#onAbort);
  }

  #reason(): Error {
    return this.#scope.reason ?? new Error('aborted');
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
