import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';

/** What a listener that is no tunnel answers to CONNECT. */
export interface ConnectRefusal {
  /** The methods the listener does serve (the 405's `Allow`). */
  readonly allow: string;
  /** The answer's JSON body, in the listener's own error shape. */
  readonly body: (req: IncomingMessage) => string;
}

/**
 * Node's HTTP/1.1 server hands a CONNECT request to its 'connect' event instead of the request
 * handler, and a server with no listener there destroys the connection without writing a byte: a
 * client (or a probe) sees the connection drop, not why. Every HTTP listener that is no tunnel
 * (the admin and metrics ports, the PD sidecar, the simulator, the Envoy stand-in) answers it with
 * 405 and `Allow`, its own JSON error body, and closes the connection (what follows a CONNECT head
 * is tunnel bytes, never a next request). The proxy's listeners answer it through the core's
 * request-line verdict instead (proxy/refuse-tunnel.ts).
 */
export function refuseConnect(server: Server, refusal: ConnectRefusal): void {
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    // A client that resets first must not crash anything.
    socket.on('error', () => undefined);
    const body = refusal.body(req);
    socket.end(`HTTP/1.1 405 ${STATUS_CODES[405]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nallow: ${refusal.allow}\r\nconnection: close\r\n\r\n${body}`);
  });
}
