import { gunzipSync, inflateSync } from 'node:zlib';
import { GrpcCode, type GrpcStatus } from './status.js';

/*
 * gRPC's Length-Prefixed-Message (PROTOCOL-HTTP2.md): a 1-byte Compressed-Flag, a 4-byte
 * big-endian Message-Length, then the message. Messages are cut across HTTP/2 DATA frames at any
 * byte (Envoy's 16 KiB body message plus its 5-byte prefix spans two frames).
 */

/** Bytes before each message: the compressed flag and the length. */
export const PREFIX_BYTES = 5;

/** The stream must end with this status (a message past the limit, an unknown compression, …). */
export class FramingError extends Error {
  override readonly name = 'FramingError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }

  get status(): GrpcStatus {
    return { code: this.code, details: this.message };
  }
}

/**
 * Reassembles the messages of one stream from its DATA frames. Frames are kept as received; a
 * message that lies inside one frame is handed out as a view of it (no copy), one that spans
 * frames is copied once into a buffer of its own size: each byte is copied at most once, whatever
 * the frame sizes.
 *
 * `encoding` is the stream's grpc-encoding: a message with the compressed flag is decompressed
 * with it (gzip and deflate, what grpc-js accepts; Envoy's ext_proc client does not compress),
 * bounded by `maxBytes` after decompression too.
 */
export class MessageReader {
  readonly #maxBytes: number;
  readonly #encoding: string;
  /** Frames (or their unread tails) not yet handed out, oldest first. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** The next message's length and flag once its prefix has been read; -1 before. */
  #length = -1;
  #compressed = false;

  constructor(maxBytes: number, encoding = 'identity') {
    this.#maxBytes = maxBytes;
    this.#encoding = encoding;
  }

  /** Bytes received and not yet part of a complete message (a stream that ends with some was cut mid-message). */
  get buffered(): number {
    return this.#pendingBytes;
  }

  /**
   * Takes one DATA frame's payload; calls `onMessage` for each message it completes, in order.
   * Throws FramingError (RESOURCE_EXHAUSTED past `maxBytes`, UNIMPLEMENTED for a compression it
   * does not know, INTERNAL for a message that does not decompress).
   */
  push(frame: Buffer, onMessage: (message: Buffer) => void): void {
    if (frame.length === 0) return;
    this.#pending.push(frame);
    this.#pendingBytes += frame.length;
    for (;;) {
      if (this.#length < 0) {
        if (this.#pendingBytes < PREFIX_BYTES) return;
        const prefix = this.#take(PREFIX_BYTES);
        const flag = prefix[0] as number;
        const length = prefix.readUInt32BE(1);
        // grpc-js's wording, so a client sees the same status either way.
        if (length > this.#maxBytes) throw new FramingError(GrpcCode.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs. ${this.#maxBytes})`);
        this.#length = length;
        this.#compressed = flag === 1;
      }
      if (this.#pendingBytes < this.#length) return;
      const raw = this.#take(this.#length);
      const compressed = this.#compressed;
      this.#length = -1;
      onMessage(compressed ? this.#decompress(raw) : raw);
    }
  }

  /** The next `n` bytes (n ≤ pendingBytes): a view when one frame holds them, else one copy. */
  #take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.#pending[0] as Buffer;
    if (first.length >= n) {
      this.#pendingBytes -= n;
      if (first.length === n) this.#pending.shift();
      else this.#pending[0] = first.subarray(n);
      return n === first.length ? first : first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.#pending[0] as Buffer;
      const want = n - filled;
      if (head.length <= want) {
        head.copy(out, filled);
        filled += head.length;
        this.#pending.shift();
      } else {
        head.copy(out, filled, 0, want);
        filled += want;
        this.#pending[0] = head.subarray(want);
      }
    }
    this.#pendingBytes -= n;
    return out;
  }

  #decompress(raw: Buffer): Buffer {
    // A compressed message on a stream that named no compression (PROTOCOL-HTTP2.md: a protocol error).
    if (this.#encoding === 'identity') throw new FramingError(GrpcCode.INTERNAL, 'Received a compressed message without grpc-encoding');
    if (this.#encoding !== 'gzip' && this.#encoding !== 'deflate') {
      throw new FramingError(GrpcCode.UNIMPLEMENTED, `Received message compressed with unsupported encoding "${this.#encoding}"`);
    }
    try {
      // Synchronous, bounded by maxOutputLength: a rare path (no Envoy client compresses ext_proc).
      return (this.#encoding === 'gzip' ? gunzipSync : inflateSync)(raw, { maxOutputLength: Math.max(1, this.#maxBytes) });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new FramingError(GrpcCode.RESOURCE_EXHAUSTED, `Received message that decompresses to a size larger than ${this.#maxBytes}`);
      throw new FramingError(GrpcCode.INTERNAL, 'Failed to decompress message');
    }
  }
}

/** `message` with its prefix (uncompressed), in one buffer: one write per message. */
export function frameMessage(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, PREFIX_BYTES);
  return out;
}
