import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeRequest, encodeResponse } from '../../src/extproc/codec.js';
import { envoyRequestHeaders, metadataContext } from '../../src/extproc/envoy-standin.js';
import { decodeHeadersMessage, encodeHeadersAnswer } from '../../src/extproc/headers-codec.js';
import { headerMap, headerMutation, pbStruct, type JsonValue } from '../../src/extproc/headers.js';
import type { ProcessingRequest, ProcessingResponse } from '../../src/extproc/messages.js';
import { decodeProcessingRequest, encodeProcessingRequest, encodeProcessingResponse } from '../../src/extproc/proto.js';

// The header messages' hand codec (headers-codec.ts) must give exactly what protobufjs gives: the
// same objects for the messages it decodes, the same bytes for the answers it encodes, and
// protobufjs's result for anything it leaves (undefined from it).

const requestHeaders = envoyRequestHeaders('POST', '/v1/chat/completions?x=1', { 'content-type': 'application/json', 'content-length': '380', 'x-forwarded-for': '10.0.0.1', 'x-long': 'v'.repeat(300), 'x-latin1': 'caf\u00e9', 'set-cookie': ['a=1', 'b=2'] });
const metadata: Record<string, { [k: string]: JsonValue }> = {
  'envoy.lb': { 'x-gateway-destination-endpoint-served': '10.0.0.7:8000' },
  'envoy.lb.subset_hint': { 'x-gateway-destination-endpoint-subset': ['10.0.0.7:8000', '10.0.0.8:8000'], n: -2.5, yes: true, no: false, nothing: null, nested: { deep: { list: [] } }, empty: {}, 'caf\u00e9': '\u00e9t\u00e9' },
};

