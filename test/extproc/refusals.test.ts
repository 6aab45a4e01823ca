import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { FileConfigSource } from '../../src/config/file-source.js';
import { headerMap } from '../../src/extproc/headers.js';
import { corePicker } from '../../src/extproc/picker.js';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { Gateway, InFlight } from '../../src/gateway/index.js';
import { startStandaloneGateway, type RunningGateway } from '../../src/proxy/standalone.js';
import { startSimServer, type RunningSimServer } from '../../src/sim/index.js';
import { configDir, gatewayYaml, modelYaml, podYaml, poolYaml, routeYaml } from '../support/config.js';
import { bodyMessages, EnvoyExtProcClient, envoyRequestHeaders, startEnvoyStandin, type EnvoyStandin } from '../support/envoy-standin.js';
import { until } from '../support/fixed-picker.js';
import { startFleet } from '../support/fleet.js';
import { memoryLogger } from '../support/memory-source.js';
import { freePort } from '../support/ports.js';
import { loadDirectly, type Loader } from '../support/smart.js';

// Refusals are the same answer from both data planes: the standalone proxy and the endpoint picker
// (client → Envoy stand-in → picker) run on the same configuration in one test and are compared
// status for status, body for body, Retry-After for Retry-After. Also: a request Envoy gives up on
// while the core holds it in the queue (message timeout) releases its place.

let fleet: Awaited<ReturnType<typeof startFleet>>;
let busy: RunningSimServer;
let config: Awaited<ReturnType<typeof configDir>>;
let proxy: RunningGateway;
let proxyUrl: string;
let gateway: Gateway;
const epps: ExtProcServer[] = [];
const envoys = new Map<string, EnvoyStandin>();
const inFlight = new InFlight();
const { logger } = memoryLogger();

const BUSY_HOST = '127.0.0.9';

function busyPoolYaml(port: number): string {
  return `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata:
  name: busy
  annotations:
    infergate.dev/routing: |
      saturation: {queueDepth: 1}
      queue: {maxRequests: 1, ttl: 120s}
spec:
  selector: {app: sim, release: busy}
  targetPortNumber: ${port}
`;
}

before(async () => {
  fleet = await startFleet([
    { host: '127.0.0.7', name: 'sim-a' },
    { host: '127.0.0.8', name: 'sim-b' },
  ]);
  busy = await startSimServer({ host: BUSY_HOST, port: 0, name: 'busy-0', profile: 'llama-3.1-8b-h100', timeScale: 20, overrides: { maxNumSeqs: 1 } });
  const listener = await freePort();
  config = await configDir(
    gatewayYaml(listener) +
      `---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: small-bodies}
spec:
  connection: {bufferLimit: 4Ki}
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
` +
      routeYaml('to-empty', [{ pool: 'empty', weight: 1 }], '/v1', { name: 'x-pool', value: 'empty' }) +
      routeYaml('to-busy', [{ pool: 'busy', weight: 1 }], '/v1', { name: 'x-pool', value: 'busy' }) +
      routeYaml('to-pool', [{ pool: 'pool', weight: 1 }]) +
      poolYaml('pool', 'r1', fleet.port) +
      podYaml('a', 'r1', '127.0.0.7') +
      podYaml('b', 'r1', '127.0.0.8') +
      poolYaml('empty', 'nobody', fleet.port) +
      busyPoolYaml(busy.port) +
      podYaml('busy-0', 'busy', BUSY_HOST) +
      modelYaml('vip', 'vip', 'busy', [{ name: 'mymodel', weight: 1 }], 'Critical') +
      modelYaml('bulk', 'bulk', 'busy', [{ name: 'mymodel', weight: 1 }], 'Sheddable'),
  );
  proxy = await startStandaloneGateway({ sources: [new FileConfigSource([config.dir], { watch: false })], address: '127.0.0.1', adminPort: 0, logger });
  proxyUrl = `http://127.0.0.1:${listener}`;
  gateway = await Gateway.start({ sources: [new FileConfigSource([config.dir], { watch: false })], logger, poolBodyLimitBytes: 4096 });
  for (const pool of ['pool', 'empty', 'busy']) {
    const epp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: corePicker(gateway, { poolKey: `default/${pool}`, inFlight }), ready: () => true, logger });
    epps.push(epp);
    envoys.set(pool, await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, tls: false }));
  }
  await until(() => available(gateway) === 3 && available(proxy.gateway) === 3, 30_000, 'endpoints scraped by both cores');
});

