import { once } from 'node:events';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import { isGatewayError, type GatewayError } from '../core/errors.js';
import { clientGoneOutcome, isClientGone, type Decision, type Outcome, type RequestHandle, type ResponsePlan } from '../gateway/index.js';
import type { UpstreamAttempt } from './attempt.js';
import { flushHeaders, type ClientResponse } from './client-response.js';
import type { DecodedResponse } from './decode.js';
import { upstreamFailure } from './errors.js';
import { clientResponseHeaders } from './headers.js';
import { resetResponse, sendError } from './respond.js';
import type { Scope } from './scope.js';

/** What relaying an answer needs from the data plane that received the request (the proxy, the PD sidecar). */
export interface RelayInput {
  readonly res: ClientResponse;
  readonly handle: RequestHandle;
  readonly decision: Decision;
  /** The exchange's scope: its stop (client gone, a timeout, shutdown) ends the relay. */
  readonly scope: Scope;
  /** True when the response must ask the client to close the connection (HTTP/1.1 while draining). */
  readonly closeConnection: () => boolean;
}

/** Words an upstream failure mid-body for the client (a PD pair names the decode leg). */
type Namer = (failure: GatewayError) => GatewayError;

const asIs: Namer = (failure) => failure;

/**
 * Streams an upstream answer to the client through the core's response hooks. `chunks` is the
 * decoded body (a caller that already read its first chunk passes the rest behind it). `name`
 * words an upstream failure mid-body for the client (a PD pair names the decode leg).
 */
export async function relay(
  input: RelayInput,
  attempt: UpstreamAttempt,
  status: number,
  decoded: DecodedResponse,
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  name: Namer = asIs,
): Promise<Outcome> {
  const answer = new Answer(input, attempt, status, decoded.headers, decoded.readable, name);
  try {
    for await (const received of chunks) {
      if (!answer.chunk(received)) await answer.drained();
    }
    return answer.end();
  } catch (err) {
    decoded.body.destroy();
    return answer.failed(err);
  }
}

/**
 * `relay` for an uncompressed answer taken straight from the exchange (UpstreamAttempt.take),
 * with no stream and no promise per chunk between undici and the client. The body pieces undici
 * parses out of one socket read (an HTTP chunk each: one SSE event each, as servers write them)
 * go to the client as one chunk, a microtask later, as a stream's reader gets them; the end of
 * the answer goes out in the same tick as its last bytes (one write to the client, not two).
 * Backpressure pauses the exchange until the client drains.
 */
export function relayTaken(input: RelayInput, attempt: UpstreamAttempt, status: number, headers: IncomingHttpHeaders): Promise<Outcome> {
  // The status and headers go out with the body pieces of the same socket read, in one write to
  // the client (a short answer usually arrives whole in one read: headers, body and end), or on
  // their own at the end of that read when no piece came with them (a server that sends its
  // headers before its first token). One write fewer per request than sending them at once, and
  // the client sees them in the same event-loop turn either way.
  const answer = new Answer(input, attempt, status, headers, true, asIs, false);
  return new Promise((resolve) => {
    let settled = false;
    /** Pieces received and not yet relayed, and whether a flush is queued (one is, for the headers). */
    let pending: Buffer[] = [];
    let queued = true;
    queueMicrotask(() => flush());
    /** The client is full: relaying waits for its drain, the exchange is paused. */
    let waiting = false;
    const settle = (outcome: Outcome): void => {
      settled = true;
      if (waiting) input.res.off('drain', onDrain);
      resolve(outcome);
    };
    const fail = (err: unknown): void => {
      if (settled) return;
      // Whatever failed, the exchange ends with the request (a no-op once it ended).
      attempt.cancel(err instanceof Error ? err : new Error(String(err)));
      settle(answer.failed(err));
    };
    /** Relays what is pending; `last`: the body ended, so a full client is not waited for (the response holds the bytes). */
    const flush = (last = false): void => {
      queued = false;
      if (settled) return;
      if (pending.length === 0) {
        // At the end, the response's end sends them (with its last bytes, in one write).
        if (!last) answer.sendHeaders();
        return;
      }
      if (waiting && !last) return;
      // The pieces came in the socket read this microtask follows (at the end: in this one); a
      // client being waited for has the watchdog's attention instead.
      if (!waiting) attempt.dataArrived(performance.now());
      const chunk = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending);
      pending = [];
      try {
        if (answer.chunk(chunk) || last) return;
      } catch (err) {
        fail(err);
        return;
      }
      // The client is full: the exchange stays paused until it drains. A stop meanwhile fails
      // the exchange (`error` below), which ends the wait.
      waiting = true;
      input.res.once('drain', onDrain);
    };
    const onDrain = (): void => {
      waiting = false;
      if (settled) return;
      answer.drainedNow();
      flush();
      if (!waiting) attempt.resume();
    };
    attempt.take({
      data: (chunk) => {
        if (settled) return false;
        pending.push(chunk);
        if (!queued) {
          queued = true;
          queueMicrotask(flush);
        }
        return !waiting;
      },
      end: () => {
        if (settled) return;
        flush(true);
        if (settled) return;
        let outcome: Outcome;
        try {
          outcome = answer.end();
        } catch (err) {
          fail(err);
          return;
        }
        settle(outcome);
      },
      error: fail,
    });
  });
}

