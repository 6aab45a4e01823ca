/**
 * gzip for a simulated server's responses, as a compressing middleware or reverse proxy in front
 * of a model server does (nginx `gzip on` with JSON and `text/event-stream` in `gzip_types`,
 * Starlette's GZipMiddleware): when the request's `Accept-Encoding` allows gzip, a response with
 * a body goes out with `Content-Encoding: gzip` and no `Content-Length`; every response says
 * `Vary: Accept-Encoding`. A stream (a response without a Content-Length, e.g. SSE) is flushed
 * after every write, so each event still leaves at once — what nginx does for a proxied stream
 * with buffering off, and what a gateway sniffing SSE must cope with.
 *
 * It works by wrapping the response's `writeHead`, `write` and `end`, like Express's compression
 * middleware, so the route handlers stay unaware of it.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { constants, createGzip, type Gzip } from 'node:zlib';

/**
 * Whether an `Accept-Encoding` value allows gzip: `gzip` (or `x-gzip`, or `*`) listed with a
 * quality above 0 (RFC 9110 §12.5.3).
 */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  const text = Array.isArray(header) ? header.join(',') : header;
  let star = false;
  for (const item of text.split(',')) {
    const [name = '', ...params] = item.trim().toLowerCase().split(';');
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const quality = q === undefined ? 1 : Number(q.slice(2));
    if (name === 'gzip' || name === 'x-gzip') return quality > 0;
    if (name === '*') star = quality > 0;
  }
  return star;
}

/** Header names a response may carry, lower-cased, with their values (from a writeHead argument). */
function headersOf(arg: unknown): OutgoingHttpHeaders | undefined {
  return arg !== null && typeof arg === 'object' && !Array.isArray(arg) ? (arg as OutgoingHttpHeaders) : undefined;
}

/** Installs gzip on `res` if `req` accepts it (see the file comment). Call before anything is written. */
export function compressResponse(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('vary', 'Accept-Encoding');
  if (!acceptsGzip(req.headers['accept-encoding'])) return;
  const rawWriteHead = res.writeHead.bind(res) as (status: number, headers?: OutgoingHttpHeaders) => ServerResponse;
  const rawWrite = res.write.bind(res) as (chunk: string | Uint8Array) => boolean;
  const rawEnd = res.end.bind(res) as (chunk?: string | Uint8Array) => ServerResponse;
  const isBody = (chunk: unknown): chunk is string | Uint8Array => typeof chunk === 'string' || chunk instanceof Uint8Array;
  let gzip: Gzip | undefined;
  let streaming = false;

  const writeHead = (status: number, a?: unknown, b?: unknown): ServerResponse => {
    const given = headersOf(b) ?? headersOf(a) ?? {};
    const headers: OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(given)) headers[k.toLowerCase()] = v;
    const length = headers['content-length'] ?? res.getHeader('content-length');
    const empty = String(length) === '0' || status === 204 || status === 304;
    if (!empty) {
      streaming = length === undefined;
      delete headers['content-length'];
      res.removeHeader('content-length');
      headers['content-encoding'] = 'gzip';
      const gz = createGzip();
      gz.on('data', (chunk: Buffer) => rawWrite(chunk));
      gz.on('end', () => rawEnd());
      res.once('close', () => gz.destroy());
      gzip = gz;
    }
    return rawWriteHead(status, headers);
  };

  const write = (chunk: unknown): boolean => {
    if (!res.headersSent) writeHead(res.statusCode);
    if (!isBody(chunk)) return true;
    if (gzip === undefined) return rawWrite(chunk);
    gzip.write(chunk);
    // Z_SYNC_FLUSH pushes everything written so far out as complete deflate blocks.
    if (streaming) gzip.flush(constants.Z_SYNC_FLUSH);
    return true;
  };

  const end = (chunk?: unknown): ServerResponse => {
    if (!res.headersSent) writeHead(res.statusCode);
    if (gzip === undefined) return isBody(chunk) ? rawEnd(chunk) : rawEnd();
    if (isBody(chunk)) gzip.end(chunk);
    else gzip.end();
    return res;
  };

  res.writeHead = writeHead as ServerResponse['writeHead'];
  res.write = write as ServerResponse['write'];
  res.end = end as ServerResponse['end'];
}
