import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constantAnswer, decodeBodyMessage, decodeRequest, encodeResponse, encodeStreamedBody, streamedAnswer, streamedPiece } from '../../src/extproc/codec.js';
import type { ProcessingRequest, ProcessingResponse } from '../../src/extproc/messages.js';
import { decodeProcessingRequest, decodeProcessingResponse, encodeProcessingRequest, encodeProcessingResponse } from '../../src/extproc/proto.js';

// The picker's hand codec (codec.ts) must give exactly what protobufjs gives: the same objects
// for the body messages it decodes, the same bytes for the answers it encodes, and protobufjs's
// answer for everything else.

/** Body sizes around the varint length boundaries (1, 2 and 3 bytes), Envoy's 16 KiB and the 62,000-byte piece. */
const SIZES = [0, 1, 127, 128, 300, 16_383, 16_384, 62_000, 2_097_152];

const bytes = (n: number): Buffer => Buffer.alloc(n, 'a');

test('request_body and response_body chunks decode by hand to what protobufjs decodes, the body a view of the message', () => {
  for (const kind of ['request_body', 'response_body'] as const) {
    for (const n of SIZES) {
      for (const flags of [{}, { end_of_stream: true }, { end_of_stream: false }, { end_of_stream: true, end_of_stream_without_message: true, grpc_message_compressed: true }]) {
        const msg = { [kind]: { body: bytes(n), ...flags } } as ProcessingRequest;
        const wire = encodeProcessingRequest(msg);
        const mine = decodeBodyMessage(wire);
        assert.ok(mine !== undefined, `${kind} ${n} ${JSON.stringify(flags)} decoded by hand`);
        assert.deepEqual(mine, decodeProcessingRequest(wire));
        if (n > 0) assert.equal(mine[kind]?.body?.buffer, wire.buffer, 'no copy of the body');
      }
    }
  }
  // No body field at all (Envoy's end_of_stream-only message may omit an empty body).
  const eosOnly = encodeProcessingRequest({ response_body: { end_of_stream: true } });
  assert.deepEqual(decodeBodyMessage(eosOnly), decodeProcessingRequest(eosOnly));
});

test('any other ProcessingRequest is left to protobufjs, and decodeRequest gives protobufjs\'s object', () => {
  const others: ProcessingRequest[] = [
    { request_headers: { headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1') }] }, end_of_stream: true } },
    // A body message with fields beside the oneof: metadata, protocol_config.
    { request_body: { body: bytes(10) }, protocol_config: { request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'FULL_DUPLEX_STREAMED' } },
    { response_body: { body: bytes(10), end_of_stream: true }, metadata_context: { filter_metadata: { 'envoy.lb': { fields: { a: { stringValue: 'b', kind: 'stringValue' } } } } } },
    { response_trailers: { trailers: { headers: [] } } },
  ];
  for (const msg of others) {
    const wire = encodeProcessingRequest(msg);
    assert.equal(decodeBodyMessage(wire), undefined);
    assert.deepEqual(decodeRequest(wire), decodeProcessingRequest(wire));
  }
  // An unknown field inside HttpBody (a newer Envoy), a field before the oneof, a truncated message: protobufjs decides.
  const unknownInside = Buffer.from([0x2a, 0x05, 0x0a, 0x01, 0x61, 0x48, 0x01]);
  assert.equal(decodeBodyMessage(unknownInside), undefined);
  assert.deepEqual(decodeRequest(unknownInside), decodeProcessingRequest(unknownInside));
  const fieldFirst = Buffer.concat([Buffer.from([0x50, 0x01]), encodeProcessingRequest({ response_body: { body: bytes(3) } })]);
  assert.equal(decodeBodyMessage(fieldFirst), undefined);
  assert.deepEqual(decodeRequest(fieldFirst), decodeProcessingRequest(fieldFirst));
  const truncated = encodeProcessingRequest({ response_body: { body: bytes(20) } }).subarray(0, 10);
  assert.equal(decodeBodyMessage(truncated), undefined);
  assert.throws(() => decodeRequest(truncated));
});

test('a streamed body answer has the bytes protobufjs writes for the same message', () => {
  for (const kind of ['request_body', 'response_body'] as const) {
    for (const n of SIZES) {
      for (const eos of [false, true]) {
        const answer = streamedAnswer(kind, bytes(n), eos);
        const expected = encodeProcessingResponse(answer);
        assert.deepEqual(encodeStreamedBody(kind, bytes(n), eos), expected, `${kind} ${n} eos ${eos}`);
        assert.deepEqual(encodeResponse(answer), expected);
        assert.deepEqual(streamedPiece(answer), { kind, body: bytes(n), endOfStream: eos });
        assert.deepEqual(answer, { [kind]: { response: { body_mutation: { streamed_response: { body: bytes(n), ...(eos ? { end_of_stream: true } : {}) } } } } });
      }
    }
  }
});

test('a constant answer is frozen, encodes to protobufjs\'s bytes, and any other answer goes through protobufjs', () => {
  const constant = constantAnswer({ response_headers: { response: {} } });
  assert.ok(Object.isFrozen(constant) && Object.isFrozen(constant.response_headers));
  assert.deepEqual(encodeResponse(constant), encodeProcessingResponse({ response_headers: { response: {} } }));
  assert.equal(encodeResponse(constant), encodeResponse(constant), 'encoded once');
  const other = { request_headers: { response: { clear_route_cache: true } } };
  assert.deepEqual(encodeResponse(other), encodeProcessingResponse(other));
  assert.equal(decodeProcessingResponse(encodeResponse(other)).request_headers?.response?.clear_route_cache, true);
});

test('only an answer that is exactly a streamed piece is encoded by hand; any other field leaves it to protobufjs', () => {
  const body = bytes(5);
  const near: ProcessingResponse[] = [
    { response_body: { response: { body_mutation: { streamed_response: { body } } } }, dynamic_metadata: { fields: {} } },
    { response_body: { response: { body_mutation: { streamed_response: { body } }, clear_route_cache: true } } },
    { request_body: { response: { status: 'CONTINUE_AND_REPLACE', body_mutation: { streamed_response: { body } } } } },
    { response_body: { response: { body_mutation: { streamed_response: { body, end_of_stream: false } } } } },
    { response_body: { response: { body_mutation: { streamed_response: { body: new Uint8Array(body) } } } } },
    { response_body: { response: { body_mutation: { streamed_response: {} } } } },
    { response_body: { response: { body_mutation: { body } } } },
  ];
  for (const msg of near) {
    assert.equal(streamedPiece(msg), undefined, JSON.stringify(msg));
    assert.deepEqual(encodeResponse(msg), encodeProcessingResponse(msg));
  }
  // The same shape made anywhere is a piece.
  assert.deepEqual(streamedPiece({ request_body: { response: { body_mutation: { streamed_response: { body, end_of_stream: true } } } } }), { kind: 'request_body', body, endOfStream: true });
});
