/**
 * Small HTTP helpers shared by the simulator's faces and its bootstrap (PD) server.
 */
import { request as httpRequest, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SimClock, SimTimer } from './engine/index.js';

/** Largest request body the simulator reads (vLLM has no limit of its own; this only bounds memory). */
export const MAX_BODY_BYTES = 32 * 1024 * 1024;

/** The body as text, or `undefined` when it exceeds `limit` bytes (the rest is drained). */
export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) over = true;
    if (!over) chunks.push(chunk);
  }
  return over ? undefined : Buffer.concat(chunks).toString('utf8');
}

/** Writes a complete response with a Content-Length (keep-alive friendly). */
export function send(res: ServerResponse, status: number, body: string, contentType: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': contentType, 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, body: string): void {
  send(res, status, body, 'application/json');
}

/** The request path without its query string. */
export function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** A JSON object, or undefined for invalid JSON or a non-object value. */
export function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Reason phrases of the statuses the simulator answers with (SGLang puts them in `type`). */
export function statusPhrase(status: number): string {
  switch (status) {
    case 400:
      return 'Bad Request';
    case 404:
      return 'Not Found';
    case 405:
      return 'Method Not Allowed';
    case 409:
      return 'Conflict';
    case 413:
      return 'Payload Too Large';
    case 500:
      return 'Internal Server Error';
    case 503:
      return 'Service Unavailable';
    case 504:
      return 'Gateway Timeout';
    default:
      // Python's http.HTTPStatus phrases match Node's table for the other codes (429 Too Many
      // Requests, 502 Bad Gateway, …); the explicit cases above pin the ones a face prints today.
      return STATUS_CODES[status] ?? 'Error';
  }
}

/** Starts `server` on `host:port` (0 = any free port); resolves with the port it got. */
export async function listenOn(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** Closes `server` and every connection it holds (long polls included). */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** How a side-channel long poll (postAndWait) ended. */
export type PollOutcome =
  /** The peer answered: its status and JSON object body (undefined when not a JSON object). */
  | { readonly kind: 'answer'; readonly status: number; readonly body: Record<string, unknown> | undefined }
  /** No connection, or it broke before the answer ended (`code`: ECONNREFUSED, …). */
  | { readonly kind: 'unreachable'; readonly code: string }
  /** No answer within the timeout (modelled ms on the clock). */
  | { readonly kind: 'timeout' }
  | { readonly kind: 'cancelled' };

/** Largest answer a long poll reads: the peers answer a few small fields. */
const MAX_POLL_ANSWER_BYTES = 64 * 1024;

/**
 * POSTs JSON to a peer simulator's side channel (SGLang's bootstrap listener, vLLM's NIXL side
 * channel) and waits for its answer, at most `timeoutMs` of modelled time on `clock`. `cancel()`
 * drops the wait and the connection (the peer sees it close).
 */
export function postAndWait(options: { clock: SimClock; host: string; port: number; path: string; body: unknown; timeoutMs: number }): { promise: Promise<PollOutcome>; cancel: () => void } {
  const body = JSON.stringify(options.body);
  const req = httpRequest({
    host: options.host,
    port: options.port,
    method: 'POST',
    path: options.path,
    headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
    agent: false,
  });
  let settle: (o: PollOutcome) => void = () => {};
  let timer: SimTimer | null = null;
  const promise = new Promise<PollOutcome>((resolve) => {
    let done = false;
    settle = (o) => {
      if (done) return;
      done = true;
      timer?.cancel();
      resolve(o);
    };
    timer = options.clock.setTimeout(() => {
      settle({ kind: 'timeout' });
      req.destroy();
    }, options.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => settle({ kind: 'unreachable', code: err.code ?? err.message }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_POLL_ANSWER_BYTES) chunks.push(c);
      });
      res.on('error', () => settle({ kind: 'unreachable', code: 'ECONNRESET' }));
      res.on('end', () => settle({ kind: 'answer', status: res.statusCode ?? 0, body: parseObject(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.end(body);
  });
  return {
    promise,
    cancel: () => {
      settle({ kind: 'cancelled' });
      req.destroy();
    },
  };
}
