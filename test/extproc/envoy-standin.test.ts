import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { startEnvoyStandin, type EnvoyStandin } from '../support/envoy-standin.js';
import { fixedPicker, until } from '../support/fixed-picker.js';
import { startFleet } from '../support/fleet.js';

// End to end with a trivial processor: client → Envoy stand-in → endpoint picker (TLS) → a real
// simulator, in both body modes.

let fleet: Awaited<ReturnType<typeof startFleet>>;
let endpoint: string;
let picker: ReturnType<typeof fixedPicker>;
let epp: ExtProcServer;
let duplex: EnvoyStandin;
let buffered: EnvoyStandin;

// The body goes upstream with a field added, so a rewrite is visible at the model server.
const rewrite = (body: Buffer): Buffer => {
  const parsed = JSON.parse(body.toString()) as Record<string, unknown>;
  return Buffer.from(JSON.stringify({ ...parsed, max_tokens: 3 }));
};

before(async () => {
  fleet = await startFleet([{ host: '127.0.0.1', name: 'sim-a' }]);
  endpoint = `127.0.0.1:${fleet.port}`;
  picker = fixedPicker({ endpoint, maxBodyBytes: 64 * 1024, rewrite });
  epp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: {}, processor: picker.factory, ready: () => true, logger: createLogger('silent') });
  duplex = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}` });
  buffered = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, bodyMode: 'BUFFERED' });
});
after(async () => {
  await duplex.close();
  await buffered.close();
  await epp.close(1000);
  await fleet.close();
});

const chat = (stream: boolean): string => JSON.stringify({ model: 'mymodel', messages: [{ role: 'user', content: 'hello there' }], stream });

for (const mode of ['FULL_DUPLEX_STREAMED', 'BUFFERED'] as const) {
  test(`${mode}: a request through the stand-in and the picker reaches the simulator and returns 200 with the mutated headers`, async () => {
    const envoy = mode === 'BUFFERED' ? buffered : duplex;
    const completed = picker.log.completed;
    const res = await request(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-gateway-inference-objective': 'gold' }, body: chat(false) });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200, text);
    assert.equal(res.headers['x-picked-by'], 'fixed');
    const answer = JSON.parse(text) as { usage: { completion_tokens: number } };
    assert.ok(answer.usage.completion_tokens <= 3, 'the rewritten body (max_tokens 3) reached the model server');
    const ex = envoy.exchanges.at(-1)!;
    assert.equal(ex.destination, endpoint);
    assert.equal(ex.upstreamHeaders['x-gateway-destination-endpoint'], endpoint);
    assert.equal(ex.upstreamHeaders['x-gateway-inference-objective'], undefined, 'control header removed before the model server');
    assert.equal(ex.upstreamHeaders['content-length'], String(ex.upstreamBody.length));
    assert.equal(ex.dynamicMetadata?.fields?.['envoy.lb']?.structValue?.fields?.['x-gateway-destination-endpoint']?.stringValue, endpoint);
    assert.ok(picker.log.requests.at(-1)?.headers['x-request-id'], 'Envoy generated x-request-id');
    assert.equal(picker.log.responses.at(-1)?.headers[':status'], '200');
    assert.equal(picker.log.responses.at(-1)?.metadata['envoy.lb']?.['x-gateway-destination-endpoint-served'], endpoint);
    await until(() => picker.log.completed === completed + 1, 20_000, 'completed()');
  });
}

test('FULL_DUPLEX_STREAMED: an SSE answer streams back through the picker', async () => {
  const res = await request(`${duplex.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat(true) });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, text);
  assert.match(String(res.headers['content-type']), /text\/event-stream/);
  assert.ok(text.trimEnd().endsWith('data: [DONE]'), text.slice(-200));
});

