import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeProcessingRequest, decodeProcessingResponse, encodeProcessingRequest, encodeProcessingResponse, PROCESS_METHOD_PATH } from '../../src/extproc/proto.js';
import type { ProcessingRequest, ProcessingResponse } from '../../src/extproc/messages.js';

// An independent protobuf writer: varints and length-delimited fields written by hand from the
// field numbers of Envoy's ext_proc protos (envoyproxy/data-plane-api), so a wrong number or type
// in our .proto files shows up as different bytes. Fields go in ascending number order, as
// protobuf encoders write them.
const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}
const key = (field: number, wire: number): Buffer => varint(field * 8 + wire);
const len = (field: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([key(field, LEN), varint(body.length), body]);
};
const str = (field: number, s: string): Buffer => len(field, Buffer.from(s, 'utf8'));
const uint = (field: number, n: number): Buffer => Buffer.concat([key(field, VARINT), varint(n)]);
const bool = (field: number): Buffer => uint(field, 1);
const double = (field: number, n: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(n);
  return Buffer.concat([key(field, FIXED64), b]);
};

// config.core.v3.HeaderValue { key 1, value 2, raw_value 3 }, HeaderMap { headers 1 }.
const headerValue = (field: number, k: string, raw: string): Buffer => len(field, str(1, k), len(3, Buffer.from(raw)));
// google.protobuf.Value { string_value 3, number_value 2, struct_value 5 }; Struct { fields 1: map entry { key 1, value 2 } }.
const structOf = (field: number, entries: Array<[string, Buffer]>): Buffer => len(field, ...entries.map(([k, value]) => len(1, str(1, k), len(2, value))));

test('the gRPC method path is Envoy\'s', () => {
  assert.equal(PROCESS_METHOD_PATH, '/envoy.service.ext_proc.v3.ExternalProcessor/Process');
});

test('a ProcessingRequest with request_headers (raw_value headers, end_of_stream) has the bytes Envoy\'s field numbers give, both ways', () => {
  const msg: ProcessingRequest = {
    request_headers: {
      headers: { headers: [{ key: ':path', raw_value: Buffer.from('/v1/completions') }, { key: 'content-type', raw_value: Buffer.from('application/json') }] },
      end_of_stream: true,
    },
    request: 'request_headers',
    metadata_context: { filter_metadata: { 'envoy.lb.subset_hint': { fields: { 'x-gateway-destination-endpoint-subset': { stringValue: '10.0.0.1:8000', kind: 'stringValue' } } } } },
  };
  // ProcessingRequest.request_headers 2 → HttpHeaders { headers 1 (HeaderMap), end_of_stream 3 }; metadata_context 8 → Metadata { filter_metadata 1 }.
  const bytes = Buffer.concat([
    len(2, len(1, headerValue(1, ':path', '/v1/completions'), headerValue(1, 'content-type', 'application/json')), bool(3)),
    len(8, len(1, str(1, 'envoy.lb.subset_hint'), structOf(2, [['x-gateway-destination-endpoint-subset', str(3, '10.0.0.1:8000')]]))),
  ]);
  assert.deepEqual(encodeProcessingRequest(msg), bytes);
  assert.deepEqual(decodeProcessingRequest(bytes), msg);
});

test('a request_body chunk and protocol_config have the same bytes both ways', () => {
  const msg: ProcessingRequest = {
    request_body: { body: Buffer.from('{"model":"m"'), end_of_stream: true },
    request: 'request_body',
    protocol_config: { request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'BUFFERED', send_body_without_waiting_for_header_response: true },
  };
  // request_body 4 → HttpBody { body 1, end_of_stream 2 }; protocol_config 11 → { request_body_mode 1, response_body_mode 2, send_body_without_waiting… 3 }.
  const bytes = Buffer.concat([len(4, len(1, Buffer.from('{"model":"m"')), bool(2)), len(11, uint(1, 4), uint(2, 2), bool(3))]);
  assert.deepEqual(encodeProcessingRequest(msg), bytes);
  assert.deepEqual(decodeProcessingRequest(bytes), msg);
});

