import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { headerMap } from '../../src/extproc/headers.js';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { STREAMED_CHUNK_BYTES } from '../../src/extproc/stream.js';
import { createLogger } from '../../src/observability/logger.js';
import { bodyMessages, EnvoyExtProcClient, envoyRequestHeaders, ENVOY_BODY_CHUNK_BYTES, metadataContext, type ExtProcCall } from '../support/envoy-standin.js';
import { fixedPicker, until } from '../support/fixed-picker.js';

// The state machine over a real gRPC stream (TLS, self-signed), with the test playing Envoy's
// ext_proc filter message by message.

const ENDPOINT = '10.0.0.7:8000';
const picker = fixedPicker({ endpoint: ENDPOINT, maxBodyBytes: 256 * 1024 });
let server: ExtProcServer;
let envoy: EnvoyExtProcClient;
let buffered: EnvoyExtProcClient;

before(async () => {
  server = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: {}, processor: picker.factory, ready: () => true, logger: createLogger('silent'), stream: { headerLimits: { maxBytes: 8192, maxCount: 50 } } });
  envoy = new EnvoyExtProcClient({ target: `127.0.0.1:${server.grpcPort}` });
  buffered = new EnvoyExtProcClient({ target: `127.0.0.1:${server.grpcPort}`, bodyMode: 'BUFFERED' });
});
after(async () => {
  envoy.close();
  buffered.close();
  await server.close(1000);
});

function headersMsg(client: EnvoyExtProcClient, eos: boolean, extra: Record<string, string> = {}): Parameters<ExtProcCall['send']>[0] {
  return { request_headers: { headers: headerMap(envoyRequestHeaders('POST', '/v1/completions', { 'content-type': 'application/json', ...extra })), ...(eos ? { end_of_stream: true } : {}) }, protocol_config: client.protocolConfig() };
}

test('FULL_DUPLEX_STREAMED: the headers answer waits for the body; a 200 KB body comes back in 62,000-byte chunks, the last with end_of_stream', async () => {
  const before = picker.log.completed;
  const call = envoy.open();
  call.send(headersMsg(envoy, false));
  const body = Buffer.alloc(200_000, 'a');
  const messages = bodyMessages('request_body', body, ENVOY_BODY_CHUNK_BYTES);
  for (const m of messages.slice(0, -1)) call.send(m);
  // Every chunk but the last is in: still no answer (the decision needs the whole body).
  await until(() => picker.log.chunks.length >= messages.length - 1, 20_000, 'chunks to arrive');
  assert.equal(call.pending(), 0);
  call.send(messages.at(-1)!);

  const first = await call.next();
  assert.equal(first.response, 'request_headers');
  const common = first.request_headers?.response;
  assert.equal(common?.clear_route_cache, true);
  const set = Object.fromEntries((common?.header_mutation?.set_headers ?? []).map((o) => [o.header?.key, Buffer.from(o.header?.raw_value ?? []).toString()]));
  assert.equal(set['x-gateway-destination-endpoint'], ENDPOINT);
  assert.equal(set['content-length'], '200000');
  assert.deepEqual(common?.header_mutation?.remove_headers, ['x-gateway-inference-objective']);
  assert.equal(first.dynamic_metadata?.fields?.['envoy.lb']?.structValue?.fields?.['x-gateway-destination-endpoint']?.stringValue, ENDPOINT);

  const sizes: number[] = [];
  const got: Buffer[] = [];
  for (;;) {
    const m = await call.next();
    const s = m.request_body?.response?.body_mutation?.streamed_response;
    assert.ok(s, `expected a streamed body chunk, got ${m.response}`);
    sizes.push(s.body?.length ?? 0);
    got.push(Buffer.from(s.body ?? []));
    if (s.end_of_stream === true) break;
  }
  assert.deepEqual(sizes, [STREAMED_CHUNK_BYTES, STREAMED_CHUNK_BYTES, STREAMED_CHUNK_BYTES, 200_000 - 3 * STREAMED_CHUNK_BYTES]);
  assert.ok(Buffer.concat(got).equals(body));

  // Response headers (:status) and SSE chunks pass through; the last one completes the request.
  call.send({ response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) }, metadata_context: metadataContext({ 'envoy.lb': { 'x-gateway-destination-endpoint-served': ENDPOINT } }) });
  const rh = await call.next();
  assert.equal(rh.response_headers?.response?.header_mutation?.set_headers?.[0]?.header?.key, 'x-picked-by');
  const seen = picker.log.responses.at(-1);
  assert.equal(seen?.headers[':status'], '200');
  assert.equal(seen?.metadata['envoy.lb']?.['x-gateway-destination-endpoint-served'], ENDPOINT);
  call.send({ response_body: { body: Buffer.from('data: {"x":1}\n\n') } });
  const c1 = await call.next();
  assert.equal(Buffer.from(c1.response_body?.response?.body_mutation?.streamed_response?.body ?? []).toString(), 'data: {"x":1}\n\n');
  call.send({ response_body: { body: Buffer.from('data: [DONE]\n\n'), end_of_stream: true } });
  const c2 = await call.next();
  assert.equal(c2.response_body?.response?.body_mutation?.streamed_response?.end_of_stream, true);
  call.end();
  assert.equal((await call.status).code, status.OK);
  await until(() => picker.log.completed === before + 1, 20_000, 'completed()');
});

