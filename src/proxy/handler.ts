import type { Dispatcher } from 'undici';
import { asGatewayError, GatewayError } from '../core/errors.js';
import {
  clientGone,
  hostProblem,
  isClientGone,
  parseRequestTarget,
  refuseDeclaredOver,
  RequestScope,
  httpVersionProblem,
  requestLineAnswer,
  transferCodingProblem,
  type BodyReservation,
  type Gateway,
  type InFlight,
  type RequestTarget,
  type RouteRequest,
} from '../gateway/index.js';
import { authorityOf, closedEarly, isHttp2, type ClientRequest, type ClientResponse } from './client.js';
import { forward } from './forward.js';
import { forwardPd } from './forward-pd.js';
import { admitBody, declaredLength, readBody } from './read-body.js';
import { refuseUpload } from './refuse.js';
import { sendError, sendJson } from '../upstream/respond.js';
import { abandonedSoon } from '../upstream/client-body.js';
import type { Watchdog } from '../upstream/watchdog.js';

export interface HandlerDeps {
  /** The gateway core; undefined until it has started. */
  readonly gateway: () => Gateway | undefined;
  readonly dispatcher: Dispatcher;
  readonly watchdog: Watchdog;
  readonly inFlight: InFlight;
}

/**
 * A request handler of one listening port. `expectContinue` is true for a request that sent
 * `Expect: 100-continue` and waits for `100 Continue` before its body.
 */
export type PortHandler = (req: ClientRequest, res: ClientResponse, expectContinue: boolean) => void;

/** What routes match on: the normalised path (a refused target's raw path, for the log line only). */
function routeRequest(req: ClientRequest, target: RequestTarget | GatewayError): RouteRequest {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const raw = { path: q === -1 ? url : url.slice(0, q), query: q === -1 ? '' : url.slice(q + 1) };
  const { path, query } = target instanceof GatewayError ? raw : { path: target.path, query: target.query ?? '' };
  const authority = authorityOf(req);
  // Strip the port; keep IPv6 literals intact.
  const host = (authority.startsWith('[') ? authority.slice(0, authority.indexOf(']') + 1) : authority.split(':')[0] ?? '').toLowerCase();
  return { method: req.method ?? 'GET', path, query, host, headers: req.headers };
}

/**
 * Refusals that may come while the body is being read and leave the rest of it unread (any
 * refusal before the read began leaves the whole upload unread, whatever its code).
 */
const DURING_BODY: ReadonlySet<string> = new Set(['body_too_large', 'body_budget_exhausted', 'invalid_content_encoding']);

/** Refusals after which the connection closes: its next request cannot be trusted (a stalled upload, an ambiguous authority). */
const CLOSE_AFTER: ReadonlySet<string> = new Set(['invalid_host', 'request_body_timeout', 'unsupported_transfer_encoding', 'http_version_not_supported']);

/** HTTP/1.1 connections closing after such a refusal: requests pipelined behind it are not served. */
const closing = new WeakSet<object>();

/**
 * Builds the request handler of one listening port. The gateway core decides and accounts (its
 * request handle); this side carries bytes: it reads the body, forwards, streams the answer back
 * and sends refusals. Every request ends in exactly one `finished` or `failed` on the handle.
 */
export function createHandler(port: number, deps: HandlerDeps): PortHandler {
  return (req, res, expectContinue) => {
    void serve(port, deps, req, res, expectContinue);
  };
}

