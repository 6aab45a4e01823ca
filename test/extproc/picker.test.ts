import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { FileConfigSource } from '../../src/config/file-source.js';
import { corePicker } from '../../src/extproc/picker.js';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { Gateway, InFlight } from '../../src/gateway/index.js';
import { configDir, modelYaml, podYaml, poolYaml } from '../support/config.js';
import { startEnvoyStandin, type EnvoyStandin } from '../support/envoy-standin.js';
import { until } from '../support/fixed-picker.js';
import { startFleet } from '../support/fleet.js';
import { memoryLogger } from '../support/memory-source.js';

// The core-backed picker end to end: client → Envoy stand-in → picker (the gateway core) → simulators.

let fleet: Awaited<ReturnType<typeof startFleet>>;
let gateway: Gateway;
let epp: ExtProcServer;
let envoy: EnvoyStandin;
let buffered: EnvoyStandin;
let config: Awaited<ReturnType<typeof configDir>>;
const inFlight = new InFlight();
const { logger, lines } = memoryLogger();

before(async () => {
  fleet = await startFleet([
    { host: '127.0.0.2', name: 'sim-a' },
    { host: '127.0.0.3', name: 'sim-b' },
  ]);
  config = await configDir(
    poolYaml('pool', 'r1', fleet.port) + podYaml('a', 'r1', '127.0.0.2') + podYaml('b', 'r1', '127.0.0.3') + modelYaml('m', 'food-review', 'pool', [{ name: 'mymodel', weight: 1 }]),
  );
  gateway = await Gateway.start({ sources: [new FileConfigSource([config.dir], { watch: false })], logger });
  epp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: corePicker(gateway, { poolKey: 'default/pool', inFlight }), ready: () => true, logger });
  envoy = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, tls: false });
  buffered = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, tls: false, bodyMode: 'BUFFERED' });
  await until(() => gateway.debugEndpoints() !== undefined && JSON.stringify(gateway.debugEndpoints()).includes('127.0.0.3'), 20_000, 'endpoints');
});

after(async () => {
  await envoy.close();
  await buffered.close();
  await epp.close(1000);
  await gateway.close();
  await fleet.close();
  await config.remove();
});

for (const mode of ['FULL_DUPLEX_STREAMED', 'BUFFERED'] as const) {
  test(`${mode}: the core picks, rewrites the model, and logs Request Handled`, async () => {
    const through = mode === 'BUFFERED' ? buffered : envoy;
    const res = await request(`${through.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'food-review', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }) });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200, text);
    const ex = through.exchanges.at(-1)!;
    assert.match(ex.destination ?? '', /^127\.0\.0\.[23]:\d+$/);
    assert.equal((JSON.parse(ex.upstreamBody.toString()) as { model: string }).model, 'mymodel', 'the InferenceModel target reached the server');
    await until(() => lines.some((l) => l['msg'] === 'Request Handled' && l['requestId'] === ex.upstreamHeaders['x-request-id']), 20_000, 'Request Handled');
    await until(() => inFlight.size === 0, 20_000, 'in-flight back to zero');
  });
}

test('behind Envoy the picker leaves what Envoy owns: route-matching x-gateway-* headers stay (Envoy matches again after clear_route_cache), X-Forwarded-For is untouched, only the control headers go', async () => {
  const res = await request(`${envoy.url}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-gateway-model-name': 'food-review',
      'x-gateway-base-model-name': 'mymodel',
      'x-forwarded-for': '6.6.6.6, 10.0.0.9',
      'x-gateway-inference-objective': 'gold',
      'x-llm-d-inference-fairness-id': 'tenant-a',
      'x-gateway-model-name-rewrite': 'mymodel',
    },
    body: JSON.stringify({ model: 'food-review', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
  });
  assert.equal(res.statusCode, 200, await res.body.text());
  const ex = envoy.exchanges.at(-1)!;
  assert.equal(ex.upstreamHeaders['x-gateway-model-name'], 'food-review', 'BBR’s route-matching header survives the mutation');
  assert.equal(ex.upstreamHeaders['x-gateway-base-model-name'], 'mymodel');
  assert.equal(ex.upstreamHeaders['x-forwarded-for'], '6.6.6.6, 10.0.0.9', 'X-Forwarded-For is Envoy’s: the picker neither appends nor repeats a hop');
  for (const name of ['x-gateway-inference-objective', 'x-llm-d-inference-fairness-id', 'x-gateway-model-name-rewrite']) assert.equal(ex.upstreamHeaders[name], undefined, `${name} removed`);
});

test('a compressed request body behind Envoy is decoded as the proxy decodes it: the server reads plain JSON without Content-Encoding; an unknown coding is 415, a bomb past the limit 413', async () => {
  const json = JSON.stringify({ model: 'food-review', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  const res = await request(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(json) });
  assert.equal(res.statusCode, 200, await res.body.text());
  const ex = envoy.exchanges.at(-1)!;
  assert.equal(ex.upstreamHeaders['content-encoding'], undefined);
  assert.equal((JSON.parse(ex.upstreamBody.toString()) as { model: string }).model, 'mymodel', 'the server got the decoded body, model rewritten');
  assert.equal(ex.upstreamHeaders['content-length'], String(ex.upstreamBody.length));

  const unknown = await request(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'compress' }, body: json });
  assert.equal(unknown.statusCode, 415);
  assert.match(await unknown.body.text(), /unsupported_content_encoding/);

  // 17 MiB of zeros gzip to ~17 KB: decoding stops at the pool's 16 MiB limit.
  const bomb = await request(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(Buffer.alloc(17 * 1024 * 1024)) });
  assert.equal(bomb.statusCode, 413);
  assert.match(await bomb.body.text(), /body_too_large/);
  await until(() => inFlight.size === 0 && gateway.uploads.budget.reservedBytes === 0, 20_000, 'everything released');
});
