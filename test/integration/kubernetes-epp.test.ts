import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { BIN } from '../support/cli.js';
import { startEnvoyStandin, type EnvoyStandin } from '../support/envoy-standin.js';
import { FakeApiServer } from '../support/fake-apiserver.js';
import { startFleet } from '../support/fleet.js';
import { startGatewayProcess, watchLogs, type GatewayProcess, type LogWatch } from '../support/gateway-process.js';
import { gatewayClassObj, gatewayObj, kubeconfigFor, modelObj, podObj, poolObj, routeObj } from '../support/kube.js';
import { freePort } from '../support/ports.js';

/*
 * Both data planes from one API server at once: `infergate epp --kubernetes` behind the Envoy
 * stand-in and `infergate serve --kubernetes`, each following the same cluster.
 */

const HOSTS = { 'sim-0': '127.0.0.51', 'sim-1': '127.0.0.52', 'sim-2': '127.0.0.53' } as const;
type PodName = keyof typeof HOSTS;

let api: FakeApiServer;
let fleet: Awaited<ReturnType<typeof startFleet>>;
let kube: Awaited<ReturnType<typeof kubeconfigFor>>;
let listener: number;

before(async () => {
  fleet = await startFleet((Object.keys(HOSTS) as PodName[]).map((name) => ({ host: HOSTS[name], name })));
  api = await FakeApiServer.start();
  listener = await freePort();
  api.apply(gatewayClassObj());
  api.apply(gatewayObj(listener));
  api.apply(routeObj('pool'));
  api.apply(poolObj('pool', { app: 'sim' }, fleet.port));
  api.apply(poolObj('elsewhere', { app: 'elsewhere' }, fleet.port));
  api.apply(modelObj('food', 'food-review', 'pool', [{ name: 'mymodel', weight: 1 }]));
  api.apply(podObj('sim-0', { app: 'sim' }, HOSTS['sim-0'], true, fleet.port));
  api.apply(podObj('sim-1', { app: 'sim', tier: 'gpu' }, HOSTS['sim-1'], true, fleet.port));
  api.apply(podObj('sim-2', { app: 'elsewhere', tier: 'gpu' }, HOSTS['sim-2'], true, fleet.port));
  kube = await kubeconfigFor(api);
});

after(async () => {
  await api?.close();
  await fleet?.close();
  await kube?.remove();
});

async function startEpp(args: string[]): Promise<LogWatch & { grpcPort: number; metricsPort: number; close: () => Promise<void> }> {
  const child = spawn(process.execPath, [BIN, 'epp', '--exit-with-parent', '--address', '127.0.0.1', '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--insecure', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const watch = watchLogs(child);
  const started = await Promise.race([watch.waitForLog((l) => l.msg === 'endpoint picker started', 60_000), watch.exited.then((code) => Promise.reject(new Error(`epp exited ${code}: ${watch.stderr()}`)))]);
  return {
    ...watch,
    grpcPort: Number(started['grpcPort']),
    metricsPort: Number(started['metricsPort']),
    async close() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await watch.exited;
    },
  };
}

async function post(base: string, model: string): Promise<{ status: number; pod: string | undefined }> {
  const res = await request(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 2 }) });
  await res.body.text();
  const pod = res.headers['x-sim-pod'];
  return { status: res.statusCode, pod: typeof pod === 'string' ? pod : undefined };
}

