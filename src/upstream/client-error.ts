import type { Server } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import { GatewayError, toOpenAIError } from '../core/errors.js';

/**
 * Answers what Node's HTTP/1.1 parser refuses before any handler runs, as Node would (the same
 * statuses, only on a connection that has written nothing, then closed), but with the gateway's
 * error body where the refusal is the client's request headers: a 431 that says what was counted,
 * worded as the endpoint picker's (`the request has …, more than the … accepted`).
 */
export function answerClientErrors(server: Server, maxHeaderBytes: number): void {
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (socket.writable && socket.bytesWritten === 0) {
      if (err.code === 'HPE_HEADER_OVERFLOW') {
        // Node counts the request target and every header name and value against the bound.
        const refusal = new GatewayError('request_headers_too_large', `the request has more bytes of header names and values (its target included) than the ${maxHeaderBytes} accepted`);
        const body = JSON.stringify(toOpenAIError(refusal));
        socket.write(`HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        socket.write('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
      } else if (err.code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') {
        socket.write('HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\n\r\n');
      } else {
        socket.write('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      }
    }
    socket.destroy(err);
  });
}

/**
 * HTTP/2 requests whose header list (RFC 9113 §6.5.2: each name and value, plus 32 bytes per
 * field) is over `maxHeaderBytes`: answered 431 with the gateway's body, as HTTP/1.1 is. Node
 * enforces its own `maxHeaderListSize` setting in its native code, before any handler and
 * loosely (a little over the setting still passes); past it the stream is reset with
 * ENHANCE_YOUR_CALM and nothing reaches JavaScript. So the listener advertises a larger setting
 * (`H2_HEADER_LIST_ALLOWANCE` times the bound) and this check refuses what lies between in
 * words; past the advertised size the reset stays Node's (docs/configuration.md, "Limits").
 * Returns true when it answered.
 */
export function refuseOversizedH2Headers(req: Http2ServerRequest, res: Http2ServerResponse, maxHeaderBytes: number): boolean {
  const raw = req.rawHeaders;
  let size = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) size += Buffer.byteLength(raw[i] as string) + Buffer.byteLength(raw[i + 1] as string) + 32;
  if (size <= maxHeaderBytes) return false;
  const refusal = new GatewayError('request_headers_too_large', `the request has ${size} bytes of header list (RFC 9113 counts names, values and 32 bytes per field), more than the ${maxHeaderBytes} accepted`);
  const body = JSON.stringify(toOpenAIError(refusal));
  req.resume();
  res.writeHead(431, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
  return true;
}

/** How much larger than the bound the HTTP/2 setting is advertised, so the refusal is said in words. */
export const H2_HEADER_LIST_ALLOWANCE = 2;