test('a bodyless request is answered at once', async () => {
  const call = envoy.open();
  call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('GET', '/v1/models', {})), end_of_stream: true }, protocol_config: envoy.protocolConfig() });
  const first = await call.next();
  assert.equal(first.response, 'request_headers');
  assert.equal(picker.log.requests.at(-1)?.headers[':method'], 'GET');
  assert.equal(picker.log.requests.at(-1)?.headers[':path'], '/v1/models');
  call.cancel();
});

test('BUFFERED: headers answered CONTINUE at once; the one body message is answered with header mutation, body and clear_route_cache', async () => {
  const call = buffered.open();
  call.send(headersMsg(buffered, false));
  const first = await call.next();
  assert.equal(first.response, 'request_headers');
  assert.equal(first.request_headers?.response?.header_mutation, undefined);
  call.send({ request_body: { body: Buffer.from('{"model":"m"}'), end_of_stream: true } });
  const b = await call.next();
  assert.equal(b.response, 'request_body');
  assert.equal(b.request_body?.response?.clear_route_cache, true);
  assert.equal(b.request_body?.response?.header_mutation?.set_headers?.[0]?.header?.key, 'x-gateway-destination-endpoint');
  assert.equal(b.dynamic_metadata?.fields?.['envoy.lb']?.structValue?.fields?.['x-gateway-destination-endpoint']?.stringValue, ENDPOINT);
  // Response body in BUFFERED mode: unchanged ⇒ no body_mutation.
  call.send({ response_headers: { headers: headerMap({ ':status': '200' }) } });
  await call.next();
  call.send({ response_body: { body: Buffer.from('{"ok":true}'), end_of_stream: true } });
  const rb = await call.next();
  assert.equal(rb.response, 'response_body');
  assert.equal(rb.response_body?.response?.body_mutation, undefined);
  call.end();
  assert.equal((await call.status).code, status.OK);
});

test('a body over the processor\'s limit is a 413 immediate_response with the OpenAI-style body', async () => {
  const call = envoy.open();
  call.send(headersMsg(envoy, false));
  for (const m of bodyMessages('request_body', Buffer.alloc(300 * 1024, 'b'), ENVOY_BODY_CHUNK_BYTES)) call.send(m);
  const answer = await call.next();
  assert.equal(answer.immediate_response?.status?.code, 413);
  const body = JSON.parse(Buffer.from(answer.immediate_response?.body ?? []).toString()) as { error: { code: string } };
  assert.equal(body.error.code, 'body_too_large');
  assert.equal(answer.immediate_response?.details, 'body_too_large');
  call.end();
  await call.status;
});

