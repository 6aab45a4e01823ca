/**
 * ZMTP 3.x frames (ZeroMQ RFC 23/ZMTP 3.0 §"Framing", unchanged in RFC 37/ZMTP 3.1): a flags
 * byte (bit 0 MORE: another frame of this message follows; bit 1 LONG: the size is 8 bytes, else
 * 1; bit 2 COMMAND: a command frame, never MORE; bits 3–7 must be zero), the size (unsigned,
 * network byte order), then that many body bytes.
 *
 * The decoder reads the stream as it comes and checks every bound on a frame's HEADER, before a
 * byte of its body is allocated: a frame bigger than `maxFrameBytes`, a message of more than
 * `maxFrames` frames or more than `maxMessageBytes` bytes, a command bigger than
 * `maxCommandBytes`, or reserved flag bits end the stream with a reason (the caller drops the
 * connection). libzmq bounds frames (ZMQ_MAXMSGSIZE) but not frames per message, and zeromq.js
 * collects a whole message before handing it over, so a peer sending one message of millions of
 * empty frames reaches gigabytes there; here it is cut at frame `maxFrames + 1`.
 *
 * Memory held: the frames of the message in progress (≤ `maxMessageBytes` plus
 * `maxFrames` Buffer headers) and at most one partial frame (≤ `maxFrameBytes`), no matter what
 * the peer sends.
 */

export const FLAG_MORE = 0x01;
export const FLAG_LONG = 0x02;
export const FLAG_COMMAND = 0x04;

export interface FrameLimits {
  /** Largest frame body, bytes (a zeromq socket's `maxMessageSize`). */
  readonly maxFrameBytes: number;
  /** Most frames in one message. */
  readonly maxFrames: number;
  /** Most bytes (all frame bodies) in one message. */
  readonly maxMessageBytes: number;
  /** Largest command body, bytes (READY, PING, ERROR, … are small). */
  readonly maxCommandBytes: number;
}

export interface FrameSink {
  /** A whole message; return false to stop decoding after it (back-pressure: `decode` returns where it stopped). */
  onMessage(frames: Buffer[]): boolean;
  /** A command frame: its name and data (RFC 23 §"Commands": name-size, name, data). */
  onCommand(name: string, data: Buffer): void;
}

export type DecodeResult =
  | { readonly ok: true; /** Bytes of the chunk consumed; less than its length when the sink asked to stop. */ readonly consumed: number }
  | { readonly ok: false; readonly reason: FrameViolation };

/** Why a stream was cut off (a fixed set: counters, log lines). */
export type FrameViolation = 'frame_too_large' | 'too_many_frames' | 'message_too_large' | 'command_too_large' | 'bad_flags' | 'bad_command';
export const FRAME_VIOLATIONS: readonly FrameViolation[] = ['frame_too_large', 'too_many_frames', 'message_too_large', 'command_too_large', 'bad_flags', 'bad_command'];

const EMPTY = Buffer.alloc(0);

export class FrameDecoder {
  readonly #limits: FrameLimits;
  /** Header bytes read so far (flags + up to 8 size bytes). */
  readonly #header = Buffer.alloc(9);
  #headerLen = 0;
  /** The frame whose body is being read, and how much of it has arrived. */
  #body: Buffer | undefined;
  #bodyLen = 0;
  #flags = 0;
  /** The message in progress. */
  #frames: Buffer[] = [];
  #messageBytes = 0;
  #failed: FrameViolation | undefined;

  constructor(limits: FrameLimits) {
    this.#limits = limits;
  }