async function serve(port: number, deps: HandlerDeps, req: ClientRequest, res: ClientResponse, expectContinue: boolean): Promise<void> {
  const gateway = deps.gateway();
  const h2 = isHttp2(req);
  if (!h2 && closing.has(req.socket)) {
    req.socket.destroySoon();
    return;
  }
  // HTTP/1.1 responses ask the client to close while the gateway drains; HTTP/2 got a GOAWAY.
  const closeConnection = (): boolean => !h2 && deps.inFlight.draining;
  const incomingId = req.headers['x-request-id'];
  if (gateway === undefined) {
    sendError(res, new GatewayError('no_ready_endpoint', 'the gateway is starting'), { requestId: typeof incomingId === 'string' ? incomingId : '', sse: false, close: closeConnection() });
    return;
  }
  // Normalised before anything matches on it (request-path.ts); a refused target fails below.
  const target = parseRequestTarget(req.url ?? '/');
  const rr = routeRequest(req, target);
  const handle = gateway.begin({
    ...(typeof incomingId === 'string' ? { requestId: incomingId } : {}),
    method: rr.method,
    path: rr.path,
    headers: req.headers,
    ...(req.socket.remoteAddress === undefined ? {} : { clientAddress: req.socket.remoteAddress }),
    port,
  });
  const scope = new RequestScope();
  deps.inFlight.add(scope);
  // The client went away before the response was complete: everything the request waits on ends.
  const onClose = (): void => {
    if (closedEarly(res)) scope.stop(clientGone());
  };
  res.on('close', onClose);
  let stream = false;
  let reservation: BodyReservation | undefined;
  // Until the body read begins, a refusal must drain the upload before closing (refuse.ts).
  let reading = false;
  try {
    // Requests no model server serves (OPTIONS *, TRACE, CONNECT, other schemes) are answered
    // here; the request line is judged first, then its authority (Host) and its path.
    const version = h2 ? undefined : httpVersionProblem(req.httpVersionMajor, req.httpVersionMinor);
    if (version !== undefined) throw version;
    const line = requestLineAnswer(rr.method, req.url ?? '');
    // HTTP/1.1 needs a Host (the listener leaves that check to this line, to answer it in words).
    const ambiguous = hostProblem(req.rawHeaders, req.url ?? '/', !h2 && req.httpVersionMajor === 1 && req.httpVersionMinor === 1) ?? (h2 ? undefined : transferCodingProblem(req.headers['transfer-encoding']));
    if (ambiguous !== undefined) throw ambiguous;
    if (target instanceof GatewayError) throw target;
    if (deps.inFlight.draining) throw new GatewayError('gateway_shutting_down', 'the gateway is shutting down; retry the request (another instance will serve it)');
    if (line !== undefined) {
      res.writeHead(line.status, { ...line.headers, 'content-length': '0', 'x-request-id': handle.id, ...(closeConnection() ? { connection: 'close' } : {}) });
      res.end();
      handle.finished({ status: line.status, bytesOut: 0 });
      return;
    }
    // GET and HEAD of the gateway's own routes (`/v1/models`): a HEAD gets the GET's headers.
    const own = rr.method === 'GET' || rr.method === 'HEAD' ? gateway.modelsAnswer(port, rr.path) : undefined;
    if (own !== undefined) {
      const bytesOut = sendJson(res, own.status, own.body, handle.id, closeConnection(), rr.method === 'HEAD');
      handle.finished({ status: own.status, bytesOut });
      return;
    }
    // The body is read before routing: model-based routing matches on its model.
    const limit = handle.maxBodyBytes(port);
    // Over the limit, an unknown coding, no room in the body budget: refused before a byte is read.
    const admitted = limit > 0 ? admitBody(req, limit, gateway.uploads) : undefined;
    // Held until the request ends: its parsed body lives as long.
    reservation = admitted?.reservation;
    if (expectContinue) {
      // The client waits for our word before uploading: refuse a declared body over the limit
      // now (no 100), otherwise invite the body. The expectation is ours; it is never forwarded.
      refuseDeclaredOver(declaredLength(req), limit);
      res.writeContinue();
    }
    reading = true;
    const body = admitted !== undefined ? await readBody(req, limit, scope, admitted, gateway.uploads.timeouts) : undefined;
    handle.route(port, rr, body);
    // The signal is made only if the request must queue (request-scope.ts).
    const decision = await handle.decide(body, () => scope.signal);
    stream = decision.stream;
    const input = { req, res, target: target.target, handle, decision, dispatcher: deps.dispatcher, scope, watchdog: deps.watchdog, closeConnection };
    // A disaggregated request has two legs (prefill, decode); any other, one endpoint and a fallback.
    const outcome = decision.pd === undefined ? await forward(input) : await forwardPd(input);
    handle.finished(outcome);
  } catch (err) {
    // A stopped request failed because of why it was stopped, whatever the symptom was.
    let failure = scope.stopped ?? asGatewayError(err);
    // An HTTP/2 client that ended its stream only to reset it (Node's `stream.close(code)`) left
    // before its body could be judged: a client gone, not a refusal nobody reads.
    if (h2 && reading && failure.status < 500 && !isClientGone(failure) && (await abandonedSoon(req))) failure = clientGone('after sending its body (it reset the stream)');
    if (!isClientGone(failure)) {
      const close = CLOSE_AFTER.has(failure.code);
      if (close && !h2) closing.add(req.socket);
      if (!reading || DURING_BODY.has(failure.code)) refuseUpload(req, res, failure, { requestId: handle.id, draining: deps.inFlight.draining || close });
      else sendError(res, failure, { requestId: handle.id, sse: stream, close: closeConnection() || (close && !h2) });
      // A client that stopped sending mid-body gets its 408, then the connection (HTTP/2: the stream) ends.
      if (failure.code === 'request_body_timeout') res.once('finish', () => req.destroy());
    }
    handle.failed(failure);
  } finally {
    reservation?.release();
    res.off('close', onClose);
    deps.inFlight.delete(scope);
  }
}
