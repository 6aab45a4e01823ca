import { once } from 'node:events';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Writable } from 'node:stream';
import { isGatewayError, type GatewayError } from '../core/errors.js';
import { clientGoneOutcome, isClientGone, type Decision, type Outcome, type RequestHandle } from '../gateway/index.js';
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