test('a body over the limit is the picker\'s 413, sent to the client as is', async () => {
  const res = await request(`${duplex.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mymodel', prompt: 'x'.repeat(100 * 1024) }) });
  const body = (await res.body.json()) as { error: { code: string; type: string } };
  assert.equal(res.statusCode, 413);
  assert.equal(body.error.code, 'body_too_large');
  assert.equal(res.headers['content-type'], 'application/json');
});

test('a client that leaves mid-body cancels the stream: cancelled() once, no stream left open', async () => {
  const cancelled = picker.log.cancelled;
  const chunks = picker.log.chunks.length;
  const ac = new AbortController();
  // A body that never ends: the client sends its start, then leaves.
  const body = new PassThrough();
  body.write('{"model":"mymodel","prompt":"');
  const pending = request(`${duplex.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: ac.signal }).catch(() => undefined);
  await until(() => picker.log.chunks.length > chunks, 20_000, 'the first body chunk at the picker');
  ac.abort();
  await pending;
  await until(() => picker.log.cancelled === cancelled + 1, 20_000, 'cancelled()');
  await until(() => epp.activeStreams() === 0, 20_000, 'no open streams');
  assert.equal(picker.log.cancelled, cancelled + 1);
});

test('a client that leaves mid-answer resets the request to the model server, as Envoy does: the server stops generating', async () => {
  // A server whose answer would take minutes (400 ms a token in real time), and a picker that
  // leaves the body as sent (the shared one caps max_tokens at 3).
  const slow = await startFleet([{ host: '127.0.0.1', name: 'slow', timeScale: 1, overrides: { decodeFloorMs: 400 } }]);
  const asSent = fixedPicker({ endpoint: `127.0.0.1:${slow.port}`, maxBodyBytes: 64 * 1024 });
  const ownEpp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: {}, processor: asSent.factory, ready: () => true, logger: createLogger('silent') });
  const envoy = await startEnvoyStandin({ target: `127.0.0.1:${ownEpp.grpcPort}` });
  try {
    const engine = slow.servers.get('slow')!.engine;
    const ac = new AbortController();
    const body = JSON.stringify({ model: 'mymodel', prompt: 'a long story', max_tokens: 900, ignore_eos: true, stream: true });
    const res = await request(`${envoy.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: ac.signal });
    assert.equal(res.statusCode, 200);
    // Some of the answer has arrived: the server is generating.
    await new Promise<void>((resolve) => res.body.once('data', () => resolve()));
    assert.ok(engine.stats().running > 0, 'the server is generating');
    ac.abort();
    await res.body.text().catch(() => undefined);
    await until(() => engine.stats().running === 0 && engine.stats().waiting === 0, 30_000, 'the server stopped the abandoned request');
  } finally {
    await envoy.close();
    await ownEpp.close(1000);
    await slow.close();
  }
});

test('the subset hint in metadata_context reaches the processor; a broken ext_proc stream is a 500 (FailClose)', async () => {
  const hinted = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, requestMetadata: () => ({ 'envoy.lb.subset_hint': { 'x-gateway-destination-endpoint-subset': [endpoint] } }) });
  try {
    const res = await request(`${hinted.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat(false) });
    await res.body.text();
    assert.equal(res.statusCode, 200);
    assert.deepEqual(picker.log.requests.at(-1)?.metadata['envoy.lb.subset_hint'], { 'x-gateway-destination-endpoint-subset': [endpoint] });
    // 300 headers: past the picker's header bound, the client's own 431, sent as Envoy would.
    const many = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`x-h${i}`, 'v']));
    const refused = await request(`${hinted.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...many }, body: chat(false) });
    assert.equal(refused.statusCode, 431);
    assert.match(await refused.body.text(), /request_headers_too_large/);
  } finally {
    await hinted.close();
  }
});

test('a request with 1,500 header fields reaches the picker whole (the stand-in drops none, as Envoy does) and its 431 counts what was counted', async () => {
  const many = Object.fromEntries(Array.from({ length: 1500 }, (_, i) => [`x-h${i}`, 'v']));
  const refused = await request(`${duplex.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...many }, body: chat(false) });
  assert.equal(refused.statusCode, 431);
  const body = JSON.parse(await refused.body.text()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'request_headers_too_large');
  const m = /^the request has (\d+) header fields \(4 of them pseudo-headers such as :method and :path\), more than the 256 accepted$/.exec(body.error.message);
  assert.ok(m !== null, body.error.message);
  // 1,500 of the client's, content-type, content-length, x-request-id and the 4 pseudo-headers.
  const count = Number(m[1]);
  assert.ok(count >= 1500 && count <= 1510, body.error.message);
});