test('request_headers and response_headers decode by hand to what protobufjs decodes', () => {
  const messages: ProcessingRequest[] = [
    { request_headers: { headers: headerMap(requestHeaders) }, protocol_config: { request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'FULL_DUPLEX_STREAMED' } },
    { request_headers: { headers: headerMap(requestHeaders), end_of_stream: true }, metadata_context: metadataContext(metadata), protocol_config: { request_body_mode: 'BUFFERED', response_body_mode: 'NONE', send_body_without_waiting_for_header_response: true } },
    { request_headers: { headers: headerMap(requestHeaders), end_of_stream: false }, observability_mode: false },
    { response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream', 'x-empty': '' }) }, metadata_context: metadataContext(metadata) },
    { response_headers: { headers: { headers: [{ key: 'old', value: 'string form' }, { key: '', raw_value: Buffer.alloc(0) }, {}] }, end_of_stream: true } },
    { response_headers: {}, metadata_context: {} },
    { request_headers: { headers: {} }, metadata_context: { filter_metadata: { ns: {} } } },
    ...(['NONE', 'STREAMED', 'BUFFERED', 'BUFFERED_PARTIAL', 'FULL_DUPLEX_STREAMED', 'GRPC'] as const).map((mode) => ({ request_headers: {}, protocol_config: { request_body_mode: mode, response_body_mode: mode } })),
  ];
  for (const msg of messages) {
    const wire = encodeProcessingRequest(msg);
    const mine = decodeHeadersMessage(wire);
    assert.ok(mine !== undefined, `decoded by hand: ${JSON.stringify(msg)}`);
    assert.deepEqual(mine, decodeProcessingRequest(wire));
    assert.deepEqual(decodeRequest(wire), decodeProcessingRequest(wire));
  }
});

test('a header message outside the subset is left to protobufjs', () => {
  const headers = encodeProcessingRequest({ request_headers: { headers: headerMap({ ':path': '/' }) } });
  const cases: Buffer[] = [
    // Trailers, attributes, a body: other messages.
    encodeProcessingRequest({ response_trailers: { trailers: headerMap({ a: 'b' }) } }),
    encodeProcessingRequest({ request_headers: {}, attributes: { a: { fields: {} } } }),
    encodeProcessingRequest({ request_body: { body: Buffer.from('x') } }),
    // A body mode this subset does not name (a newer Envoy's), a null_value other than 0, a second oneof member.
    Buffer.concat([headers, Buffer.from([0x5a, 0x02, 0x08, 0x09])]),
    Buffer.concat([headers, Buffer.from([0x42, 0x0c, 0x0a, 0x0a, 0x0a, 0x01, 0x61, 0x12, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0x62])]).subarray(0, headers.length + 14),
    Buffer.concat([headers, encodeProcessingRequest({ response_headers: {} })]),
    // A repeated field, an unknown field inside HttpHeaders, a truncated message, a wrong wire type.
    Buffer.concat([headers, Buffer.from([0x50, 0x01, 0x50, 0x00])]),
    Buffer.concat([Buffer.from([0x12, 0x02, 0x10, 0x01])]),
    headers.subarray(0, headers.length - 2),
    Buffer.from([0x12, 0x00, 0x5d, 0x00, 0x00, 0x00, 0x00]),
  ];
  for (const wire of cases) {
    assert.equal(decodeHeadersMessage(wire), undefined, wire.toString('hex'));
    let expected: unknown;
    try {
      expected = decodeProcessingRequest(wire);
    } catch {
      assert.throws(() => decodeRequest(wire));
      continue;
    }
    assert.deepEqual(decodeRequest(wire), expected);
  }
});

test('a headers answer has the bytes protobufjs writes for the same message', () => {
  const mutation = headerMutation([
    { op: 'set', name: 'content-length', value: '391' },
    { op: 'set', name: 'x-gateway-destination-endpoint', value: '10.0.0.7:8000,10.0.0.8:8000' },
    { op: 'add', name: 'x-added', value: 'caf\u00e9' },
    { op: 'set', name: 'x-empty', value: '' },
    { op: 'set', name: 'x-long', value: 'v'.repeat(20_000) },
    { op: 'remove', name: 'x-prefiller-host-port' },
  ]);
  const answers: ProcessingResponse[] = [
    { request_headers: { response: { header_mutation: mutation, clear_route_cache: true } }, dynamic_metadata: pbStruct({ 'envoy.lb': { 'x-gateway-destination-endpoint': '10.0.0.7:8000' } }) },
    // Every kind of Value (ASCII strings only: any other goes to protobufjs, below).
    { request_headers: { response: { clear_route_cache: false } }, dynamic_metadata: pbStruct({ list: ['10.0.0.7:8000', 1], n: -2.5, yes: true, no: false, nothing: null, nested: { deep: { list: [] } }, empty: {} }) },
    { response_headers: { response: { header_mutation: headerMutation([{ op: 'set', name: 'x-request-id', value: 'abc' }, { op: 'remove', name: 'content-length' }]) } } },
    { response_headers: { response: { header_mutation: { remove_headers: ['a', 'b'] } } } },
    { response_headers: { response: { header_mutation: {} } } },
    { response_headers: { response: {} } },
    { response_headers: {} },
    { request_headers: { response: {} }, dynamic_metadata: { fields: {} } },
  ];
  for (const answer of answers) {
    const expected = encodeProcessingResponse(answer);
    assert.deepEqual(encodeHeadersAnswer(answer), expected, JSON.stringify(answer).slice(0, 200));
    assert.deepEqual(encodeResponse(answer), expected);
  }
});

test('an answer outside the subset is left to protobufjs', () => {
  const header = { key: 'a', raw_value: Buffer.from('b') };
  const answers: ProcessingResponse[] = [
    { immediate_response: { status: { code: 400 } } },
    { request_body: { response: { status: 'CONTINUE_AND_REPLACE', body_mutation: { body: Buffer.from('x') } } } },
    { request_headers: { response: { status: 'CONTINUE' } } },
    { request_headers: { response: { header_mutation: { set_headers: [{ header: { key: 'a', value: 'b' } }] } } } },
    { request_headers: { response: { header_mutation: { set_headers: [{ header, append: { value: true } }] } } } },
    { request_headers: { response: { header_mutation: { set_headers: [{ header: { key: 'a', raw_value: new Uint8Array([1]) } }] } } } },
    { request_headers: { response: { header_mutation: { remove_headers: ['caf\u00e9'] } } } },
    { request_headers: { response: {} }, dynamic_metadata: pbStruct({ 'caf\u00e9': 'x' }) },
    { request_headers: { response: {} }, dynamic_metadata: { fields: { a: { stringValue: 'x', kind: 'stringValue' } } } },
    { request_headers: { response: {} }, request_drain: true },
  ];
  for (const answer of answers) {
    assert.equal(encodeHeadersAnswer(answer), undefined, JSON.stringify(answer));
    assert.deepEqual(encodeResponse(answer), encodeProcessingResponse(answer));
  }
});
