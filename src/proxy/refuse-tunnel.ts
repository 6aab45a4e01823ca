import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { asGatewayError, GatewayError, toOpenAIError } from '../core/errors.js';
import { requestLineAnswer } from '../gateway/index.js';

/**
 * An HTTP/1.1 CONNECT request: Node hands over the raw connection (its `connect` event) instead
 * of a request/response pair. The core's verdict on the request line (405 with `Allow`: the
 * gateway is no tunnel) is written on it, OpenAI-shaped, and the connection closed.
 */
export function refuseTunnel(req: IncomingMessage, socket: Duplex): void {
  // A client that resets first must not crash anything.
  socket.on('error', () => undefined);
  let err: GatewayError;
  try {
    requestLineAnswer(req.method ?? 'CONNECT', req.url ?? '');
    err = new GatewayError('method_not_allowed', 'the gateway does not serve CONNECT requests');
  } catch (e) {
    err = asGatewayError(e);
  }
  const body = JSON.stringify(toOpenAIError(err));
  const allow = err.allow === undefined ? '' : `allow: ${err.allow}\r\n`;
  socket.end(`HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${allow}connection: close\r\n\r\n${body}`);
}