async function until(what: string, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Until `n` requests in a row through `base` are answered by pods in `pods`. */
async function allLandOn(base: string, pods: readonly string[], n = 20): Promise<void> {
  await until(`${n} requests in a row on ${pods.join(', ')} via ${base}`, async () => {
    for (let i = 0; i < n; i++) {
      const r = await post(base, 'food-review');
      assert.equal(r.status, 200);
      if (!pods.includes(r.pod ?? '')) return false;
    }
    return true;
  });
}

test('epp --kubernetes and serve --kubernetes from one API server at once: both follow the cluster', { timeout: 180_000 }, async () => {
  const epp = await startEpp(['--kubernetes', '--kubeconfig', kube.path, '--pool-name', 'pool', '--namespace', 'default']);
  let envoy: EnvoyStandin | undefined;
  let proxy: GatewayProcess | undefined;
  try {
    proxy = await startGatewayProcess(['--kubernetes', '--kubeconfig', kube.path, '--namespace', 'default']);
    const ready = await fetch(`http://127.0.0.1:${epp.metricsPort}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
    envoy = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, tls: false });
    const viaEnvoy = envoy.url;
    const viaProxy = `http://127.0.0.1:${listener}`;
    // Both serve the pool's two pods, never the other pool's.
    for (const base of [viaEnvoy, viaProxy]) {
      const seen = new Set<string | undefined>();
      for (let i = 0; i < 30; i++) {
        const r = await post(base, 'food-review');
        assert.equal(r.status, 200);
        seen.add(r.pod);
      }
      assert.deepEqual([...seen].sort(), ['sim-0', 'sim-1'], base);
    }
    // Each writes its own entry in the pool's status, through its own Lease, and neither removes
    // the other's: the picker under its controller name with upstream's default parent, the
    // gateway under its own for its Gateway.
    await until('both status entries on the pool', async () => {
      const pool = api.get({ apiVersion: 'inference.networking.k8s.io/v1', kind: 'InferencePool', namespace: 'default', name: 'pool' });
      const parents = ((pool?.['status'] as { parents?: Array<{ controllerName?: string; parentRef?: { kind?: string; name?: string } }> } | undefined)?.parents ?? []);
      const picker = parents.find((p) => p.controllerName === 'infergate.dev/endpoint-picker');
      const gateway = parents.find((p) => p.controllerName === 'infergate.dev/gateway-controller');
      return picker?.parentRef?.kind === 'Status' && picker.parentRef.name === 'default' && gateway !== undefined;
    });
    assert.ok(api.get({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: 'default', name: 'pool-epp' }) !== undefined);
    assert.ok(api.get({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: 'default', name: 'infergate-status' }) !== undefined);
    // The picker asked only for its pool (by name) and its pool's pods (by label).
    assert.ok(api.requests.some((r) => r.path === '/api/v1/namespaces/default/pods' && r.query['labelSelector'] === 'app=sim'));
    assert.ok(api.requests.some((r) => r.path === '/apis/inference.networking.k8s.io/v1/namespaces/default/inferencepools' && r.query['fieldSelector'] === 'metadata.name=pool'));

    // A pod leaves the pool: both data planes stop sending to it.
    api.delete('Pod/default/sim-0');
    await allLandOn(viaEnvoy, ['sim-1']);
    await allLandOn(viaProxy, ['sim-1']);
    // The pool's selector changes to one that keeps sim-1 and adds sim-2: both data planes follow
    // (the picker lists its pods again by the new selector) and sim-1 serves throughout.
    api.apply(poolObj('pool', { tier: 'gpu' }, fleet.port));
    for (const base of [viaEnvoy, viaProxy]) {
      await until(`a request on sim-2 via ${base}`, async () => {
        const r = await post(base, 'food-review');
        assert.equal(r.status, 200);
        return r.pod === 'sim-2';
      });
    }
    assert.ok(api.requests.some((r) => r.path === '/api/v1/namespaces/default/pods' && r.query['labelSelector'] === 'tier=gpu'));
    await epp.waitForLog((l) => l.msg === 'Request Handled');
  } finally {
    await envoy?.close();
    await proxy?.stop();
    await epp.close();
  }
});

test('epp --kubernetes while the API server is down: alive but not ready, then ready once it answers', { timeout: 120_000 }, async () => {
  await api.stop();
  const metricsPort = await freePort();
  const child = spawn(process.execPath, [BIN, 'epp', '--exit-with-parent', '--address', '127.0.0.1', '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', String(metricsPort), '--insecure', '--kubernetes', '--kubeconfig', kube.path, '--pool-name', 'pool', '--namespace', 'default'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const watch = watchLogs(child);
  const probe = async (path: string): Promise<{ status: number; body: string } | undefined> => {
    try {
      const r = await request(`http://127.0.0.1:${metricsPort}${path}`);
      return { status: r.statusCode, body: await r.body.text() };
    } catch {
      return undefined;
    }
  };
  try {
    // Alive (a liveness probe must not restart it in a loop), not ready, and says why.
    await until('the picker answering /healthz', async () => (await probe('/healthz'))?.status === 200);
    const notReady = await probe('/readyz');
    assert.equal(notReady?.status, 503);
    assert.match(notReady?.body ?? '', /loading the configuration/);
    assert.equal(child.exitCode, null);
    await api.restart();
    await until('the picker ready once the API server answers', async () => (await probe('/readyz'))?.status === 200);
    await watch.waitForLog((l) => l.msg === 'endpoint picker started', 30_000);
  } finally {
    if (!api.listening) await api.restart();
    if (child.exitCode === null) child.kill('SIGTERM');
    await watch.exited;
  }
});
