import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';

/**
 * A client's request as either listener protocol delivers it: HTTP/1.1 (`node:http`) or HTTP/2
 * cleartext (`node:http2`'s compatibility API, which mirrors it).
 */
export type ClientRequest = IncomingMessage | Http2ServerRequest;

/** The response to a ClientRequest, HTTP/1.1 or HTTP/2. */
export type ClientResponse = ServerResponse | Http2ServerResponse;

/** True for HTTP/2: connection-specific headers (`Connection`, `Keep-Alive`, …) are forbidden there. */
export function isHttp2(req: ClientRequest): req is Http2ServerRequest {
  return req.httpVersionMajor === 2;
}

/** The request's authority: `Host` on HTTP/1.1, `:authority` on HTTP/2. */
export function authorityOf(req: ClientRequest): string {
  const host = req.headers.host ?? req.headers[':authority'];
  return typeof host === 'string' ? host : '';
}

/**
 * Sends the status line and headers now rather than with the first body chunk, so a streaming
 * client sees the status at once. HTTP/2's `writeHead` already sends them.
 */
export function flushHeaders(res: ClientResponse): void {
  const flush = (res as { flushHeaders?: () => void }).flushHeaders;
  if (typeof flush === 'function') flush.call(res);
}
