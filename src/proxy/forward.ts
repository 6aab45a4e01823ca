import { once } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError, isGatewayError } from '../core/errors.js';
import { clientGoneOutcome, isClientGone, isServerFault, type Decision, type Outcome, type RequestHandle } from '../gateway/index.js';
import { flushHeaders, type ClientRequest, type ClientResponse } from './client.js';
import { decodeResponse, holdDecoded, type DecodedResponse } from '../upstream/decode.js';
import { clientResponseHeaders, upstreamRequestHeaders } from '../upstream/headers.js';
import { resetResponse, sendError } from './respond.js';
import type { Scope } from '../upstream/scope.js';
import { UpstreamAttempt, type UpstreamResponse } from '../upstream/attempt.js';
import { upstreamFailure } from '../upstream/errors.js';
import type { Deadline, Watchdog, Watched } from '../upstream/watchdog.js';

export interface ForwardInput {
  readonly req: ClientRequest;
  readonly res: ClientResponse;
  /** The request target to forward: the normalised path and the query as received. */
  readonly target: string;
  readonly handle: RequestHandle;
  readonly decision: Decision;
  readonly dispatcher: Dispatcher;
  readonly scope: Scope;
  readonly watchdog: Watchdog;
  /** True when the response must ask the client to close the connection (HTTP/1.1 while draining). */
  readonly closeConnection: () => boolean;
}

/**
 * Sends the request to the decision's endpoint and streams the answer back chunk by chunk with
 * backpressure (a slow client slows the upstream read; nothing is buffered whole), decoding a
 * compressed answer first. A failure retries once on the fallback endpoint only when the request
 * provably never reached the model server's handler (undici had not written it whole: refused,
 * unreachable, connect timeout, a kept-alive connection closed under it); anything later is not
 * repeated, since the server may have done the work. The watchdog ends exchanges that pass a
 * timeout (`decision.timeouts`, `decision.timeout`). Throws GatewayError for failures before the
 * response started; failures after it end the response (an SSE stream gets an error event, other
 * bodies are cut) and are reported in the outcome.
 */
export async function forward(input: ForwardInput, startedDeadline?: Deadline): Promise<Outcome> {
  const { req, decision, handle, scope } = input;
  const headers = upstreamRequestHeaders(req.headers, decision.headers);
  // A request already under way (a PD retry on one endpoint) keeps the deadline it started with.
  const deadline: Deadline | undefined =
    startedDeadline ?? (decision.timeout === undefined ? undefined : { at: performance.now() + decision.timeout.ms, ms: decision.timeout.ms, setting: decision.timeout.setting });
  const method = (req.method ?? 'GET') as Dispatcher.HttpMethod;
  const path = input.target;
  for (let i = 0; i < decision.endpoints.length; i++) {
    const endpoint = decision.endpoints[i] as Endpoint;
    handle.dispatched(endpoint);
    const attempt = new UpstreamAttempt(endpoint, scope.signal, decision.stream);
    const watched: Watched = { attempt, timeouts: decision.timeouts, deadline, scope };
    input.watchdog.watch(watched);
    try {
      let response: UpstreamResponse;
      try {
        // Undici's own timeouts are off (the Agent's); the watchdog applies the gateway's.
        input.dispatcher.dispatch({ origin: endpoint.origin, path, method, headers, body: decision.body ?? null }, attempt);
        response = await attempt.response;
      } catch (err) {
        const stopped = scope.stopped;
        if (isClientGone(stopped)) return clientGoneOutcome(0);
        if (stopped !== undefined) throw stopped;
        const failure = upstreamFailure(err, endpoint);
        // Only a server's failure is worth another server (a request undici refused fails the same everywhere).
        if (!attempt.requestSent && i + 1 < decision.endpoints.length && isServerFault(failure.code)) {
          handle.attemptFailed(failure);
          continue;
        }
        throw failure;
      }
      const decoded = decodeResponse(response.headers, response.body);
      if (decoded.decoded && !decision.stream && !isEventStream(decoded.headers['content-type'])) {
        // A compressed whole answer is decoded before its status goes out: a bomb or a corrupt
        // body gets a 502, not a 200 cut short.
        let held: Buffer[];
        try {
          held = await holdDecoded(decoded.body);
        } catch (err) {
          decoded.body.destroy();
          const stopped = scope.stopped;
          if (isClientGone(stopped)) return clientGoneOutcome(0);
          throw stopped ?? upstreamFailure(err, endpoint);
        }
        return await relay(input, attempt, response.status, decoded, held);
      }
      return await relay(input, attempt, response.status, decoded, decoded.body);
    } finally {
      input.watchdog.unwatch(watched);
    }
  }
  throw new GatewayError('no_ready_endpoint', 'no endpoint to try');
}

