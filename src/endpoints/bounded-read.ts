import { pipeline, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { canDecode, contentCodings, DecodeGuard, decoderStages } from '../core/content-coding.js';

/**
 * A model server's answer to one of the gateway's own requests (`/metrics`, `/v1/models`) as
 * text, read up to `maxBytes` (decoded, and encoded) and decoded when the server compressed it;
 * `{ failure }` when it is larger, cannot be decoded or has an unknown coding. A body over the
 * bound is abandoned: the rest is not read (the connection is closed). Network errors and the
 * request's abort signal reject as usual.
 */
export async function readBoundedText(res: Dispatcher.ResponseData, maxBytes: number): Promise<string | { failure: string }> {
  const declared = Number(res.headers['content-length']);
  const codings = contentCodings(res.headers['content-encoding']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    abandon(res.body);
    return { failure: `body of ${declared} bytes is over the ${maxBytes}-byte limit; not read` };
  }
  if (!canDecode(codings)) {
    abandon(res.body);
    return { failure: `body has an unknown content-encoding (${codings.join(', ').slice(0, 100)})` };
  }
  if (codings.length === 0) return readIdentity(res.body, maxBytes);
  // The encoded bytes are bounded by the same limit (a body that compresses at all is smaller).
  const bound = { maxBytes, maxRatio: Number.POSITIVE_INFINITY, ratioFloorBytes: maxBytes };
  const decoded = new DecodeGuard(bound);
  const stages = [new DecodeGuard(bound).limit, ...decoderStages(codings), decoded.limit];
  const body = pipeline([res.body, ...stages], () => undefined) as unknown as Readable;
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
  } catch (err) {
    body.destroy();
    abandon(res.body);
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_DECODED_TOO_LARGE') return { failure: `body over the ${maxBytes}-byte limit; abandoned` };
    if (typeof code === 'string' && code.startsWith('Z_')) return { failure: `body could not be decoded (${code})` };
    throw err;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * An identity body (what every server sends: the gateway does not ask for compression) read up to
 * `maxBytes` without a stream pipeline: the scraper reads one page per endpoint every 50 ms, and a
 * pipeline with a guard stage per page cost the idle gateway more CPU than the page's parse.
 */
async function readIdentity(body: Readable, maxBytes: number): Promise<string | { failure: string }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      abandon(body);
      return { failure: `body over the ${maxBytes}-byte limit; abandoned` };
    }
    chunks.push(chunk);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks, size).toString('utf8');
}

/** Stops reading a body: the connection is closed; the abort it reports is expected, not an error. */
function abandon(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}
