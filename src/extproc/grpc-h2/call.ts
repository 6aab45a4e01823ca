import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { frameMessage, FramingError, MessageReader } from './framing.js';
import { encodeGrpcMessage, GrpcCode, parseGrpcTimeout, type GrpcStatus } from './status.js';

/** Compressions a request may use (MessageReader decompresses them); grpc-js accepts the same. */
export const ACCEPT_ENCODING = 'identity,deflate,gzip';

/** The response headers grpc-js sends, so a client sees the same ones from either server. */
const RESPONSE_HEADERS: OutgoingHttpHeaders = {
  [constants.HTTP2_HEADER_STATUS]: 200,
  [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc+proto',
  'grpc-accept-encoding': ACCEPT_ENCODING,
  'grpc-encoding': 'identity',
};

/** What a call tells its handler. */
export interface CallListener {
  /** One request message (its bytes, decompressed; possibly a view of a DATA frame: do not keep it past the call). */
  onMessage(message: Buffer): void;
  /** The client half-closed: no more messages. */
  onHalfClose(): void;
  /** The call is over (ended by us, reset or cancelled by the client, its connection gone, its deadline passed). Once, last; nothing is delivered after it. */
  onClose(): void;
}

export interface CallLimits {
  /** Largest request message, bytes (after decompression); past it the call ends RESOURCE_EXHAUSTED. */
  readonly maxReceiveBytes: number;
  /** Largest response message, bytes; past it the call ends RESOURCE_EXHAUSTED. */
  readonly maxSendBytes: number;
}

/**
 * One gRPC call on a node:http2 server stream (gRPC over HTTP/2, grpc/grpc doc/PROTOCOL-HTTP2.md):
 * request messages reassembled from DATA frames, response messages framed and written with the
 * stream's backpressure, the response headers sent before the first message, the status sent as
 * trailers (or as a trailers-only response when no message was sent), and the grpc-timeout
 * deadline enforced (DEADLINE_EXCEEDED).
 */
export class GrpcServerCall {
  readonly #stream: ServerHttp2Stream;
  readonly #limits: CallLimits;
  readonly #reader: MessageReader;
  #listener: CallListener | undefined;
  #headersSent = false;
  #ended = false;
  #closed = false;
  #deadline: NodeJS.Timeout | undefined;
  /** A status to end with once the listener is attached (a malformed grpc-timeout). */
  #early: GrpcStatus | undefined;

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, limits: CallLimits) {
    this.#stream = stream;
    this.#limits = limits;
    const encoding = headers['grpc-encoding'];
    this.#reader = new MessageReader(limits.maxReceiveBytes, typeof encoding === 'string' && encoding !== '' ? encoding : 'identity');
    const timeout = headers['grpc-timeout'];
    if (typeof timeout === 'string') {
      const ms = parseGrpcTimeout(timeout);
      if (ms === undefined) this.#early = { code: GrpcCode.INTERNAL, details: `Invalid grpc-timeout value "${timeout}"` };
      else {
        this.#deadline = setTimeout(() => this.end({ code: GrpcCode.DEADLINE_EXCEEDED, details: 'Deadline exceeded' }), ms);
        this.#deadline.unref();
      }
    }
  }

  /** The HTTP/2 stream under the call (its 'drain' and 'close' events pace the writer). */
  get stream(): ServerHttp2Stream {
    return this.#stream;
  }

  /** True once the status went out (or the stream closed): writes are dropped. */
  get ended(): boolean {
    return this.#ended || this.#closed;
  }

  /** Starts delivering the call's events to `listener`. */
  start(listener: CallListener): void {
    this.#listener = listener;
    const stream = this.#stream;
    // Errors (a reset, a broken connection) are followed by 'close', which is what ends the call.
    stream.on('error', () => undefined);
    stream.on('close', () => this.#onClose());
    if (this.#early !== undefined) {
      this.end(this.#early);
      return;
    }
    stream.on('data', (frame: Buffer) => this.#onData(frame));
    stream.on('end', () => {
      if (this.#ended) return;
      // A stream cut in the middle of a message is malformed (grpc-js ends it INTERNAL too).
      if (this.#reader.buffered > 0) this.end({ code: GrpcCode.INTERNAL, details: 'Request stream ended in the middle of a message' });
      else this.#listener?.onHalfClose();
    });
  }

  #onData(frame: Buffer): void {
    if (this.#ended) return;
    try {
      this.#reader.push(frame, (message) => {
        if (!this.#ended) this.#listener?.onMessage(message);
      });
    } catch (err) {
      if (err instanceof FramingError) this.end(err.status);
      else throw err;
    }
  }

  /** Stops reading (HTTP/2 flow control then holds the client back). */
  pause(): void {
    this.#stream.pause();
  }

  resume(): void {
    if (this.#stream.isPaused()) this.#stream.resume();
  }

  /** Sends one response message (protobuf bytes). False when the stream's buffer is full: wait for its 'drain' (or 'close'). */
  write(message: Buffer): boolean {
    if (this.ended) return true;
    if (message.length > this.#limits.maxSendBytes) {
      this.end({ code: GrpcCode.RESOURCE_EXHAUSTED, details: `Sent message larger than max (${message.length} vs. ${this.#limits.maxSendBytes})` });
      return true;
    }
    if (!this.#headersSent) {
      this.#headersSent = true;
      this.#stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    }
    return this.#stream.write(frameMessage(message));
  }

  /**
   * Ends the call with `status` (default OK): as trailers after the messages sent, or as a
   * trailers-only response. Anything the client still sends is read and dropped. Idempotent.
   */
  end(status: GrpcStatus = { code: GrpcCode.OK, details: 'OK' }): void {
    if (this.ended) return;
    this.#ended = true;
    this.#clearDeadline();
    const stream = this.#stream;
    // Reset or its connection gone: nothing can be sent.
    if (stream.destroyed || stream.closed) {
      this.#onClose();
      return;
    }
    const trailers: OutgoingHttpHeaders = { 'grpc-status': String(status.code), 'grpc-message': encodeGrpcMessage(status.details) };
    if (!this.#headersSent) {
      this.#headersSent = true;
      stream.respond({ ...RESPONSE_HEADERS, ...trailers }, { endStream: true });
    } else {
      stream.once('wantTrailers', () => stream.sendTrailers(trailers));
      stream.end();
    }
    // Drain what the client still sends (the stream closes once both sides have ended).
    stream.resume();
    // The call is over for its handler now, as with grpc-js (a deadline or an error status
    // cancels the call at once, not when the client gets round to closing its side).
    this.#onClose();
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearDeadline();
    this.#listener?.onClose();
  }

  #clearDeadline(): void {
    if (this.#deadline !== undefined) clearTimeout(this.#deadline);
    this.#deadline = undefined;
  }
}

/**
 * Ends a stream that reaches no call: a trailers-only response with `status` (unknown method:
 * UNIMPLEMENTED, as grpc-js answers), or HTTP 415 when the content-type is not gRPC's (the
 * protocol says so: not a gRPC request at all).
 */
export function refuseStream(stream: ServerHttp2Stream, status: GrpcStatus | 415): void {
  stream.on('error', () => undefined);
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  if (status === 415) stream.respond({ [constants.HTTP2_HEADER_STATUS]: 415 }, { endStream: true });
  else stream.respond({ ...RESPONSE_HEADERS, 'grpc-status': String(status.code), 'grpc-message': encodeGrpcMessage(status.details) }, { endStream: true });
  stream.resume();
}
