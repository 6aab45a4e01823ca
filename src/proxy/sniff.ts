import type { Socket } from 'node:net';

/** What every HTTP/2 connection starts with (RFC 9113 §3.4), cleartext or not. */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Reads the first bytes of a new connection and says which protocol it speaks: HTTP/2 when they
 * are the connection preface (h2c "with prior knowledge"), HTTP/1.1 otherwise. Most connections
 * are decided by their first chunk (an HTTP/1.1 request line differs from the preface by its
 * second byte at the latest); at most 24 bytes are ever waited for. The bytes read are put back
 * and the socket is paused, so the chosen server reads the connection from its first byte.
 * A connection that sends nothing within `timeoutMs` is closed.
 */
export function sniffProtocol(socket: Socket, timeoutMs: number, decide: (protocol: 'h1' | 'h2') => void): void {
  let seen: Buffer | undefined;
  const onData = (chunk: Buffer): void => {
    seen = seen === undefined ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, HTTP2_PREFACE.length);
    const preface = seen.subarray(0, n).equals(HTTP2_PREFACE.subarray(0, n));
    if (preface && seen.length < HTTP2_PREFACE.length) return;
    socket.off('data', onData);
    socket.off('error', onError);
    socket.off('timeout', onTimeout);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(seen);
    decide(preface ? 'h2' : 'h1');
  };
  const onTimeout = (): void => void socket.destroy();
  // Until a server owns the socket, its errors (a reset) are ours to absorb.
  const onError = (): void => void socket.destroy();
  socket.on('data', onData);
  socket.on('error', onError);
  socket.setTimeout(timeoutMs, onTimeout);
}
