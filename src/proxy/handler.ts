import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import { asGatewayError, GatewayError } from '../core/errors.js';
import type { Gateway, RouteRequest } from '../gateway/index.js';
import { forward } from './forward.js';
import { readBody } from './read-body.js';
import { sendError, sendJson } from './respond.js';

export interface HandlerDeps {
  /** The gateway core; undefined until it has started. */
  readonly gateway: () => Gateway | undefined;
  readonly dispatcher: Dispatcher;
}

function routeRequest(req: IncomingMessage): RouteRequest {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const hostHeader = req.headers.host ?? '';
  // Strip the port; keep IPv6 literals intact.
  const host = (hostHeader.startsWith('[') ? hostHeader.slice(0, hostHeader.indexOf(']') + 1) : hostHeader.split(':')[0] ?? '').toLowerCase();
  return { method: req.method ?? 'GET', path: q === -1 ? url : url.slice(0, q), query: q === -1 ? '' : url.slice(q + 1), host, headers: req.headers };
}

/**
 * Builds the request handler of one listening port. The gateway core decides and accounts (its
 * request handle); this side carries bytes: it reads the body, forwards, streams the answer back
 * and sends refusals. Every request ends in exactly one `finished` or `failed` on the handle.
 */
export function createHandler(port: number, deps: HandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void handle(port, deps, req, res);
  };
}

async function handle(port: number, deps: HandlerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const gateway = deps.gateway();
  const rr = routeRequest(req);
  const incomingId = req.headers['x-request-id'];
  if (gateway === undefined) {
    sendError(res, new GatewayError('no_ready_endpoint', 'the gateway is starting'), { requestId: typeof incomingId === 'string' ? incomingId : '', sse: false });
    return;
  }
  const handle = gateway.begin({
    ...(typeof incomingId === 'string' ? { requestId: incomingId } : {}),
    method: rr.method,
    path: rr.path,
    headers: req.headers,
    ...(req.socket.remoteAddress === undefined ? {} : { clientAddress: req.socket.remoteAddress }),
    port,
  });
  // Aborted when the client goes away before the response is complete (leaves the queue too).
  const gone = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) gone.abort();
  };
  res.on('close', onClose);
  let stream = false;
  try {
    const own = rr.method === 'GET' ? gateway.modelsAnswer(port, rr.path) : undefined;
    if (own !== undefined) {
      sendJson(res, own.status, own.body, handle.id);
      handle.finished({ status: own.status, bytesOut: 0 });
      return;
    }
    // The body is read before routing: model-based routing matches on its model.
    const limit = handle.maxBodyBytes(port);
    const body = limit > 0 ? await readBody(req, limit) : undefined;
    handle.route(port, rr, body);
    const decision = await handle.decide(body, gone.signal);
    stream = decision.stream;
    const outcome = await forward({ req, res, handle, decision, dispatcher: deps.dispatcher });
    handle.finished(outcome);
  } catch (err) {
    const failure = asGatewayError(err);
    // A refused body may still be arriving: close the connection rather than parse the rest.
    const close = failure.code === 'body_too_large';
    sendError(res, failure, { requestId: handle.id, sse: stream, close });
    if (close) req.resume();
    handle.failed(failure);
  } finally {
    res.off('close', onClose);
  }
}
