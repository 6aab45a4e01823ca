import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Endpoint } from '../core/endpoint.js';
import { asGatewayError, GatewayError } from '../core/errors.js';
import {
  BodyCollector,
  clientGone,
  isClientGone,
  parsePrefillerHostPort,
  parseRequestTarget,
  poolLimitName,
  refuseDeclaredOver,
  RequestScope,
  type BodyReservation,
  type Decision,
  type Gateway,
  type InFlight,
  type Outcome,
  type RequestDeadline,
} from '../gateway/index.js';
import { closedEarly } from '../upstream/client-response.js';
import { readClientBody } from '../upstream/client-body.js';
import { runPd } from '../upstream/pd-legs.js';
import { relay, type RelayInput } from '../upstream/relay.js';
import { sendError, sendJson } from '../upstream/respond.js';
import type { Scope } from '../upstream/scope.js';
import { sendToEndpoints } from '../upstream/send.js';
import type { Watchdog } from '../upstream/watchdog.js';
import { viaWith } from './loop.js';

/** What a pinned request needs from the sidecar. */
export interface PinnedDeps {
  readonly gateway: Gateway;
  /** The decode pod's InferencePool, `namespace/name`: its prefill endpoints are the allow-list. */
  readonly poolKey: string;
  readonly decode: Endpoint;
  readonly dispatcher: Dispatcher;
  readonly watchdog: Watchdog;
  readonly inFlight: InFlight;
}

/**
 * A request with `x-prefiller-host-port`: the endpoint picker disaggregated it and chose this
 * pod's decode server and the named prefill. The core checks the prefill against the pool's
 * prefill endpoints and plans the pair (`handle.decidePinned`); the upstream layer's leg runner
 * carries both legs as the core's PD machine directs (SGLang: both at once with the bootstrap
 * fields; vLLM: prefill, then decode with its `kv_transfer_params`), the decode leg on the local
 * decode server, and its answer is relayed with backpressure. The body is read within the pool's
 * body limit and the body budget, under the upload timeouts. Refusals are the core's OpenAI-style
 * answers; the request ends in one `Request Handled` line.
 */
export async function servePinned(deps: PinnedDeps, req: IncomingMessage, res: ServerResponse, prefiller: string | string[]): Promise<void> {
  const { gateway } = deps;
  const incomingId = req.headers['x-request-id'];
  // Normalised before anything uses it (request-path.ts); a refused target fails below.
  const target = parseRequestTarget(req.url ?? '/');
  const handle = gateway.begin({
    ...(typeof incomingId === 'string' ? { requestId: incomingId } : {}),
    method: req.method ?? 'POST',
    path: target instanceof GatewayError ? (req.url ?? '/').split('?')[0] ?? '/' : target.path,
    headers: req.headers,
    ...(req.socket.remoteAddress === undefined ? {} : { clientAddress: req.socket.remoteAddress }),
  });
  const scope = new RequestScope();
  deps.inFlight.add(scope);
  const onClose = (): void => {
    if (closedEarly(res)) scope.stop(clientGone());
  };
  res.on('close', onClose);
  const closeConnection = (): boolean => deps.inFlight.draining;
  let stream = false;
  let reservation: BodyReservation | undefined;
  let bodyRead = false;
  try {
    if (target instanceof GatewayError) throw target;
    if (deps.inFlight.draining) throw new GatewayError('gateway_shutting_down', 'the sidecar is shutting down; retry the request');
    handle.routePool(deps.poolKey);
    // A malformed header is refused before the body is read (the allow-list is checked with the body's plan).
    parsePrefillerHostPort(prefiller);
    const limit = gateway.poolBodyLimit(deps.poolKey);
    const declared = Number(req.headers['content-length']);
    // A declared length over the limit is refused before a byte is read.
    refuseDeclaredOver(Number.isSafeInteger(declared) ? declared : undefined, limit, poolLimitName(deps.poolKey));
    reservation = gateway.uploads.budget.reserve(Number.isSafeInteger(declared) && declared >= 0 ? declared : 0);
    // Read as the proxy reads bodies (upload timeouts; a client that leaves mid-body is 499, never a
    // half body parsed).
    const body = await readClientBody(req, new BodyCollector(limit, reservation, { what: poolLimitName(deps.poolKey) }), scope, gateway.uploads.timeouts);
    bodyRead = true;
    const decision = handle.decidePinned(body.length === 0 ? undefined : body, prefiller, deps.decode);
    stream = decision.stream;
    const relayInput = (exchange: Scope, d: Decision): RelayInput => ({ res, handle, decision: d, scope: exchange, closeConnection });
    const outcome = await runPd({
      handle,
      decision,
      method: req.method ?? 'POST',
      target: target.target,
      // The legs carry the sidecar's Via entry: a decode URL that leads to a sidecar ends there (loop.ts).
      headers: { ...req.headers, via: viaWith(req.headers['via']) },
      dispatcher: deps.dispatcher,
      watchdog: deps.watchdog,
      scope,
      relay: (attempt, status, decoded, chunks, exchange, name) => relay(relayInput(exchange, decision), attempt, status, decoded, chunks, name),
      answer: (status, answer) => sendJson(res, status, answer, handle.id, closeConnection()),
      single: (d, deadline) => sendSingle(deps, req, target.target, relayInput(scope, d), d, deadline),
    });
    handle.finished(outcome);
  } catch (err) {
    const failure = scope.stopped ?? asGatewayError(err);
    if (!isClientGone(failure)) {
      // A refusal before the whole upload was read leaves the rest unread: the connection closes after it.
      const close = !bodyRead || closeConnection();
      sendError(res, failure, { requestId: handle.id, sse: stream, close });
      if (!bodyRead) res.once('finish', () => req.destroy());
    }
    handle.failed(failure);
  } finally {
    reservation?.release();
    res.off('close', onClose);
    deps.inFlight.delete(scope);
  }
}

/**
 * The request on one endpoint (the local decode server): a pinned request the core does not
 * disaggregate (no JSON body, a pool whose PD protocol it does not speak), sent and relayed as the
 * proxy sends any request (upstream/send.ts: timeouts watched, a compressed whole answer decoded
 * within bounds before its status goes out).
 */
function sendSingle(deps: PinnedDeps, req: IncomingMessage, path: string, input: RelayInput, decision: Decision, deadline: RequestDeadline | undefined): Promise<Outcome> {
  const single = decision.endpoints.length > 0 ? decision : { ...decision, endpoints: [deps.decode] };
  return sendToEndpoints({ ...input, decision: single, method: req.method ?? 'POST', headers: { ...req.headers, via: viaWith(req.headers['via']) }, target: path, dispatcher: deps.dispatcher, watchdog: deps.watchdog }, deadline);
}