  /**
   * Feeds `chunk` from `start`. Frames are copied out of the chunk (the chunk is not retained).
   * After a violation every later call returns it again.
   */
  decode(chunk: Buffer, start = 0): DecodeResult {
    if (this.#failed !== undefined) return { ok: false, reason: this.#failed };
    let i = start;
    while (i < chunk.length) {
      if (this.#body === undefined) {
        // Header: the flags byte, then 1 or 8 size bytes.
        this.#header[this.#headerLen++] = chunk[i++]!;
        const flags = this.#header[0]!;
        if (this.#headerLen === 1) {
          if ((flags & ~(FLAG_MORE | FLAG_LONG | FLAG_COMMAND)) !== 0 || (flags & FLAG_COMMAND && flags & FLAG_MORE)) return this.#fail('bad_flags');
          continue;
        }
        const need = flags & FLAG_LONG ? 9 : 2;
        if (this.#headerLen < need) continue;
        this.#headerLen = 0;
        const size = flags & FLAG_LONG ? this.#header.readBigUInt64BE(1) : BigInt(this.#header[1]!);
        const bad = this.#check(flags, size);
        if (bad !== undefined) return this.#fail(bad);
        this.#flags = flags;
        const n = Number(size);
        if (n === 0) {
          const r = this.#complete(EMPTY);
          if (r !== undefined) return r;
          if (this.#stop) return this.#stopped(i - start);
          continue;
        }
        this.#body = Buffer.allocUnsafe(n);
        this.#bodyLen = 0;
        continue;
      }
      const body = this.#body;
      const take = Math.min(body.length - this.#bodyLen, chunk.length - i);
      chunk.copy(body, this.#bodyLen, i, i + take);
      this.#bodyLen += take;
      i += take;
      if (this.#bodyLen < body.length) continue;
      this.#body = undefined;
      const r = this.#complete(body);
      if (r !== undefined) return r;
      if (this.#stop) return this.#stopped(i - start);
    }
    return { ok: true, consumed: i - start };
  }

  #stop = false;
  #stopped(i: number): DecodeResult {
    this.#stop = false;
    return { ok: true, consumed: i };
  }

  #sink: FrameSink | undefined;
  /** Where whole messages and commands go. */
  set sink(sink: FrameSink) {
    this.#sink = sink;
  }

  #check(flags: number, size: bigint): FrameViolation | undefined {
    const l = this.#limits;
    if (flags & FLAG_COMMAND) {
      if (this.#frames.length > 0) return 'bad_command'; // a command inside a multipart message
      return size > BigInt(l.maxCommandBytes) ? 'command_too_large' : undefined;
    }
    if (size > BigInt(l.maxFrameBytes)) return 'frame_too_large';
    if (this.#frames.length + 1 > l.maxFrames) return 'too_many_frames';
    if (BigInt(this.#messageBytes) + size > BigInt(l.maxMessageBytes)) return 'message_too_large';
    return undefined;
  }

  /** A whole frame arrived. */
  #complete(body: Buffer): DecodeResult | undefined {
    const sink = this.#sink;
    if (this.#flags & FLAG_COMMAND) {
      const nameLen = body[0];
      if (nameLen === undefined || nameLen === 0 || 1 + nameLen > body.length) return this.#fail('bad_command');
      sink?.onCommand(body.toString('latin1', 1, 1 + nameLen), body.subarray(1 + nameLen));
      return undefined;
    }
    this.#frames.push(body);
    this.#messageBytes += body.length;
    if (this.#flags & FLAG_MORE) return undefined;
    const frames = this.#frames;
    this.#frames = [];
    this.#messageBytes = 0;
    if (sink !== undefined && !sink.onMessage(frames)) this.#stop = true;
    return undefined;
  }

  #fail(reason: FrameViolation): DecodeResult {
    this.#failed = reason;
    this.#frames = [];
    this.#body = undefined;
    return { ok: false, reason };
  }
}

function header(flags: number, size: number): Buffer {
  if (size <= 255) return Buffer.from([flags, size]);
  const h = Buffer.alloc(9);
  h[0] = flags | FLAG_LONG;
  h.writeBigUInt64BE(BigInt(size), 1);
  return h;
}

/** A message's frames on the wire (every frame but the last has MORE). */
export function encodeMessage(frames: readonly (Buffer | string)[]): Buffer {
  const parts: Buffer[] = [];
  frames.forEach((f, i) => {
    const body = typeof f === 'string' ? Buffer.from(f, 'utf8') : f;
    parts.push(header(i < frames.length - 1 ? FLAG_MORE : 0, body.length), body);
  });
  return Buffer.concat(parts);
}

/** A command frame: name-size (1 byte), name (ASCII, 1–255 bytes), data. */
export function encodeCommand(name: string, data: Buffer = EMPTY): Buffer {
  const n = Buffer.from(name, 'latin1');
  const body = Buffer.concat([Buffer.from([n.length]), n, data]);
  return Buffer.concat([header(FLAG_COMMAND, body.length), body]);
}