after(async () => {
  for (const e of envoys.values()) await e.close();
  for (const e of epps) await e.close(1000);
  await gateway.close();
  await proxy.close();
  await busy.close();
  await fleet.close();
  await config.remove();
});

interface DebugPool {
  pool: string;
  saturated: boolean;
  queued: Record<string, number>;
  endpoints: Array<{ address: string; available: boolean; inFlight: number }>;
}
const pools = (g: Gateway): DebugPool[] => (g.debugEndpoints() as { pools: DebugPool[] }).pools;
const available = (g: Gateway): number => pools(g).flatMap((p) => p.endpoints).filter((e) => e.available).length;
const busyPool = (g: Gateway): DebugPool => pools(g).find((p) => p.pool === 'default/busy')!;

interface Answer {
  status: number;
  body: unknown;
  retryAfter: string | undefined;
  contentType: string | undefined;
  requestId: string | undefined;
}

async function ask(base: string, body: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await res.body.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // compared as text
  }
  const ra = res.headers['retry-after'];
  const ct = res.headers['content-type'];
  const id = res.headers['x-request-id'];
  return { status: res.statusCode, body: parsed, retryAfter: typeof ra === 'string' ? ra : undefined, contentType: typeof ct === 'string' ? ct : undefined, requestId: typeof id === 'string' ? id : undefined };
}

/** The same request through both planes: the answers must match. */
async function bothPlanes(pool: 'pool' | 'empty' | 'busy', body: string, headers: Record<string, string> = {}): Promise<{ proxy: Answer; epp: Answer }> {
  const viaProxy = await ask(proxyUrl, body, { ...headers, ...(pool === 'pool' ? {} : { 'x-pool': pool }) });
  const viaEpp = await ask(envoys.get(pool)!.url, body, headers);
  return { proxy: viaProxy, epp: viaEpp };
}

const chat = (model: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 3, ...extra });

test('bad JSON (400), an unknown model (404), a pool without endpoints (503) and a body over the limit (413) are the same answer from the picker as from the proxy', async () => {
  const cases: Array<[string, 'pool' | 'empty', string, number]> = [
    ['bad JSON', 'pool', '{"model": "mymodel", "messages": [', 400],
    ['not an object', 'pool', '[1, 2, 3]', 400],
    ['unknown model', 'pool', chat('no-such-model'), 404],
    ['no endpoint', 'empty', chat('mymodel'), 503],
    ['a body over the limit (several Envoy chunks)', 'pool', chat('mymodel', { pad: 'x'.repeat(100_000) }), 413],
  ];
  let n = 0;
  for (const [name, pool, body, status] of cases) {
    // The client's request id comes back on a refusal from either plane, as it does on an answer.
    const requestId = `refusal-${++n}`;
    const { proxy: p, epp: e } = await bothPlanes(pool, body, { 'x-request-id': requestId });
    assert.equal(p.requestId, requestId, `${name} (proxy): x-request-id`);
    assert.equal(e.requestId, requestId, `${name} (picker): x-request-id`);
    assert.equal(p.status, status, `${name} (proxy): ${JSON.stringify(p.body)}`);
    assert.equal(e.status, p.status, `${name}: status`);
    if (status === 413) {
      // Same answer but for where the limit comes from: the listener's bufferLimit, the pool's limit.
      const { message: pm, ...pRest } = (p.body as { error: Record<string, unknown> }).error;
      const { message: em, ...eRest } = (e.body as { error: Record<string, unknown> }).error;
      assert.deepEqual(eRest, pRest, `${name}: body`);
      assert.equal(pRest['code'], 'body_too_large');
      assert.match(String(pm), /4096/);
      assert.match(String(em), /4096/);
      assert.match(String(em), /InferencePool default\/pool/);
    } else if (status === 404) {
      // The proxy names the HTTPRoute that matched; behind Envoy there is none of ours, only the pool.
      const { message: pm, ...pRest } = (p.body as { error: Record<string, unknown> }).error;
      const { message: em, ...eRest } = (e.body as { error: Record<string, unknown> }).error;
      assert.deepEqual(eRest, pRest, `${name}: body`);
      assert.match(String(pm), /HTTPRoute to-pool/);
      assert.match(String(em), /^The model `no-such-model` is not served here: InferencePool default\/pool has no InferenceModel or pod serving it/);
    } else assert.deepEqual(e.body, p.body, `${name}: body`);
    assert.equal(e.retryAfter, p.retryAfter, `${name}: Retry-After`);
    assert.equal(e.contentType, p.contentType, `${name}: content-type`);
  }
  await until(() => inFlight.size === 0, 20_000, 'in-flight back to zero');
});

