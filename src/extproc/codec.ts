import type { ProcessingRequest, ProcessingResponse } from './messages.js';
import { decodeHeadersMessage, encodeHeadersAnswer } from './headers-codec.js';
import { decodeProcessingRequest, encodeProcessingResponse } from './proto.js';

/*
 * The picker's own codec for the messages it handles most: body chunks in, streamed body pieces
 * and constant answers out. A streamed answer costs one message per body message Envoy sends (a
 * 512-token SSE answer is ~9 in each direction), and protobufjs spends most of its time there
 * building and converting message objects (decode then toObject, fromObject then encode) rather
 * than reading or writing bytes. The header messages and their answers have their own codec
 * (headers-codec.ts); everything else (trailers, immediate responses, BUFFERED answers) goes
 * through protobufjs. Field numbers: Envoy's data-plane-api,
 * envoy/service/ext_proc/v3/external_processor.proto (the subset in proto/).
 */

/** Wire types (protobuf encoding): varint and length-delimited. */
const VARINT = 0;
const LEN = 2;
const tag = (field: number, wire: number): number => (field << 3) | wire;

/** ProcessingRequest.request_body (4) and response_body (5), HttpBody messages. */
const REQUEST_BODY_TAG = tag(4, LEN);
const RESPONSE_BODY_TAG = tag(5, LEN);
/** HttpBody: body 1, end_of_stream 2, end_of_stream_without_message 3, grpc_message_compressed 4. */
const BODY_TAG = tag(1, LEN);
const EOS_TAG = tag(2, VARINT);
const EOS_WITHOUT_MESSAGE_TAG = tag(3, VARINT);
const COMPRESSED_TAG = tag(4, VARINT);

/**
 * Reads a varint of at most 4 bytes (values below 2^28) at `pos` and leaves the next position in
 * `lastPos`; -1 for a longer or truncated one (the caller then falls back to protobufjs, which
 * reads any). The lengths and booleans this path reads are always shorter: a gRPC message is
 * bounded far below 2^28 bytes (server.ts, DEFAULT_MAX_MESSAGE_BYTES: 17 MiB).
 */
function readVarint(b: Buffer, pos: number): number {
  let value = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= b.length) return -1;
    const byte = b[pos++] as number;
    value |= (byte & 0x7f) << shift;
    if (byte < 0x80) {
      lastPos = pos;
      return value;
    }
  }
  return -1;
}
/** Where the last readVarint stopped (a module variable: no tuple allocated per field). */
let lastPos = 0;

/**
 * A ProcessingRequest that holds only a request_body or response_body (what Envoy sends for every
 * body chunk), decoded by hand into the object protobufjs would give (proto.ts's options: the
 * body a view of the message's bytes, only the fields on the wire, the oneof's name in `request`).
 * Undefined for anything else (other fields, unknown fields, long varints): protobufjs decodes it.
 */
export function decodeBodyMessage(b: Buffer): ProcessingRequest | undefined {
  const first = b[0];
  if (first !== REQUEST_BODY_TAG && first !== RESPONSE_BODY_TAG) return undefined;
  const length = readVarint(b, 1);
  if (length < 0 || lastPos + length !== b.length) return undefined;
  let pos = lastPos;
  const httpBody: { body?: Buffer; end_of_stream?: boolean; end_of_stream_without_message?: boolean; grpc_message_compressed?: boolean } = {};
  while (pos < b.length) {
    const t = b[pos++];
    if (t === BODY_TAG) {
      const n = readVarint(b, pos);
      if (n < 0 || lastPos + n > b.length) return undefined;
      // protobufjs hands out a view of the bytes, or a fresh empty Buffer for an empty field.
      httpBody.body = n === 0 ? Buffer.alloc(0) : b.subarray(lastPos, lastPos + n);
      pos = lastPos + n;
      continue;
    }
    if (t !== EOS_TAG && t !== EOS_WITHOUT_MESSAGE_TAG && t !== COMPRESSED_TAG) return undefined;
    const v = readVarint(b, pos);
    if (v < 0) return undefined;
    pos = lastPos;
    if (t === EOS_TAG) httpBody.end_of_stream = v !== 0;
    else if (t === EOS_WITHOUT_MESSAGE_TAG) httpBody.end_of_stream_without_message = v !== 0;
    else httpBody.grpc_message_compressed = v !== 0;
  }
  return first === REQUEST_BODY_TAG ? { request_body: httpBody, request: 'request_body' } : { response_body: httpBody, request: 'response_body' };
}

/** Decodes a ProcessingRequest: body chunks and header messages by hand, anything else with protobufjs. */
export function decodeRequest(b: Buffer): ProcessingRequest {
  return decodeBodyMessage(b) ?? decodeHeadersMessage(b) ?? decodeProcessingRequest(b);
}

function varintSize(n: number): number {
  let size = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 128)) size++;
  return size;
}

