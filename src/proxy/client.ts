import { Http2ServerRequest } from 'node:http2';
import type { ClientRequest } from '../upstream/client-body.js';

/** The response side lives with the upstream layer's response writing, shared with the PD sidecar. */
export { closedEarly, flushHeaders, type ClientResponse } from '../upstream/client-response.js';

/** The request side too: how its body is read is shared with the PD sidecar. */
export type { ClientRequest } from '../upstream/client-body.js';

/** True for HTTP/2: connection-specific headers (`Connection`, `Keep-Alive`, …) are forbidden there. */
export function isHttp2(req: ClientRequest): req is Http2ServerRequest {
  // By the object, not `httpVersionMajor`: an HTTP/1 request line may say `HTTP/2.0` (refused 505).
  return req instanceof Http2ServerRequest;
}

/** The request's authority: `Host` on HTTP/1.1, `:authority` on HTTP/2. */
export function authorityOf(req: ClientRequest): string {
  const host = req.headers.host ?? req.headers[':authority'];
  return typeof host === 'string' ? host : '';
}
