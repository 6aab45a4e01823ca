import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { FileConfigSource } from '../../src/config/file-source.js';
import { headerMap, headerRecord } from '../../src/extproc/headers.js';
import { corePicker } from '../../src/extproc/picker.js';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { Gateway, InFlight } from '../../src/gateway/index.js';
import { startSimServer, type RunningSimServer } from '../../src/sim/index.js';
import { configDir, modelYaml, podYaml, poolYaml } from '../support/config.js';
import { bodyMessages, EnvoyExtProcClient, envoyRequestHeaders, metadataContext, startEnvoyStandin, type EnvoyStandin } from '../support/envoy-standin.js';
import { until } from '../support/fixed-picker.js';
import { startFleet } from '../support/fleet.js';
import { memoryLogger } from '../support/memory-source.js';

// The Gateway API Inference Extension conformance assertions that concern an endpoint picker
// (GIE conformance/: GatewayFollowingEPPRouting, …WithDataParallelism, GatewayDestinationEndpointServed),
// played end to end: client → Envoy stand-in → picker (the gateway core) → simulators. The conformance
// suite steers its test EPP with a header naming the pods; here the same header becomes Envoy's subset
// hint (`envoy.lb.subset_hint`), which the picker must obey exactly.

const SELECT = 'test-epp-endpoint-selection';
const HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
const DP_HOST = '127.0.0.5';

let fleet: Awaited<ReturnType<typeof startFleet>>;
let ranks: RunningSimServer[];
let gateway: Gateway;
let epp: ExtProcServer;
let dpEpp: ExtProcServer;
let envoy: EnvoyStandin;
let dpEnvoy: EnvoyStandin;
let config: Awaited<ReturnType<typeof configDir>>;
const inFlight = new InFlight();
const { logger, lines } = memoryLogger();

function dpPoolYaml(ports: readonly number[]): string {
  return `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: dp}
spec:
  selector: {matchLabels: {app: sim, release: dp}}
  targetPorts: [${ports.map((p) => `{number: ${p}}`).join(', ')}]
  endpointPickerRef: {name: dp-epp, port: {number: 9002}}
`;
}

const subsetFromHeader = (req: { headers: Record<string, string | string[] | undefined> }): Record<string, Record<string, string[]>> | undefined => {
  const v = req.headers[SELECT];
  if (typeof v !== 'string') return undefined;
  return { 'envoy.lb.subset_hint': { 'x-gateway-destination-endpoint-subset': v === '' ? [] : v.split(',') } };
};

before(async () => {
  fleet = await startFleet(HOSTS.map((host, i) => ({ host, name: `pod-${i}` })));
  ranks = [await startSimServer({ host: DP_HOST, port: 0, name: 'dp-pod', profile: 'tiny', timeScale: 10 })];
  ranks.push(await startSimServer({ host: DP_HOST, port: 0, name: 'dp-pod', profile: 'tiny', timeScale: 10 }));
  config = await configDir(
    poolYaml('pool', 'r1', fleet.port) +
      HOSTS.map((h, i) => podYaml(`pod-${i}`, 'r1', h)).join('') +
      modelYaml('m', 'conformance-fake-model', 'pool', [{ name: 'mymodel', weight: 1 }]) +
      dpPoolYaml(ranks.map((r) => r.port)) +
      modelYaml('m-dp', 'conformance-fake-model', 'dp', [{ name: 'mymodel', weight: 1 }]) +
      podYaml('dp-pod', 'dp', DP_HOST),
  );
  gateway = await Gateway.start({ sources: [new FileConfigSource([config.dir], { watch: false })], logger });
  epp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: corePicker(gateway, { poolKey: 'default/pool', inFlight }), ready: () => true, logger });
  dpEpp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: corePicker(gateway, { poolKey: 'default/dp', inFlight }), ready: () => true, logger });
  envoy = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, tls: false, requestMetadata: subsetFromHeader });
  dpEnvoy = await startEnvoyStandin({ target: `127.0.0.1:${dpEpp.grpcPort}`, tls: false, requestMetadata: subsetFromHeader });
  await until(() => available().length === HOSTS.length + ranks.length, 30_000, 'every endpoint scraped');
});

after(async () => {
  await envoy.close();
  await dpEnvoy.close();
  await epp.close(1000);
  await dpEpp.close(1000);
  await gateway.close();
  await fleet.close();
  await Promise.all(ranks.map((r) => r.close()));
  await config.remove();
});