test('a stream Envoy cancels mid-body: cancelled() exactly once, the stream released', async () => {
  const before = picker.log.cancelled;
  const chunksBefore = picker.log.chunks.length;
  const call = envoy.open();
  call.send(headersMsg(envoy, false));
  call.send({ request_body: { body: Buffer.alloc(1000, 'c') } });
  await until(() => picker.log.chunks.length > chunksBefore, 20_000, 'the first chunk');
  call.cancel();
  await until(() => picker.log.cancelled === before + 1, 20_000, 'cancelled()');
  await until(() => server.activeStreams() === 0, 20_000, 'no open streams');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(picker.log.cancelled, before + 1);
});

test('protocol violations end the stream with a clear gRPC status, and the server keeps serving', async () => {
  const cases: { name: string; send: (c: ExtProcCall) => void; code: number }[] = [
    { name: 'body before headers', send: (c) => c.send({ request_body: { body: Buffer.from('x'), end_of_stream: true } }), code: status.INVALID_ARGUMENT },
    { name: 'a second request_headers', send: (c) => { c.send(headersMsg(envoy, false)); c.send(headersMsg(envoy, false)); }, code: status.INVALID_ARGUMENT },
    { name: 'response headers before the request went out', send: (c) => { c.send(headersMsg(envoy, false)); c.send({ response_headers: { headers: headerMap({ ':status': '200' }) } }); }, code: status.INVALID_ARGUMENT },
    { name: 'an unsupported body mode', send: (c) => c.send({ ...headersMsg(envoy, false), protocol_config: { request_body_mode: 'STREAMED' } }), code: status.FAILED_PRECONDITION },
  ];
  for (const k of cases) {
    const call = envoy.open();
    k.send(call);
    const s = await call.status;
    assert.equal(s.code, k.code, `${k.name}: ${s.details}`);
    assert.ok(s.details.length > 0, k.name);
  }
  // A message whose oneof this subset does not know is ignored; the stream goes on.
  const call = envoy.open();
  call.send({ observability_mode: false, metadata_context: metadataContext({ x: { a: 1 } }) });
  call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('GET', '/health', {})), end_of_stream: true } });
  assert.equal((await call.next()).response, 'request_headers');
  call.end();
  assert.equal((await call.status).code, status.OK);
});

test('request headers past the bounds (count, bytes) are the client\'s 431 request_headers_too_large, an immediate_response; the server keeps serving', async () => {
  const cases: Array<[string, Record<string, string>]> = [
    ['too many headers', Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`x-h${i}`, 'v']))],
    ['too many header bytes', { 'x-big': 'v'.repeat(9000) }],
  ];
  for (const [name, headers] of cases) {
    const call = envoy.open();
    call.send(headersMsg(envoy, false, headers));
    const answer = await call.next();
    assert.equal(answer.response, 'immediate_response', name);
    assert.equal(answer.immediate_response?.status?.code, 431, name);
    const text = Buffer.from(answer.immediate_response?.body ?? '').toString();
    assert.match(text, /request_headers_too_large/, name);
    // Says what was counted: header fields (Envoy's pseudo-headers among them), or name and value bytes.
    assert.match(text, name === 'too many headers' ? /the request has \d+ header fields \(\d+ of them pseudo-headers such as :method and :path\), more than the \d+ accepted/ : /the request has \d+ bytes of header names and values, more than the \d+ accepted/, name);
    call.end();
  }
});

test('hundreds of concurrent streams on one connection are all answered', async () => {
  const body = Buffer.alloc(20_000, 'z');
  const one = async (): Promise<number> => {
    const call = envoy.open();
    call.send(headersMsg(envoy, false));
    for (const m of bodyMessages('request_body', body, ENVOY_BODY_CHUNK_BYTES)) call.send(m);
    assert.equal((await call.next(60_000)).response, 'request_headers');
    let bytes = 0;
    for (;;) {
      const s = (await call.next(60_000)).request_body?.response?.body_mutation?.streamed_response;
      bytes += s?.body?.length ?? 0;
      if (s?.end_of_stream === true) break;
    }
    call.cancel();
    return bytes;
  };
  const sizes = await Promise.all(Array.from({ length: 300 }, one));
  assert.ok(sizes.every((n) => n === body.length));
  await until(() => server.activeStreams() === 0, 30_000, 'all streams closed');
});
