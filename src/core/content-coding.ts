import { Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';

/**
 * Content codings (RFC 9110 §8.4.1) a model server or a middlebox may apply to an answer even
 * though the gateway asked for `identity`, and the guards that keep a decoded body bounded. Shared
 * by the data plane (answers relayed to clients) and the scraper (`/metrics` pages).
 */

/** Decoders by coding name; zstd where the runtime has it (Node ≥ 22.15). */
export const DECODERS: Readonly<Record<string, () => Transform>> = {
  gzip: () => zlib.createGunzip(),
  'x-gzip': () => zlib.createGunzip(),
  // Servers disagree on "deflate": RFC 9110 says zlib-wrapped, some send it raw.
  deflate: () => new DeflateDecoder(),
  br: () => zlib.createBrotliDecompress(),
  ...zstdDecoder(),
};

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

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#inflate?.destroy();
    callback(err);
  }
}

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

/** The codings applied to a body, outermost last, without `identity`. */
export function contentCodings(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const joined = Array.isArray(value) ? value.join(',') : value;
  return joined
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
}

/** True when every coding in the list has a decoder. */
export function canDecode(codings: readonly string[]): boolean {
  return codings.every((c) => DECODERS[c] !== undefined);
}

/** Decoder stages for `codings` (as applied, outermost last), in the order a body goes through them. */
export function decoderStages(codings: readonly string[]): Transform[] {
  return [...codings].reverse().map((c) => (DECODERS[c] as () => Transform)());
}

/** Thrown (as a stream error) when a decoded body passes its bound. Code `ERR_DECODED_TOO_LARGE`. */
export class DecodedTooLargeError extends Error {
  readonly code = 'ERR_DECODED_TOO_LARGE';
  /** Decoded bytes when it stopped; encoded bytes read by then. */
  readonly decodedBytes: number;
  readonly encodedBytes: number;

  constructor(message: string, decodedBytes: number, encodedBytes: number) {
    super(message);
    this.name = 'DecodedTooLargeError';
    this.decodedBytes = decodedBytes;
    this.encodedBytes = encodedBytes;
  }
}

/** How far a decoded body may grow; see DecodeGuard. */
export interface DecodeLimits {
  /** Decoded bytes never exceed this, whatever the ratio. */
  readonly maxBytes: number;
  /** Past `ratioFloorBytes` decoded, decoded / encoded may not exceed this. Infinity: no ratio check. */
  readonly maxRatio: number;
  /** Decoded bytes any ratio is allowed for (small bodies compress well). */
  readonly ratioFloorBytes: number;
}

/**
 * A pair of pass-through stages around the decoders: `meter` goes in front of them and counts the
 * encoded bytes, `limit` goes behind them and fails the stream with DecodedTooLargeError as soon
 * as the decoded bytes pass `maxBytes`, or pass `ratioFloorBytes` at more than `maxRatio` times
 * the encoded bytes read so far. A decompression bomb is stopped after about one decoder chunk
 * (16 KiB) past the bound: decoders produce output only as fast as it is read.
 */
export class DecodeGuard {
  encodedBytes = 0;
  decodedBytes = 0;
  readonly meter: Transform;
  readonly limit: Transform;

  constructor(limits: DecodeLimits) {
    this.meter = new Transform({
      transform: (chunk: Buffer, _enc, callback) => {
        this.encodedBytes += chunk.length;
        callback(null, chunk);
      },
    });
    this.limit = new Transform({
      transform: (chunk: Buffer, _enc, callback) => {
        this.decodedBytes += chunk.length;
        const d = this.decodedBytes;
        if (d > limits.maxBytes) {
          return callback(new DecodedTooLargeError(`decoded body passed ${limits.maxBytes} bytes`, d, this.encodedBytes));
        }
        if (d > limits.ratioFloorBytes && d > limits.maxRatio * this.encodedBytes) {
          const ratio = Math.round(d / Math.max(1, this.encodedBytes));
          return callback(new DecodedTooLargeError(`decoded body grew ${ratio}× its encoded size (at most ${limits.maxRatio}× past ${limits.ratioFloorBytes} bytes)`, d, this.encodedBytes));
        }
        callback(null, chunk);
      },
    });
  }
}
