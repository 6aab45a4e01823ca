import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { FileConfigSource } from '../../src/config/file-source.js';
import { headerMap, headerRecord } from '../../src/extproc/headers.js';
import { corePicker } from '../../src/extproc/picker.js';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { Gateway, InFlight } from '../../src/gateway/index.js';
import { configDir, modelYaml, podYaml, poolYaml } from '../support/config.js';
import { bodyMessages, EnvoyExtProcClient, envoyRequestHeaders, startEnvoyStandin, type ExtProcCall, type EnvoyStandin } from '../support/envoy-standin.js';
import { until } from '../support/fixed-picker.js';
import { startFleet } from '../support/fleet.js';
import { memoryLogger } from '../support/memory-source.js';

// What Envoy and clients do to an endpoint picker, end to end against simulators: bodyless
// requests, client control headers, clients that leave mid-body or mid-answer, a picker restart
// under a held stream, and hundreds of concurrent streams. After each, the per-request state is
// released: the InFlight set and every endpoint's in-flight count are back to zero.

const HOSTS = ['127.0.0.10', '127.0.0.11'];

let fleet: Awaited<ReturnType<typeof startFleet>>;
let config: Awaited<ReturnType<typeof configDir>>;
let gateway: Gateway;
let epp: ExtProcServer;
let envoy: EnvoyStandin;
const inFlight = new InFlight();
const { logger, lines } = memoryLogger();
const picker = (): ReturnType<typeof corePicker> => corePicker(gateway, { poolKey: 'default/pool', inFlight });

before(async () => {
  fleet = await startFleet(HOSTS.map((host, i) => ({ host, name: `sim-${i}` })));
  config = await configDir(poolYaml('pool', 'r1', fleet.port) + HOSTS.map((h, i) => podYaml(`sim-${i}`, 'r1', h)).join('') + modelYaml('m', 'food-review', 'pool', [{ name: 'mymodel', weight: 1 }]));
  gateway = await Gateway.start({ sources: [new FileConfigSource([config.dir], { watch: false })], logger });
  epp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: picker(), ready: () => true, logger });
  envoy = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, tls: false });
  await until(() => endpoints().filter((e) => e.available).length === HOSTS.length, 30_000, 'endpoints scraped');
});

after(async () => {
  await envoy.close();
  await epp.close(1000);
  await gateway.close();
  await fleet.close();
  await config.remove();
});

interface DebugEndpoint {
  address: string;
  available: boolean;
  inFlight: number;
}
const endpoints = (): DebugEndpoint[] => (gateway.debugEndpoints() as { pools: Array<{ endpoints: DebugEndpoint[] }> }).pools.flatMap((p) => p.endpoints);
const busy = (): number => endpoints().reduce((n, e) => n + e.inFlight, 0);
async function released(what: string): Promise<void> {
  await until(() => inFlight.size === 0 && busy() === 0 && gateway.uploads.budget.reservedBytes === 0, 30_000, `${what}: per-request state released`).catch((err: Error) => {
    throw new Error(`${err.message} (InFlight ${inFlight.size}, endpoints ${busy()}, body bytes reserved ${gateway.uploads.budget.reservedBytes})`);
  });
}
const handled = (requestId: string): Record<string, unknown> | undefined => lines.find((l) => l['msg'] === 'Request Handled' && l['requestId'] === requestId);

const chat = (extra: Record<string, unknown> = {}): string => JSON.stringify({ model: 'food-review', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 4, ...extra });

test('a bodyless request (GET /v1/models) is answered at once and forwarded to an endpoint of the pool', async () => {
  const res = await request(`${envoy.url}/v1/models`);
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, text);
  const ex = envoy.exchanges.at(-1)!;
  assert.ok(HOSTS.some((h) => ex.destination === `${h}:${fleet.port}`), `forwarded to ${ex.destination}`);
  assert.ok((JSON.parse(text) as { data: Array<{ id: string }> }).data.some((m) => m.id === 'mymodel'), text);
  await released('GET /v1/models');
});

test('client control headers and a client-sent destination or prefiller never reach the model server', async () => {
  const hostile = {
    'x-gateway-destination-endpoint': '10.6.6.6:80',
    'x-gateway-destination-endpoint-subset': '10.6.6.6:80',
    'x-gateway-destination-endpoint-served': '10.6.6.6:80',
    'x-prefiller-host-port': '10.6.6.6:80',
    'x-gateway-inference-objective': 'premium',
    'x-gateway-inference-fairness-id': 'tenant-a',
    'x-gateway-model-name-rewrite': 'mymodel',
    'x-llm-d-inference-objective': 'premium',
    'x-llm-d-inference-fairness-id': 'tenant-a',
    'x-llm-d-model-name-rewrite': 'mymodel',
    'x-gateway-anything-else': 'secret',
  };
  const res = await request(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...hostile }, body: chat() });
  assert.equal(res.statusCode, 200, await res.body.text());
  const ex = envoy.exchanges.at(-1)!;
  assert.ok(HOSTS.some((h) => ex.destination === `${h}:${fleet.port}`), `the picker's choice, not the client's: ${ex.destination}`);
  // Overwritten, not appended to: the picker's list (primary first, then fallbacks) and nothing of the client's.
  assert.equal(ex.upstreamHeaders['x-gateway-destination-endpoint']?.split(',')[0], ex.destination);
  assert.doesNotMatch(ex.upstreamHeaders['x-gateway-destination-endpoint'] ?? '', /10\.6\.6\.6/);
  for (const name of Object.keys(hostile)) if (name !== 'x-gateway-destination-endpoint') assert.equal(ex.upstreamHeaders[name], undefined, `${name} reached the model server`);
  await released('control headers');
});

