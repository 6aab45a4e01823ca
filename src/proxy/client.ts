import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';

/** The response side lives with the upstream layer's response writing, shared with the PD sidecar. */
export { closedEarly, flushHeaders, type ClientResponse } from '../upstream/client-response.js';

/**
 * A client's request as either listener protocol delivers it: HTTP/1.1 (`node:http`) or HTTP/2
 * cleartext (`node:http2`'s compatibility API, which mirrors it).
 */
export type ClientRequest = IncomingMessage | Http2ServerRequest;

/** True for HTTP/2: connection-specific headers (`Connection`, `Keep-Alive`, …) are forbidden there. */
export function isHttp2(req: ClientRequest): req is Http2ServerRequest {
  return req.httpVersionMajor === 2;
}

/** The request's authority: `Host` on HTTP/1.1, `:authority` on HTTP/2. */
export function authorityOf(req: ClientRequest): string {
  const host = req.headers.host ?? req.headers[':authority'];
  return typeof host === 'string' ? host : '';
}
