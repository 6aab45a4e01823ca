import type { IncomingHttpHeaders } from 'node:http';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';

/**
 * Decoders for the content codings a model server or a middlebox may apply even though the
 * gateway asked for `identity`. zstd is decoded where the runtime has it (Node ≥ 22.15).
 */
const DECODERS: Readonly<Record<string, () => Transform>> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  // Servers disagree on "deflate": RFC 9110 says zlib-wrapped, some send it raw.
  deflate: () => new DeflateDecoder(),
  br: () => zlib.createBrotliDecompress(),
  ...zstdDecoder(),
};

/**
 * A decoder for a request body's `coding`, or undefined when the runtime has none. As for answers,
 * except that "deflate" is strictly the zlib format RFC 9110 §8.4.1.2 names: guessing raw deflate
 * could turn a plain body into bytes the client never meant, and a request body's meaning must be
 * exact (the gateway and the model server read the same bytes).
 */
export function requestDecoder(coding: string): Transform | undefined {
  if (coding === 'deflate') return zlib.createInflate();
  return DECODERS[coding]?.();
}

/** True when this runtime decodes request bodies of `coding` (zstd needs Node.js ≥ 22.15). */
export function canDecodeRequest(coding: string): boolean {
  return Object.hasOwn(DECODERS, coding);
}

function zstdDecoder(): Record<string, () => Transform> {
  const create = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
  return typeof create === 'function' ? { zstd: () => create() } : {};
}

/**
 * Inflates zlib-wrapped deflate (RFC 9110's "deflate"), or raw deflate, which some servers send
 * instead: a zlib stream starts with a header whose low nibble is 8 and whose first two bytes
 * are a multiple of 31 (RFC 1950 §2.2).
 */
class DeflateDecoder extends Transform {
  #inflate: Transform | undefined;
  #failed: Error | undefined;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#inflate === undefined) {
      const b0 = chunk[0] ?? 0;
      const b1 = chunk[1] ?? 0;
      const wrapped = (b0 & 0x0f) === 8 && ((b0 << 8) | b1) % 31 === 0;
      const inflate = wrapped ? zlib.createInflate() : zlib.createInflateRaw();
      inflate.on('data', (d: Buffer) => this.push(d));
      inflate.on('error', (err: Error) => {
        this.#failed = err;
        this.destroy(err);
      });
      this.#inflate = inflate;
    }
    this.#inflate.write(chunk, () => callback(this.#failed));
  }

  override _flush(callback: TransformCallback): void {
    const inflate = this.#inflate;
    if (inflate === undefined) return callback();
    inflate.once('end', () => callback());
    inflate.end();
  }
}

/** The codings applied to a body, outermost last, without `identity`. */
function codings(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const joined = Array.isArray(value) ? value.join(',') : value;
  return joined
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
}

export interface DecodedResponse {
  /** The headers as the body below needs them (decoded: no `content-encoding`, no `content-length`). */
  readonly headers: IncomingHttpHeaders;
  /** The body, decoded. */
  readonly body: Readable;
  /** False when the body has a coding the gateway cannot decode: pass it through unread. */
  readonly readable: boolean;
}

/**
 * The response as the gateway must read and forward it: uncompressed. A body with a content
 * coding the gateway can decode is decoded (in reverse order of application) and its
 * `content-encoding` and `content-length` headers dropped: the client gets identity, which is
 * always acceptable (RFC 9110 §12.5.3). A coding the gateway cannot decode leaves the response
 * as it is, and `readable` is false: its bytes must not be read (they are passed through).
 */
export function decodeResponse(headers: IncomingHttpHeaders, body: Readable): DecodedResponse {
  const applied = codings(headers['content-encoding']);
  if (applied.length === 0) {
    if (headers['content-encoding'] === undefined) return { headers, body, readable: true };
    const { 'content-encoding': _identity, ...rest } = headers;
    return { headers: rest, body, readable: true };
  }
  if (!applied.every((c) => DECODERS[c] !== undefined)) return { headers, body, readable: false };
  const stages = applied.reverse().map((c) => (DECODERS[c] as () => Transform)());
  // Errors of any stage (a corrupt body, the upstream going away) surface on the last one.
  const decoded = pipeline([body, ...stages], () => undefined) as unknown as Readable;
  const { 'content-encoding': _coding, 'content-length': _length, ...rest } = headers;
  return { headers: rest, body: decoded, readable: true };
}
