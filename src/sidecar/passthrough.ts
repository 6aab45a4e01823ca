import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import { clientGone, isControlHeader, parseRequestTarget, PREFILLER_HEADER, RequestScope, type InFlight } from '../gateway/index.js';
import { closedEarly } from '../upstream/client-response.js';
import { upstreamFailure } from '../upstream/errors.js';
import { forwardable } from '../upstream/headers.js';
import { sendError } from '../upstream/respond.js';
import { viaWith } from './loop.js';

/**
 * A request without `x-prefiller-host-port` (the endpoint picker kept it on this pod, a metrics
 * scrape of the pod's port, a health probe, `/v1/models`): passed to the local decode server as it
 * came, any method and path, the body streamed both ways with backpressure (nothing is held whole,
 * so nothing needs a size bound here). Only hop-by-hop headers and the gateway's control headers
 * (`x-gateway-*`, which name nothing the server should see) stay behind. No timeouts of its own:
 * Envoy's route and the server's own apply; the client leaving ends the exchange. The decode
 * server unreachable is a 502 (`upstream_unavailable`) in the OpenAI error shape.
 */
export async function passThrough(req: IncomingMessage, res: ServerResponse, decode: Endpoint, dispatcher: Dispatcher, inFlight: InFlight): Promise<void> {
  const scope = new RequestScope();
  inFlight.add(scope);
  const onClose = (): void => {
    if (closedEarly(res)) scope.stop(clientGone());
  };
  res.on('close', onClose);
  try {
    // The target as received (origin-form); an absolute-form one is reduced to its path, a target
    // that is no path (`*`, an authority) is refused: the origin is always the decode server's.
    const raw = req.url ?? '/';
    const parsed = raw.startsWith('/') ? undefined : parseRequestTarget(raw);
    if (parsed instanceof GatewayError) {
      sendError(res, parsed, { requestId: requestIdOf(req), sse: false, close: true });
      return;
    }
    const path = parsed?.target ?? raw;
    const headers = forwardable(req.headers);
    for (const name of Object.keys(headers)) if (isControlHeader(name) || name === PREFILLER_HEADER) delete headers[name];
    headers['host'] = req.headers.host ?? decode.key;
    headers['via'] = viaWith(req.headers['via']);
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    let answer: Dispatcher.ResponseData;
    try {
      answer = await dispatcher.request({ origin: decode.origin, path, method: (req.method ?? 'GET') as Dispatcher.HttpMethod, headers, body: hasBody ? req : null, signal: scope.signal });
    } catch (err) {
      if (scope.stopped === undefined) sendError(res, upstreamFailure(err, decode), { requestId: requestIdOf(req), sse: false });
      return;
    }
    res.writeHead(answer.statusCode, forwardable(answer.headers));
    res.flushHeaders();
    try {
      await pipeline(answer.body, res);
    } catch {
      // The client left, or the server broke mid-body: the client's connection ends short of its length.
      answer.body.destroy();
      res.destroy();
    }
  } finally {
    res.off('close', onClose);
    inFlight.delete(scope);
  }
}

function requestIdOf(req: IncomingMessage): string {
  const id = req.headers['x-request-id'];
  return typeof id === 'string' ? id : '';
}
