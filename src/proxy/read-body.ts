import { GatewayError } from '../core/errors.js';
import { bodyTooLarge } from '../gateway/index.js';
import { isHttp2, type ClientRequest } from './client.js';

/**
 * The longest a request body may take to arrive, in ms: a slow upload holds a connection and
 * memory. The same as Node's HTTP/1.1 `requestTimeout` default, which also bounds the headers.
 */
export const UPLOAD_TIMEOUT_MS = 300_000;

/** The declared Content-Length, if any (a malformed one is refused by Node's parser). */
export function declaredLength(req: ClientRequest): number | undefined {
  const declared = req.headers['content-length'];
  return declared === undefined ? undefined : Number(declared);
}

/**
 * Reads a request body up to `limit` bytes. A declared Content-Length over the limit is refused
 * before reading a byte; a body without one (chunked, or HTTP/2 DATA frames) is refused as soon
 * as it crosses the limit. A body that stops arriving because the client went away (reset,
 * closed, or slower than UPLOAD_TIMEOUT_MS) is `client_gone`; `signal` ends the read with its
 * stop reason. Returns undefined for a request without a body.
 */
export async function readBody(req: ClientRequest, limit: number, signal: AbortSignal, timeoutMs = UPLOAD_TIMEOUT_MS): Promise<Buffer | undefined> {
  const declared = declaredLength(req);
  if (declared !== undefined && declared > limit) throw bodyTooLarge(limit);
  // HTTP/1.1 says up front whether a body follows; HTTP/2 says it with the stream's end.
  if (declared === undefined && !isHttp2(req) && req.headers['transfer-encoding'] === undefined) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  const abandon = (): void => void req.destroy();
  const timer = setTimeout(abandon, timeoutMs);
  timer.unref();
  signal.addEventListener('abort', abandon, { once: true });
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw bodyTooLarge(limit);
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw new GatewayError('client_gone', 'the client went away while sending the request body', { cause: err });
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', abandon);
  }
  if (chunks.length === 0 && declared === undefined) return undefined;
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
}
