import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { bbrModel, matchRoute, pickCluster, startEnvoyRouter, type EnvoyRouter, type EnvoyRoute } from '../support/envoy-routes.js';
import { fixedPicker } from '../support/fixed-picker.js';
import { startFleet } from '../support/fleet.js';

// The Envoy stand-in's routing (test/support/envoy-routes.ts): Envoy's route matching and
// weighted_clusters, and BBR's copy of the body's model into X-Gateway-Model-Name before matching.

test('routes match in order on exact headers (names case-insensitive); weighted_clusters pick by weight', () => {
  const routes: EnvoyRoute[] = [
    { headers: { 'X-Gateway-Model-Name': 'a' }, clusters: [{ cluster: 'pool-a', weight: 1 }] },
    { clusters: [{ cluster: 'v1', weight: 90 }, { cluster: 'v2', weight: 10 }] },
  ];
  assert.equal(matchRoute(routes, { 'x-gateway-model-name': 'a' }), routes[0]);
  assert.equal(matchRoute(routes, { 'x-gateway-model-name': 'b' }), routes[1]);
  assert.equal(matchRoute([routes[0] as EnvoyRoute], {}), undefined);
  const weighted = routes[1] as EnvoyRoute;
  assert.equal(pickCluster(weighted, () => 0), 'v1');
  assert.equal(pickCluster(weighted, () => 0.899), 'v1');
  assert.equal(pickCluster(weighted, () => 0.9), 'v2');
  assert.equal(pickCluster({ clusters: [{ cluster: 'x', weight: 0 }] }, () => 0.5), undefined, 'total weight 0: no cluster');
});

test("BBR reads the body's model; not JSON is its 400; JSON without a string model sets no header", () => {
  assert.deepEqual(bbrModel(Buffer.from('{"model":"m","x":1}')), { model: 'm' });
  assert.deepEqual(bbrModel(Buffer.from('{"model":7}')), { model: undefined });
  assert.deepEqual(bbrModel(Buffer.from('[1]')), { model: undefined });
  assert.deepEqual(bbrModel(Buffer.alloc(0)), { model: undefined });
  assert.equal(bbrModel(Buffer.from('{"model": ')), 'invalid');
});

let fleet: Awaited<ReturnType<typeof startFleet>>;
let epps: ExtProcServer[];
let router: EnvoyRouter;

before(async () => {
  fleet = await startFleet([{ host: '127.0.0.1', name: 'sim-a', models: ['model-b', 'model-x'] }]);
  const endpoint = `127.0.0.1:${fleet.port}`;
  epps = await Promise.all(['a', 'b'].map(() => startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: fixedPicker({ endpoint }).factory, ready: () => true, logger: createLogger('silent') })));
  router = await startEnvoyRouter({
    clusters: { a: { target: `127.0.0.1:${epps[0]?.grpcPort}`, tls: false }, b: { target: `127.0.0.1:${epps[1]?.grpcPort}`, tls: false } },
    routes: [{ headers: { 'X-Gateway-Model-Name': 'model-b' }, clusters: [{ cluster: 'b', weight: 1 }] }, { headers: { 'x-lane': 'a' }, clusters: [{ cluster: 'a', weight: 1 }] }],
  });
});

after(async () => {
  await router.close();
  await Promise.all(epps.map((e) => e.close(1000)));
  await fleet.close();
});

const send = (body: string, headers: Record<string, string> = {}): Promise<Response> => fetch(`${router.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

test("end to end: the body's model routes (a client's X-Gateway-Model-Name is overwritten); no route is 404; bad JSON is BBR's 400", async () => {
  const viaBody = await send(JSON.stringify({ model: 'model-b', prompt: 'hi', max_tokens: 2 }), { 'x-gateway-model-name': 'other' });
  await viaBody.arrayBuffer();
  assert.equal(viaBody.status, 200);
  const last = router.exchanges().at(-1);
  assert.equal(last?.cluster, 'b');
  assert.equal(last?.upstreamHeaders['x-gateway-model-name'], 'model-b', 'the EPP saw the header BBR set');

  const steered = await send(JSON.stringify({ model: 'model-x', prompt: 'hi', max_tokens: 2 }), { 'x-gateway-model-name': 'model-b' });
  await steered.arrayBuffer();
  assert.equal(steered.status, 404, "the client's header did not survive BBR");

  const other = await send(JSON.stringify({ model: 'model-x', prompt: 'hi', max_tokens: 2 }), { 'x-lane': 'a' });
  await other.arrayBuffer();
  assert.equal(other.status, 200);
  assert.equal(router.exchanges().filter((e) => e.cluster === 'a').length, 1);

  const bad = await send('{"model": ', { 'x-lane': 'a' });
  assert.equal(bad.status, 400);
  await bad.arrayBuffer();
});