test('a saturated pool: Sheddable is 429 request_shed with Retry-After, a full queue is 429 queue_full, from both planes alike; a request Envoy gives up on while queued leaves the queue', { timeout: 120_000 }, async () => {
  const loads: Loader[] = [loadDirectly(busy, 4, { model: 'mymodel', prompt: 'load '.repeat(100), max_tokens: 100_000, ignore_eos: true })];
  const client = new EnvoyExtProcClient({ target: `127.0.0.1:${epps[2]!.grpcPort}`, tls: false });
  const held = new AbortController();
  try {
    await until(() => busyPool(gateway).saturated && busyPool(proxy.gateway).saturated, 60_000, 'the busy pool saturated in both cores');

    const shed = await bothPlanes('busy', chat('bulk'));
    assert.equal(shed.proxy.status, 429, JSON.stringify(shed.proxy.body));
    assert.equal(shed.epp.status, 429);
    assert.deepEqual(shed.epp.body, shed.proxy.body);
    assert.match(shed.epp.retryAfter ?? '', /^[1-9]\d*$/);
    assert.equal(shed.epp.retryAfter, shed.proxy.retryAfter);

    // One Critical request waits in each core's queue (its limit is 1) ...
    const viaProxy = request(`${proxyUrl}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-pool': 'busy' }, body: chat('vip'), signal: held.signal }).catch(() => undefined);
    const call = client.open();
    const body = Buffer.from(chat('vip'));
    call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': String(body.length) })) }, protocol_config: client.protocolConfig() });
    for (const m of bodyMessages('request_body', body, 16 * 1024)) call.send(m);
    await until(() => busyPool(gateway).queued['Critical'] === 1 && busyPool(proxy.gateway).queued['Critical'] === 1, 30_000, 'one request queued in each core');

    // ... so the next is refused with the same answer.
    const full = await bothPlanes('busy', chat('vip'));
    assert.equal(full.proxy.status, 429, JSON.stringify(full.proxy.body));
    assert.equal((full.proxy.body as { error: { code: string } }).error.code, 'queue_full');
    assert.equal(full.epp.status, 429);
    assert.deepEqual(full.epp.body, full.proxy.body);
    assert.equal(full.epp.retryAfter, full.proxy.retryAfter);

    // Envoy's message timeout: no answer in time, Envoy resets the stream. The queued request leaves.
    assert.equal(call.pending(), 0, 'the picker has not answered the queued request');
    call.cancel();
    await until(() => busyPool(gateway).queued['Critical'] === 0, 20_000, 'the abandoned request left the queue');
    await until(() => inFlight.size === 0, 20_000, 'in-flight back to zero');
    held.abort();
    await viaProxy;
  } finally {
    held.abort();
    for (const l of loads) l.stop();
    client.close();
  }
  await Promise.all(loads.map((l) => l.done));
});
