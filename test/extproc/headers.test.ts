import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { headerMap, headerMutation, headerRecord } from '../../src/extproc/headers.js';
import { ExtProcStream, StreamError } from '../../src/extproc/stream.js';
import { fixedPicker } from '../support/fixed-picker.js';

test('Envoy\'s HeaderMap becomes a record: raw_value bytes kept (latin1), names lower-cased, repeats joined', () => {
  const rec = headerRecord({
    headers: [
      { key: ':path', raw_value: Buffer.from('/v1/chat/completions') },
      { key: 'X-Custom', raw_value: Buffer.from([0x63, 0xe9]) },
      { key: 'accept', raw_value: Buffer.from('a') },
      { key: 'accept', raw_value: Buffer.from('b') },
      { key: 'set-cookie', raw_value: Buffer.from('x=1') },
      { key: 'set-cookie', raw_value: Buffer.from('y=2') },
      { key: 'old-style', value: 'string value' },
    ],
  });
  assert.equal(rec[':path'], '/v1/chat/completions');
  assert.equal(rec['x-custom'], 'c\u00e9');
  assert.equal(rec['accept'], 'a,b');
  assert.equal(rec['set-cookie'], 'x=1\ny=2');
  assert.equal(rec['old-style'], 'string value');
});

test('header edits become one HeaderMutation: set overwrites, add appends, remove goes to remove_headers unless set again later', () => {
  const m = headerMutation([
    { op: 'remove', name: 'Content-Length' },
    { op: 'set', name: 'content-length', value: '12' },
    { op: 'add', name: 'x-trace', value: 'b' },
    { op: 'remove', name: 'x-gateway-inference-objective' },
  ]);
  assert.deepEqual(m?.remove_headers, ['x-gateway-inference-objective']);
  assert.deepEqual(
    m?.set_headers?.map((o) => [o.header?.key, Buffer.from(o.header?.raw_value ?? []).toString(), o.append_action]),
    [
      ['content-length', '12', 'OVERWRITE_IF_EXISTS_OR_ADD'],
      ['x-trace', 'b', 'APPEND_IF_EXISTS_OR_ADD'],
    ],
  );
  assert.equal(headerMutation([]), undefined);
  assert.deepEqual(headerMap({ A: 'x', b: ['1', '2'] }).headers?.map((h) => h.key), ['a', 'b', 'b']);
});

test('request trailers end a body whose last chunk did not say end_of_stream', async () => {
  const { factory, log } = fixedPicker({ endpoint: '10.0.0.1:8000' });
  const s = new ExtProcStream(factory);
  assert.deepEqual(await s.receive({ request: 'request_headers', request_headers: { headers: headerMap({ ':method': 'POST', ':path': '/x' }) } }), []);
  assert.deepEqual(await s.receive({ request: 'request_body', request_body: { body: Buffer.from('{}') } }), []);
  const out = await s.receive({ request: 'request_trailers', request_trailers: {} });
  assert.deepEqual(out.map((m) => Object.keys(m).find((k) => k !== 'dynamic_metadata')), ['request_headers', 'request_body', 'request_trailers']);
  s.end();
  assert.equal(log.cancelled, 1, 'ended before the response: cancelled');
  s.end();
  assert.equal(log.cancelled, 1, 'once');
});

test('the number of messages on one stream is bounded', async () => {
  const { factory, log } = fixedPicker({ endpoint: '10.0.0.1:8000' });
  const s = new ExtProcStream(factory, { maxMessages: 3 });
  await s.receive({ request: 'request_headers', request_headers: { headers: headerMap({ ':method': 'POST' }) } });
  await s.receive({ request: 'request_body', request_body: { body: Buffer.alloc(0) } });
  await s.receive({ request: 'request_body', request_body: { body: Buffer.alloc(0) } });
  await assert.rejects(s.receive({ request: 'request_body', request_body: { body: Buffer.alloc(0) } }), (e: unknown) => e instanceof StreamError && e.code === status.RESOURCE_EXHAUSTED);
  s.end();
  assert.equal(log.cancelled, 1);
});

test('a processor that throws something other than a GatewayError is a 500 immediate_response, reported, never a crash', async () => {
  const errors: unknown[] = [];
  const s = new ExtProcStream(
    () => ({
      headers: async () => {
        throw new TypeError('boom');
      },
      bodyChunk: async () => undefined,
      bodyTooLarge: () => ({ status: 413, headers: [], body: '' }),
      responseHeaders: async () => [],
      responseBody: async (c) => c,
      responseTrailers: async () => undefined,
      completed: () => undefined,
      cancelled: () => undefined,
    }),
    { onInternalError: (e) => errors.push(e) },
  );
  const [answer] = await s.receive({ request: 'request_headers', request_headers: { headers: headerMap({ ':method': 'GET' }), end_of_stream: true } });
  assert.equal(answer?.immediate_response?.status?.code, 500);
  assert.doesNotMatch(Buffer.from(answer?.immediate_response?.body ?? []).toString(), /boom/);
  assert.equal(errors.length, 1);
  assert.equal(s.finished, true);
});

test('a stream that ends while the processor decides: cancelled() once, nothing called after it, nothing sent', async () => {
  let release: () => void = () => undefined;
  const calls: string[] = [];
  const s = new ExtProcStream(() => ({
    headers: async () => {
      await new Promise<void>((r) => (release = r));
      return { kind: 'forward', headerEdits: [] };
    },
    bodyChunk: async () => (calls.push('bodyChunk'), undefined),
    bodyTooLarge: () => ({ status: 413, headers: [], body: '' }),
    responseHeaders: async () => [],
    responseBody: async (c) => c,
    responseTrailers: async () => undefined,
    completed: () => calls.push('completed'),
    cancelled: () => calls.push('cancelled'),
  }));
  const pending = s.receive({ request: 'request_headers', request_headers: { headers: headerMap({ ':method': 'GET' }), end_of_stream: true } });
  await new Promise((r) => setImmediate(r));
  s.end();
  release();
  assert.deepEqual(await pending, []);
  assert.deepEqual(calls, ['cancelled']);
});