function writeVarint(out: Buffer, pos: number, n: number): number {
  let v = n;
  while (v >= 0x80) {
    out[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  out[pos++] = v;
  return pos;
}

/** ProcessingResponse.request_body 3 and response_body 4 (BodyResponse). */
const ANSWER_TAG = { request_body: tag(3, LEN), response_body: tag(4, LEN) } as const;
/** BodyResponse.response 1 (CommonResponse); CommonResponse.body_mutation 3; BodyMutation.streamed_response 3; StreamedBodyResponse body 1, end_of_stream 2. */
const RESPONSE_TAG = tag(1, LEN);
const BODY_MUTATION_TAG = tag(3, LEN);
const STREAMED_RESPONSE_TAG = tag(3, LEN);
const STREAMED_BODY_TAG = tag(1, LEN);
const STREAMED_EOS_TAG = tag(2, VARINT);

/**
 * The bytes of `{ [kind]: { response: { body_mutation: { streamed_response: { body, end_of_stream } } } } }`
 * (end_of_stream only when true), the same protobufjs writes, with the body copied once.
 */
export function encodeStreamedBody(kind: 'request_body' | 'response_body', body: Buffer, endOfStream: boolean): Buffer {
  const streamed = 1 + varintSize(body.length) + body.length + (endOfStream ? 2 : 0);
  const mutation = 1 + varintSize(streamed) + streamed;
  const common = 1 + varintSize(mutation) + mutation;
  const answer = 1 + varintSize(common) + common;
  const out = Buffer.allocUnsafe(1 + varintSize(answer) + answer);
  let p = 0;
  out[p++] = ANSWER_TAG[kind];
  p = writeVarint(out, p, answer);
  out[p++] = RESPONSE_TAG;
  p = writeVarint(out, p, common);
  out[p++] = BODY_MUTATION_TAG;
  p = writeVarint(out, p, mutation);
  out[p++] = STREAMED_RESPONSE_TAG;
  p = writeVarint(out, p, streamed);
  out[p++] = STREAMED_BODY_TAG;
  p = writeVarint(out, p, body.length);
  p += body.copy(out, p);
  if (endOfStream) {
    out[p++] = STREAMED_EOS_TAG;
    out[p++] = 1;
  }
  return out;
}

/** What a streamed body answer carries. */
export interface StreamedPiece {
  readonly kind: 'request_body' | 'response_body';
  readonly body: Buffer;
  readonly endOfStream: boolean;
}

/** A StreamedBodyResponse answer: `{ [kind]: { response: { body_mutation: { streamed_response: { body, end_of_stream? } } } } }`. */
export function streamedAnswer(kind: 'request_body' | 'response_body', body: Buffer, endOfStream: boolean): ProcessingResponse {
  const common = { body_mutation: { streamed_response: endOfStream ? { body, end_of_stream: true } : { body } } };
  return kind === 'response_body' ? { response_body: { response: common } } : { request_body: { response: common } };
}

/** True when `o` has no enumerable property but `a` (and `b`). */
function only(o: object, a: string, b?: string): boolean {
  for (const k in o) if (k !== a && k !== b) return false;
  return true;
}

/**
 * The parts of a streamed body answer, when `msg` is exactly one (what streamedAnswer() makes:
 * no other field at any level, a Buffer body, end_of_stream absent or true); else undefined. Read
 * from the object's shape, so any such answer, wherever it was made, is encoded by hand.
 */
export function streamedPiece(msg: ProcessingResponse): StreamedPiece | undefined {
  const kind = msg.response_body !== undefined ? 'response_body' : msg.request_body !== undefined ? 'request_body' : undefined;
  if (kind === undefined || !only(msg, kind)) return undefined;
  const answer = msg[kind] as NonNullable<ProcessingResponse['response_body']>;
  const common = answer.response;
  if (common === undefined || !only(answer, 'response')) return undefined;
  const mutation = common.body_mutation;
  if (mutation === undefined || !only(common, 'body_mutation')) return undefined;
  const streamed = mutation.streamed_response;
  if (streamed === undefined || !only(mutation, 'streamed_response')) return undefined;
  const { body, end_of_stream: eos } = streamed;
  if (!Buffer.isBuffer(body) || (eos !== undefined && eos !== true) || !only(streamed, 'body', 'end_of_stream')) return undefined;
  return { kind, body, endOfStream: eos === true };
}

const ENCODED = Symbol('encoded');

/**
 * An answer that never changes, encoded once (protobufjs, at first use) and frozen: the same
 * object is handed out for every request.
 */
export function constantAnswer(msg: ProcessingResponse): ProcessingResponse {
  let bytes: Buffer | undefined;
  Object.defineProperty(msg, ENCODED, { get: () => (bytes ??= encodeProcessingResponse(msg)) });
  return deepFreeze(msg);
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null && !Buffer.isBuffer(o)) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Encodes a ProcessingResponse: constant answers from their bytes, streamed pieces and headers answers by hand, the rest with protobufjs. */
export function encodeResponse(msg: ProcessingResponse): Buffer {
  const encoded = (msg as { [ENCODED]?: Buffer })[ENCODED];
  if (encoded !== undefined) return encoded;
  const piece = streamedPiece(msg);
  if (piece !== undefined) return encodeStreamedBody(piece.kind, piece.body, piece.endOfStream);
  return encodeHeadersAnswer(msg) ?? encodeProcessingResponse(msg);
}
