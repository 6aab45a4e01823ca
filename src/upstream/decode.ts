import type { IncomingHttpHeaders } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import { canDecode, contentCodings, DecodeGuard, decoderStages, type DecodeLimits } from '../core/content-coding.js';

/**
 * Bounds of a decoded answer (a compressed answer is a model server's mistake or a middlebox's:
 * the gateway asks for `identity`). Past either, the answer fails with `upstream_invalid_response`
 * (502, counted against the server; errors.ts):
 * - at most 64 MiB decoded, four times the largest request body a listener accepts by default
 *   (16 MiB); answers sent as identity are not limited;
 * - past 8 MiB decoded, at most 100 times the compressed bytes read so far. Text and JSON
 *   compress 3–15× with gzip, a long repetitive SSE stream about 50×; a decompression bomb sits
 *   near deflate's maximum of 1032:1 (brotli's is higher), so a 1 MB → 1 GiB bomb is stopped
 *   after about 8 MiB. Below 8 MiB any ratio passes: a degenerate model repeating one token for
 *   100k tokens compresses about 1000× and is still an answer.
 */
export const ANSWER_DECODE_LIMITS: DecodeLimits = { maxBytes: 64 * 1024 * 1024, maxRatio: 100, ratioFloorBytes: 8 * 1024 * 1024 };

export interface DecodedResponse {
  /** The headers as the body below needs them (decoded: no `content-encoding`, no `content-length`). */
  readonly headers: IncomingHttpHeaders;
  /** The body, decoded. */
  readonly body: Readable;
  /** False when the body has a coding the gateway cannot decode: pass it through unread. */
  readonly readable: boolean;
  /** True when the body went through a decoder (it was compressed). */
  readonly decoded: boolean;
}

/**
 * The response as the gateway must read and forward it: uncompressed. A body with a content
 * coding the gateway can decode is decoded (in reverse order of application) and its
 * `content-encoding` and `content-length` headers dropped: the client gets identity, which is
 * always acceptable (RFC 9110 §12.5.3). A coding the gateway cannot decode leaves the response
 * as it is, and `readable` is false: its bytes must not be read (they are passed through).
 * The decoded body errors with DecodedTooLargeError past `limits` (default ANSWER_DECODE_LIMITS).
 */
export function decodeResponse(headers: IncomingHttpHeaders, body: Readable, limits: DecodeLimits = ANSWER_DECODE_LIMITS): DecodedResponse {
  const identity = identityHeaders(headers);
  if (identity !== undefined) return { headers: identity, body, readable: true, decoded: false };
  const applied = contentCodings(headers['content-encoding']);
  if (!canDecode(applied)) return { headers, body, readable: false, decoded: false };
  const guard = new DecodeGuard(limits);
  // Errors of any stage (a corrupt body, a bomb, the upstream going away) surface on the last one.
  const decoded = pipeline([body, guard.meter, ...decoderStages(applied), guard.limit], () => undefined) as unknown as Readable;
  const { 'content-encoding': _coding, 'content-length': _length, ...rest } = headers;
  return { headers: rest, body: decoded, readable: true, decoded: true };
}

/**
 * The headers of an answer sent uncompressed (no content coding but `identity`), as
 * `decodeResponse` gives them (no `content-encoding: identity`); undefined for a coded answer.
 */
export function identityHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders | undefined {
  if (headers['content-encoding'] === undefined) return headers;
  if (contentCodings(headers['content-encoding']).length > 0) return undefined;
  const { 'content-encoding': _identity, ...rest } = headers;
  return rest;
}

/**
 * A decoded non-streamed answer read whole before its headers go to the client, so a body that
 * fails to decode (corrupt, or past its bounds) is answered with a 502 rather than cut after a
 * 200. Held in memory up to the decode limits; throws the body's error.
 */
export async function holdDecoded(body: Readable): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Buffer>) chunks.push(chunk);
  return chunks;
}