function isEventStream(contentType: string | undefined): boolean {
  return contentType?.toLowerCase().startsWith('text/event-stream') === true;
}

/**
 * Streams an upstream answer to the client through the core's response hooks. `chunks` is the
 * decoded body (a caller that already read its first chunk passes the rest behind it). `name`
 * words an upstream failure mid-body for the client (a PD pair names the decode leg).
 */
export async function relay(
  input: ForwardInput,
  attempt: UpstreamAttempt,
  status: number,
  decoded: DecodedResponse,
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  name: (failure: GatewayError) => GatewayError = (failure) => failure,
): Promise<Outcome> {
  const { res, handle, scope, decision } = input;
  const upstream = { status };
  const plan = handle.responseStarted(upstream.status, decoded.headers);
  attempt.streaming = plan.sse || decision.stream;
  const out: OutgoingHttpHeaders = clientResponseHeaders(decoded.headers, plan.headers);
  if (input.closeConnection()) out['connection'] = 'close';
  res.writeHead(upstream.status, out);
  flushHeaders(res);
  // Both response kinds are Writables; the union's overloaded `write` is not callable as one.
  const sink: Writable = res;
  let bytesOut = 0;
  try {
    for await (const received of chunks) {
      // A body the gateway cannot decode passes through unread (it would read garbage).
      let chunk = received;
      if (decoded.readable) chunk = handle.responseData(received);
      else handle.firstByte();
      if (chunk.length === 0) continue;
      bytesOut += chunk.length;
      if (!sink.write(chunk)) {
        // The client is the slow side now: upstream silence is not the server's fault.
        attempt.waitingForClient = true;
        attempt.waitingSince = performance.now();
        await once(sink, 'drain', { signal: scope.signal });
        attempt.waitingForClient = false;
        attempt.lastDataAt = performance.now();
      }
    }
    const rest = decoded.readable ? handle.responseEnd() : undefined;
    if (rest !== undefined) {
      bytesOut += rest.length;
      sink.write(rest);
    }
    res.end();
    // The last bytes wait for a client that stopped reading: its connection is not kept forever.
    if (sink.writableLength > 0) closeIfStalled(res, decision.timeouts.clientStallMs);
    return { status: upstream.status, bytesOut };
  } catch (err) {
    decoded.body.destroy();
    const stopped = scope.stopped;
    if (isClientGone(stopped)) return clientGoneOutcome(bytesOut);
    if (stopped?.code === 'client_stalled') {
      // Nothing more can reach a client that reads nothing: close its connection (HTTP/2: its stream).
      resetResponse(res, 'abandoned');
      return { status: 499, bytesOut, interrupted: 'client_stalled', detail: stopped.message };
    }
    // The core's own verdict on the body (a stream ended mid-event) is already a GatewayError.
    const failure = stopped ?? name(isGatewayError(err) ? err : upstreamFailure(err, attempt.endpoint));
    if (stopped === undefined && handle.streamDone) {
      // The stream's `[DONE]` already reached the client: its answer is whole, only the model
      // server's connection broke after it. End the stream as it is (an error event after [DONE]
      // would be read by no one, or break a client); the log line still says what happened.
      res.end();
      return { status: upstream.status, bytesOut, interrupted: failure.code, detail: failure.message };
    }
    sendError(res, failure, { requestId: handle.id, sse: plan.sse });
    return { status: upstream.status, bytesOut, interrupted: failure.code, detail: failure.message };
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