/** One answer on its way to the client: the status and headers at once, then its body chunk by chunk. */
class Answer {
  readonly #input: RelayInput;
  readonly #attempt: UpstreamAttempt;
  readonly #status: number;
  readonly #readable: boolean;
  readonly #name: Namer;
  readonly #plan: ResponsePlan;
  /** Both response kinds are Writables; the union's overloaded `write` is not callable as one. */
  readonly #sink: Writable;
  /**
   * The status line's headers while they are held back (`sendNow` false) and nothing has gone to
   * the client: an answer that fails before its first byte can still be refused whole (a 502 in
   * the gateway's error body, not a connection closed on an empty reply).
   */
  #held: OutgoingHttpHeaders | undefined;
  #bytesOut = 0;

  /** `sendNow`: the status and headers are sent at once; else with the first body bytes or by `sendHeaders`. */
  constructor(input: RelayInput, attempt: UpstreamAttempt, status: number, headers: IncomingHttpHeaders, readable: boolean, name: Namer, sendNow = true) {
    this.#input = input;
    this.#attempt = attempt;
    this.#status = status;
    this.#readable = readable;
    this.#name = name;
    const { res, handle, decision } = input;
    const plan = handle.responseStarted(status, headers);
    this.#plan = plan;
    attempt.streaming = plan.sse || decision.stream;
    const out: OutgoingHttpHeaders = clientResponseHeaders(headers, plan.headers);
    if (input.closeConnection()) out['connection'] = 'close';
    this.#sink = res;
    if (!sendNow) {
      this.#held = out;
      return;
    }
    res.writeHead(status, out);
    flushHeaders(res);
  }

  /** Commits the held status and headers to the response (they go out with its next write). */
  #commit(): void {
    if (this.#held === undefined) return;
    this.#input.res.writeHead(this.#status, this.#held);
    this.#held = undefined;
  }

