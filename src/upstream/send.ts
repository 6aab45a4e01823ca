import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import { clientGoneOutcome, isClientGone, isServerFault, requestDeadline, type Outcome } from '../gateway/index.js';
import { UpstreamAttempt, type UpstreamResponse } from './attempt.js';
import { decodeResponse, holdDecoded, identityHeaders } from './decode.js';
import { upstreamFailure } from './errors.js';
import { upstreamRequestHeaders } from './headers.js';
import { relay, relayTaken, type RelayInput } from './relay.js';
import type { Deadline, Watchdog, Watched } from './watchdog.js';

/** A request for one or more endpoints in order (the decision's), and where its answer goes. */
export interface SendInput extends RelayInput {
  /** The client's method and headers (the decision's header edits apply to them). */
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  /** The request target to send: the normalised path and the query as received. */
  readonly target: string;
  readonly dispatcher: Dispatcher;
  readonly watchdog: Watchdog;
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
export async function sendToEndpoints(input: SendInput, startedDeadline?: Deadline): Promise<Outcome> {
  const { decision, handle, scope } = input;
  const headers = upstreamRequestHeaders(input.headers, decision.headers);
  // A request already under way (a PD retry on one endpoint) keeps the deadline it started with.
  const deadline = startedDeadline ?? requestDeadline(decision.timeout);
  const method = input.method as Dispatcher.HttpMethod;
  const path = input.target;
  for (let i = 0; i < decision.endpoints.length; i++) {
    const endpoint = decision.endpoints[i] as Endpoint;
    handle.dispatched(endpoint);
    const attempt = new UpstreamAttempt(endpoint, scope, decision.stream);
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
      // Uncompressed (what the gateway asks for): the body goes from the exchange to the client directly.
      const identity = identityHeaders(response.headers);
      if (identity !== undefined) return await relayTaken(input, attempt, response.status, identity);
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
