import type { Server } from 'node:http';
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