interface DebugView {
  pools: Array<{ pool: string; endpoints: Array<{ address: string; name: string; inFlight: number; available: boolean }> }>;
}
const view = (): DebugView => gateway.debugEndpoints() as DebugView;
const available = (): string[] => view().pools.flatMap((p) => p.endpoints.filter((e) => e.available).map((e) => e.address));
const inFlightOf = (address: string): number => view().pools.flatMap((p) => p.endpoints).find((e) => e.address === address)?.inFlight ?? -1;
const totalInFlight = (): number => view().pools.flatMap((p) => p.endpoints).reduce((n, e) => n + e.inFlight, 0);

const BODY = JSON.stringify({ model: 'conformance-fake-model', prompt: 'Write as if you were a critic: San Francisco', max_tokens: 3 });

async function send(through: EnvoyStandin, selection?: string): Promise<{ status: number; served: string; text: string }> {
  const res = await request(`${through.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...(selection === undefined ? {} : { [SELECT]: selection }) }, body: BODY });
  const text = await res.body.text();
  return { status: res.statusCode, served: `${String(res.headers['x-sim-pod'])}:${String(res.headers['x-sim-port'])}`, text };
}

/** 100 requests, 10 at a time (the conformance suite's numbers); the `host:port` that answered each. */
async function hundred(through: EnvoyStandin, selection: string): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      while (next < 100) {
        next++;
        const r = await send(through, selection);
        assert.equal(r.status, 200, r.text);
        seen.set(r.served, (seen.get(r.served) ?? 0) + 1);
      }
    }),
  );
  return seen;
}

const podOf = new Map<string, string>(HOSTS.map((h, i) => [`${h}:`, `pod-${i}`]));
const keyOf = (host: string): string => `${host}:${fleet.port}`;
const served = (pods: Map<string, number>): string[] => [...pods.keys()].sort();

for (const n of [1, 2, 3]) {
  test(`GatewayFollowingEPPRouting: a subset of ${n} endpoint(s): 100 requests, 10 concurrent, land only there`, async () => {
    const chosen = HOSTS.slice(0, n);
    const seen = await hundred(envoy, chosen.map(keyOf).join(','));
    const want = chosen.map((h) => `${podOf.get(`${h}:`)}:${fleet.port}`).sort();
    assert.ok(served(seen).every((s) => want.includes(s)), `landed on ${served(seen).join(', ')}; allowed ${want.join(', ')}`);
    // Fallbacks too: Envoy's own retries walk the list, so every entry must be in the subset.
    for (const ex of envoy.exchanges.slice(-100)) {
      const named = (ex.upstreamHeaders['x-gateway-destination-endpoint'] ?? '').split(',');
      assert.ok(named.every((k) => chosen.map(keyOf).includes(k)), `named ${named.join(',')}`);
      const lb = ex.dynamicMetadata?.fields?.['envoy.lb']?.structValue?.fields?.['x-gateway-destination-endpoint']?.stringValue;
      assert.equal(lb, named.join(','), 'the envoy.lb metadata says the same as the header');
    }
    await until(() => inFlight.size === 0 && totalInFlight() === 0, 20_000, 'in-flight back to zero');
  });
}

test('a subset that is empty or names no endpoint of the pool is a 503 from the picker; a near miss (same IP, other port) is not eligible', async () => {
  for (const selection of ['', '10.0.0.9:8000', `${HOSTS[0]}:${fleet.port + 1}`, 'x'.repeat(500)]) {
    const before = envoy.exchanges.length;
    const r = await send(envoy, selection);
    assert.equal(r.status, 503, `${selection.slice(0, 40)}: ${r.text}`);
    assert.equal((JSON.parse(r.text) as { error: { type: string } }).error.type !== undefined, true);
    assert.equal(envoy.exchanges.length, before, 'nothing forwarded');
  }
  await until(() => inFlight.size === 0 && totalInFlight() === 0, 20_000, 'in-flight back to zero');
});

test('GatewayFollowingEPPRoutingWithDataParallelism: each target port is its own endpoint; requests spread over the ranks; a subset picks ranks exactly', async () => {
  const rankKeys = ranks.map((r) => `${DP_HOST}:${r.port}`);
  const dp = view().pools.find((p) => p.pool === 'default/dp');
  assert.deepEqual(dp?.endpoints.map((e) => e.address).sort(), [...rankKeys].sort(), 'one endpoint per target port');
  assert.equal(new Set(dp?.endpoints.map((e) => e.name)).size, 2, 'the ranks have distinct names');
  const all = await hundred(dpEnvoy, rankKeys.join(','));
  assert.deepEqual(served(all), rankKeys.map((k) => `dp-pod:${k.split(':')[1]}`).sort(), `both ranks served: ${JSON.stringify([...all])}`);
  for (const k of rankKeys) {
    const only = await hundred(dpEnvoy, k);
    assert.deepEqual(served(only), [`dp-pod:${k.split(':')[1]}`]);
  }
  await until(() => inFlight.size === 0 && totalInFlight() === 0, 20_000, 'in-flight back to zero');
});

/** One request through a raw ext_proc stream, as Envoy would, up to the picker's routing answer. */
async function routed(client: EnvoyExtProcClient, requestId: string, subset: readonly string[]): Promise<{ call: ReturnType<EnvoyExtProcClient['open']>; destination: string }> {
  const call = client.open();
  const headers = envoyRequestHeaders('POST', '/v1/completions', { 'content-type': 'application/json', 'x-request-id': requestId, 'content-length': String(Buffer.byteLength(BODY)) });
  call.send({ request_headers: { headers: headerMap(headers) }, metadata_context: metadataContext({ 'envoy.lb.subset_hint': { 'x-gateway-destination-endpoint-subset': [...subset] } }), protocol_config: client.protocolConfig() });
  for (const m of bodyMessages('request_body', Buffer.from(BODY), 16 * 1024)) call.send(m);
  const answer = await call.next();
  const set = headerRecord({ headers: (answer.request_headers?.response?.header_mutation?.set_headers ?? []).map((o) => o.header ?? {}) });
  const destination = set['x-gateway-destination-endpoint'];
  assert.ok(destination !== undefined, JSON.stringify(answer));
  for (;;) {
    const m = await call.next();
    if (m.request_body?.response?.body_mutation?.streamed_response?.end_of_stream === true) break;
  }
  return { call, destination };
}

test('GatewayDestinationEndpointServed: after Envoy\'s own retry elsewhere, the accounting and the log line follow the served endpoint; a hostile served value is ignored', async () => {
  const client = new EnvoyExtProcClient({ target: `127.0.0.1:${epp.grpcPort}`, tls: false });
  try {
    const [a, b] = [keyOf(HOSTS[0]!), keyOf(HOSTS[1]!)];
    // The picker sends to a; Envoy's retry policy lands on b, and Envoy says so on the response headers.
    const { call, destination } = await routed(client, 'served-1', [a]);
    assert.equal(destination, a);
    assert.equal(inFlightOf(a), 1);
    call.send({ response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) }, metadata_context: metadataContext({ 'envoy.lb': { 'x-gateway-destination-endpoint-served': b } }) });
    await call.next();
    assert.equal(inFlightOf(a), 0, 'the dispatched endpoint is released');
    assert.equal(inFlightOf(b), 1, 'the served endpoint carries the request');
    call.send({ response_body: { body: Buffer.from('{"choices":[{"text":"ok"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}'), end_of_stream: true } });
    await call.next();
    call.end();
    const line = await untilLine('served-1');
    assert.equal(line['address'], b, 'the log line names the endpoint that served');
    assert.equal(inFlightOf(b), 0);

    // Hostile values: not an endpoint of the pool, too long, not a string. The dispatched endpoint keeps the request.
    for (const [i, hostile] of (['10.6.6.6:80', `${a},${b}`, 'z'.repeat(100_000), 42] as const).entries()) {
      const id = `served-hostile-${i}`;
      const r = await routed(client, id, [a]);
      r.call.send({ response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) }, metadata_context: metadataContext({ 'envoy.lb': { 'x-gateway-destination-endpoint-served': hostile } }) });
      await r.call.next();
      assert.equal(inFlightOf(a), 1, `${String(hostile).slice(0, 30)}: the dispatched endpoint keeps the request`);
      r.call.send({ response_body: { body: Buffer.from('{"choices":[]}'), end_of_stream: true } });
      await r.call.next();
      r.call.end();
      assert.equal((await untilLine(id))['address'], a);
    }
    await until(() => inFlight.size === 0 && totalInFlight() === 0, 20_000, 'in-flight back to zero');
  } finally {
    client.close();
  }
});

async function untilLine(requestId: string): Promise<Record<string, unknown>> {
  await until(() => lines.some((l) => l['msg'] === 'Request Handled' && l['requestId'] === requestId), 20_000, `Request Handled ${requestId}`);
  return lines.find((l) => l['msg'] === 'Request Handled' && l['requestId'] === requestId)!;
}
