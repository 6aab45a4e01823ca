import type { ServerResponse } from 'node:http';
import { constants, Http2ServerResponse } from 'node:http2';

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

/**
 * At the response's `close`: true when it closed before it was wholly sent, i.e. the client went
 * away (the connection dropped, or an HTTP/2 client reset the stream). HTTP/1.1 says it by
 * `writableFinished` (no `finish` yet). HTTP/2's compatibility response reads `writableFinished`
 * from its stream, which a reset destroys and so reports finished: there the stream's own code
 * tells (anything but NO_ERROR is a reset), as does an answer the gateway never ended.
 */
export function closedEarly(res: ClientResponse): boolean {
  if (res instanceof Http2ServerResponse) {
    const code = res.stream.rstCode;
    return !res.writableEnded || (code !== undefined && code !== constants.NGHTTP2_NO_ERROR);
  }
  return !res.writableFinished;
}