/** Opens a stream as Envoy does and sends the request headers (and `body`, unless `partial`). */
function openRequest(client: EnvoyExtProcClient, requestId: string, body: string, partial = false): ExtProcCall {
  const call = client.open();
  const bytes = Buffer.from(body);
  call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': String(bytes.length), 'x-request-id': requestId })) }, protocol_config: client.protocolConfig() });
  const messages = bodyMessages('request_body', bytes, 1024, !partial);
  for (const m of partial ? messages.slice(0, 1) : messages) call.send(m);
  return call;
}

test('a client that leaves mid-request-body: Envoy resets the stream, the body reservation and the request are released', async () => {
  const client = new EnvoyExtProcClient({ target: `127.0.0.1:${epp.grpcPort}`, tls: false });
  try {
    const call = openRequest(client, 'gone-mid-body', chat({ pad: 'p'.repeat(50_000) }), true);
    await until(() => inFlight.size === 1 && gateway.uploads.budget.reservedBytes > 0, 20_000, 'the request is being collected');
    call.cancel();
    await released('mid-body cancel');
    await until(() => handled('gone-mid-body') !== undefined, 20_000, 'its Request Handled line');
    assert.equal(handled('gone-mid-body')?.['status'], 499);
  } finally {
    client.close();
  }
});

test('a client that leaves mid-response-stream: the endpoint\'s in-flight count and the InFlight set go back to zero', async () => {
  const client = new EnvoyExtProcClient({ target: `127.0.0.1:${epp.grpcPort}`, tls: false });
  try {
    const call = openRequest(client, 'gone-mid-answer', chat({ stream: true }));
    const headersAnswer = await call.next();
    const set = headerRecord({ headers: (headersAnswer.request_headers?.response?.header_mutation?.set_headers ?? []).map((o) => o.header ?? {}) });
    const destination = set['x-gateway-destination-endpoint']!.split(',')[0]!;
    for (;;) if ((await call.next()).request_body?.response?.body_mutation?.streamed_response?.end_of_stream === true) break;
    assert.equal(endpoints().find((e) => e.address === destination)?.inFlight, 1);
    call.send({ response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) } });
    await call.next();
    call.send({ response_body: { body: Buffer.from('data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n') } });
    await call.next();
    assert.equal(endpoints().find((e) => e.address === destination)?.inFlight, 1, 'still streaming');
    call.cancel();
    await released('mid-answer cancel');
    await until(() => handled('gone-mid-answer') !== undefined, 20_000, 'its Request Handled line');
    assert.equal(handled('gone-mid-answer')?.['address'], destination);
  } finally {
    client.close();
  }
});

test('hundreds of concurrent streams (300) are all answered and every count returns to zero', { timeout: 180_000 }, async () => {
  const statuses = await Promise.all(
    Array.from({ length: 300 }, async (_, i) => {
      const res = await request(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat({ messages: [{ role: 'user', content: `question ${i}` }], max_tokens: 2 }), headersTimeout: 120_000, bodyTimeout: 120_000 });
      await res.body.text();
      return res.statusCode;
    }),
  );
  assert.deepEqual([...new Set(statuses)], [200]);
  await released('300 streams');
});

test('a picker restart while Envoy holds a stream: that request fails closed, the restarted picker serves the next', { timeout: 120_000 }, async () => {
  const port = epp.grpcPort;
  const upload = new PassThrough();
  const body = chat({ pad: 'u'.repeat(10_000) });
  const held = request(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body: upload });
  upload.write(body.slice(0, 100));
  await until(() => inFlight.size === 1, 20_000, 'the held request reached the picker');
  await epp.close(0);
  const res = await held;
  const text = await res.body.text();
  upload.destroy();
  assert.equal(res.statusCode, 500, `FailClose: ${text}`);
  await released('the cut stream');

  epp = await startExtProcServer({ address: '127.0.0.1', grpcPort: port, healthPort: 0, tls: false, processor: picker(), ready: () => true, logger });
  // Envoy's gRPC channel reconnects with backoff: poll until the restarted picker answers.
  let status = 0;
  const deadline = Date.now() + 60_000;
  while (status !== 200 && Date.now() < deadline) {
    const r = await request(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat() });
    await r.body.text();
    status = r.statusCode;
    if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(status, 200);
  await released('after restart');
});
