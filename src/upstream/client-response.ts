import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';

/**
 * The answer to a client's request, whichever data plane received it: HTTP/1.1 (`node:http`) or
 * HTTP/2 cleartext (`node:http2`'s compatibility API, which mirrors it).
 */
export type ClientResponse = ServerResponse | Http2ServerResponse;

/**
 * Sends the status line and headers now rather than with the first body chunk, so a streaming
 * client sees the status at once. HTTP/2's `writeHead` already sends them.
 */
export function flushHeaders(res: ClientResponse): void {
  const flush = (res as { flushHeaders?: () => void }).flushHeaders;
  if (typeof flush === 'function') flush.call(res);
}