test('a request-headers ProcessingResponse (header mutation, clear_route_cache, dynamic_metadata Struct) has the same bytes both ways', () => {
  const msg: ProcessingResponse = {
    request_headers: {
      response: {
        header_mutation: {
          set_headers: [{ header: { key: 'x-gateway-destination-endpoint', raw_value: Buffer.from('10.0.0.1:8000,10.0.0.2:8000') }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
          remove_headers: ['x-gateway-model-name-rewrite'],
        },
        clear_route_cache: true,
      },
    },
    response: 'request_headers',
    dynamic_metadata: { fields: { 'envoy.lb': { structValue: { fields: { 'x-gateway-destination-endpoint': { stringValue: '10.0.0.1:8000,10.0.0.2:8000', kind: 'stringValue' } } }, kind: 'structValue' }, n: { numberValue: 1.5, kind: 'numberValue' } } },
  };
  // request_headers 1 → HeadersResponse { response 1 → CommonResponse { header_mutation 2 { set_headers 1 { header 1, append_action 3 }, remove_headers 2 }, clear_route_cache 5 } }; dynamic_metadata 8.
  const bytes = Buffer.concat([
    len(1, len(1, len(2, len(1, headerValue(1, 'x-gateway-destination-endpoint', '10.0.0.1:8000,10.0.0.2:8000'), uint(3, 2)), str(2, 'x-gateway-model-name-rewrite')), bool(5))),
    structOf(8, [
      ['envoy.lb', structOf(5, [['x-gateway-destination-endpoint', str(3, '10.0.0.1:8000,10.0.0.2:8000')]])],
      ['n', double(2, 1.5)],
    ]),
  ]);
  assert.deepEqual(encodeProcessingResponse(msg), bytes);
  assert.deepEqual(decodeProcessingResponse(bytes), msg);
});

test('a streamed_response body chunk has the same bytes both ways', () => {
  const msg: ProcessingResponse = {
    request_body: { response: { body_mutation: { streamed_response: { body: Buffer.from('abc'), end_of_stream: true }, mutation: 'streamed_response' } } },
    response: 'request_body',
  };
  // request_body 3 → BodyResponse { response 1 → CommonResponse { body_mutation 3 → BodyMutation { streamed_response 3 → { body 1, end_of_stream 2 } } } }.
  const bytes = len(3, len(1, len(3, len(3, len(1, Buffer.from('abc')), bool(2)))));
  assert.deepEqual(encodeProcessingResponse(msg), bytes);
  assert.deepEqual(decodeProcessingResponse(bytes), msg);
});

test('an immediate_response (status, headers, body, details) has the same bytes both ways', () => {
  const msg: ProcessingResponse = {
    immediate_response: {
      status: { code: 413 },
      headers: { set_headers: [{ header: { key: 'content-type', raw_value: Buffer.from('application/json') } }] },
      body: Buffer.from('{"error":{}}'),
      grpc_status: { status: 8 },
      details: 'body_too_large',
    },
    response: 'immediate_response',
  };
  // immediate_response 7 → { status 1 → HttpStatus { code 1 }, headers 2 (HeaderMutation), body 3, grpc_status 4 { status 1 }, details 5 }.
  const bytes = len(7, len(1, uint(1, 413)), len(2, len(1, headerValue(1, 'content-type', 'application/json'))), len(3, Buffer.from('{"error":{}}')), len(4, uint(1, 8)), str(5, 'body_too_large'));
  assert.deepEqual(encodeProcessingResponse(msg), bytes);
  assert.deepEqual(decodeProcessingResponse(bytes), msg);
});

test('fields and oneof members the subset does not declare are skipped, not an error', () => {
  // streamed_immediate_response 11 (not declared) then dynamic_metadata 8 empty; request_headers 1 with unknown field 9.
  const bytes = Buffer.concat([len(11, len(1, Buffer.from('x'))), len(1, uint(9, 7))]);
  const decoded = decodeProcessingResponse(bytes);
  assert.equal(decoded.response, 'request_headers');
});
