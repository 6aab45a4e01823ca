import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/**
 * HTTP/1.1 clients written on a bare socket, to behave exactly like the clients that matter:
 * curl and the OpenAI Python SDK (httpx) upload the whole body before they read the answer, and
 * curl sends `Expect: 100-continue` by itself for bodies of 1 MiB and more.
 */

/** A connected socket with everything it receives collected. */
export interface RawConnection {
  readonly socket: Socket;
  /** Everything received so far. */
  received(): string;
  /** Resolves once `pred` holds for what was received (or rejects when the connection ends first). */
  until(pred: (text: string) => boolean): Promise<string>;
  /** Resolves with everything received once the server closed the connection (or it failed). */
  closed(): Promise<{ text: string; error: string | undefined }>;
}

/**
 * Connects to `port`. `paused`: read nothing until `socket.resume()`, not even into Node's buffer
 * (paused before the connection is up, Node never starts reading), like a client busy uploading.
 */
export async function rawConnect(port: number, opts: { host?: string; paused?: boolean } = {}): Promise<RawConnection> {
  const socket = connect(port, opts.host ?? '127.0.0.1');
  if (opts.paused === true) socket.pause();
  await once(socket, 'connect');
  let text = '';
  let error: string | undefined;
  let ended = false;
  const waiters: Array<() => void> = [];
  const wake = (): void => {
    for (const w of waiters.splice(0)) w();
  };
  socket.setEncoding('latin1');
  socket.on('data', (c: string) => {
    text += c;
    wake();
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    error ??= err.code ?? err.message;
  });
  socket.on('close', () => {
    ended = true;
    wake();
  });
  return {
    socket,
    received: () => text,
    until: async (pred) => {
      while (!pred(text)) {
        if (ended) throw new Error(`connection closed (${error ?? 'no error'}) before the expected answer; received: ${JSON.stringify(text.slice(0, 300))}`);
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
      return text;
    },
    closed: async () => {
      while (!ended) await new Promise<void>((resolve) => waiters.push(resolve));
      return { text, error };
    },
  };
}

/** A request head (request line and headers, then the blank line). */
export function requestHead(path: string, headers: Record<string, string | number>): string {
  return `POST ${path} HTTP/1.1\r\nHost: gateway\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('')}\r\n`;
}

/** Writes `total` bytes of `fill` in `chunk`-sized writes, waiting for each to drain; false if the socket failed. */
export async function upload(socket: Socket, total: number, chunk = 64 * 1024, fill = 'x'): Promise<boolean> {
  const block = Buffer.alloc(chunk, fill);
  for (let sent = 0; sent < total; sent += chunk) {
    if (socket.destroyed) return false;
    const piece = total - sent >= chunk ? block : block.subarray(0, total - sent);
    const ok = socket.write(piece);
    if (!ok) {
      // `once` rejects on 'error' (EPIPE, ECONNRESET): the upload is over either way.
      const drained = await Promise.race([once(socket, 'drain').then(() => true), once(socket, 'close').then(() => false)]).catch(() => false);
      if (!drained) return false;
    }
  }
  return !socket.destroyed;
}

/**
 * Sends a request like the OpenAI SDK does: the head and the whole declared body, reading nothing
 * until the upload is done (the socket is paused), then reads the answer until the server closes.
 */
export async function uploadThenRead(port: number, path: string, headers: Record<string, string | number>, bodyBytes: number): Promise<{ text: string; error: string | undefined }> {
  const conn = await rawConnect(port, { paused: true });
  conn.socket.write(requestHead(path, { ...headers, 'Content-Length': bodyBytes }));
  await upload(conn.socket, bodyBytes);
  conn.socket.resume();
  return conn.closed();
}

/** The status code of the first response in `text` that is not 1xx, or undefined. */
export function finalStatus(text: string): number | undefined {
  for (const m of text.matchAll(/HTTP\/1\.1 (\d{3})/g)) {
    const status = Number(m[1]);
    if (status >= 200) return status;
  }
  return undefined;
}