  /**
   * Sends a stream's status and headers now if nothing has sent them yet (a body write or the end
   * sends them too), so its client knows the stream began. A whole answer's wait for its first
   * body bytes: a failure before them is then refused whole (`failed`).
   */
  sendHeaders(): void {
    if (!this.#plan.sse && this.#held !== undefined) return;
    this.#commit();
    if (!this.#input.res.headersSent) flushHeaders(this.#input.res);
  }

  /** One upstream chunk to the client; false when the client is full (wait for `drained`). Throws the core's verdict on the body. */
  chunk(received: Buffer): boolean {
    const { handle } = this.#input;
    // A body the gateway cannot decode passes through unread (it would read garbage).
    let chunk = received;
    if (this.#readable) chunk = handle.responseData(received);
    else handle.firstByte();
    if (chunk.length === 0) return true;
    this.#commit();
    this.#bytesOut += chunk.length;
    if (this.#sink.write(chunk)) return true;
    // The client is the slow side now: upstream silence is not the server's fault.
    this.#attempt.waitingForClient = true;
    this.#attempt.waitingSince = performance.now();
    return false;
  }

  /** Resolves when the client has drained; rejects when the request is stopped meanwhile. */
  async drained(): Promise<void> {
    await once(this.#sink, 'drain', { signal: this.#input.scope.signal });
    this.drainedNow();
  }

  /** The client has drained: upstream silence counts against the server again. */
  drainedNow(): void {
    this.#attempt.waitingForClient = false;
    this.#attempt.lastDataAt = performance.now();
  }

  /** The upstream body ended: held bytes out, the response ended. Throws the core's verdict (a stream cut mid-event). */
  end(): Outcome {
    const { res, handle, decision } = this.#input;
    const rest = this.#readable ? handle.responseEnd() : undefined;
    this.#commit();
    if (rest !== undefined) {
      this.#bytesOut += rest.length;
      this.#sink.write(rest);
    }
    res.end();
    // The last bytes wait for a client that stopped reading: its connection is not kept forever.
    if (this.#sink.writableLength > 0) closeIfStalled(res, decision.timeouts.clientStallMs);
    return { status: this.#status, bytesOut: this.#bytesOut };
  }

  /**
   * The answer failed after its status went out: the outcome, and the client's response ended as
   * it must be (an SSE error event, a reset, or nothing more for a client that left).
   */
  failed(err: unknown): Outcome {
    const { res, handle, scope } = this.#input;
    const bytesOut = this.#bytesOut;
    const stopped = scope.stopped;
    if (isClientGone(stopped)) return clientGoneOutcome(bytesOut);
    if (stopped?.code === 'client_stalled') {
      // Nothing more can reach a client that reads nothing: close its connection (HTTP/2: its stream).
      resetResponse(res, 'abandoned');
      return { status: 499, bytesOut, interrupted: 'client_stalled', detail: stopped.message };
    }
    // The core's own verdict on the body (a stream ended mid-event) is already a GatewayError.
    const failure = stopped ?? this.#name(isGatewayError(err) ? err : upstreamFailure(err, this.#attempt.endpoint));
    if (this.#held !== undefined && !this.#plan.sse) {
      // Nothing of a whole (non-SSE) answer reached the client: it is refused whole, with the
      // failure's status, instead of a connection closed on an empty reply. A stream keeps its
      // status and ends with an SSE error event, as a stream cut later does.
      this.#held = undefined;
      sendError(res, failure, { requestId: handle.id, sse: false, close: this.#input.closeConnection() });
      return { status: failure.status, bytesOut: 0, interrupted: failure.code, detail: failure.message };
    }
    this.#commit();
    if (stopped === undefined && handle.streamDone) {
      // The stream's `[DONE]` already reached the client: its answer is whole, only the model
      // server's connection broke after it. End the stream as it is (an error event after [DONE]
      // would be read by no one, or break a client); the log line still says what happened.
      res.end();
      return { status: this.#status, bytesOut, interrupted: failure.code, detail: failure.message };
    }
    sendError(res, failure, { requestId: handle.id, sse: this.#plan.sse });
    return { status: this.#status, bytesOut, interrupted: failure.code, detail: failure.message };
  }
}

/** Destroys `res` unless its last bytes reach the client within `ms` (it finishes or closes first). */
function closeIfStalled(res: ClientResponse, ms: number): void {
  const timer = setTimeout(() => resetResponse(res, 'abandoned'), ms);
  timer.unref();
  const clear = (): void => clearTimeout(timer);
  res.once('finish', clear);
  res.once('close', clear);
}
