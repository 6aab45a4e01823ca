import type { IncomingMessage } from 'node:http';
import { bodyTooLarge } from '../gateway/index.js';

/**
 * Reads a request body up to `limit` bytes. A declared Content-Length over the limit is refused
 * before reading a byte; a chunked body is refused as soon as it crosses the limit.
 * Returns undefined for a request without a body.
 */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    throw bodyTooLarge(limit);
  }
  if (declared === undefined && req.headers['transfer-encoding'] === undefined) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw bodyTooLarge(limit);
    chunks.push(chunk);
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
}
