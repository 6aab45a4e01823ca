import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import type { Resource } from '../../../src/api/types.js';
import { Backoff } from '../../../src/config/kubernetes/backoff.js';
import { ApiConnection, loadKubeConfig } from '../../../src/config/kubernetes/connection.js';
import { KubernetesSource, type KubernetesSourceOptions } from '../../../src/config/kubernetes/source.js';
import type { ConfigBatch, SourceLog } from '../../../src/config/source.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { gatewayClassObj, gatewayObj, kubeconfigFor, modelObj, podObj, poolObj, routeObj } from '../../support/kube.js';

/*
 * The Kubernetes source against the fake API server, seen from the gateway's side: the batches it
 * delivers. (Traffic through a gateway fed by it: test/integration/kubernetes*.test.ts.)
 */

const DEADLINE_MS = 20_000;

async function until<T>(what: string, probe: () => T | undefined | false): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const v = probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Harness {
  api: FakeApiServer;
  source: KubernetesSource;
  batches: ConfigBatch[];
  logs: { level: string; msg: string; fields: Record<string, unknown> }[];
  /** The gateway's state as the batches built it: resourceKey → resource. */
  state: Map<string, Resource>;
  started: Promise<unknown>;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function key(r: { kind: string; metadata?: { namespace: string; name: string }; namespace?: string; name?: string }): string {
  return 'metadata' in r && r.metadata !== undefined ? `${r.kind}/${r.metadata.namespace}/${r.metadata.name}` : `${r.kind}/${r.namespace}/${r.name}`;
}

async function harness(setup: (api: FakeApiServer) => void, opts: Partial<KubernetesSourceOptions> = {}, apiOpts: Parameters<typeof FakeApiServer.start>[0] = {}): Promise<Harness> {
  const api = await FakeApiServer.start({ bookmarkIntervalMs: 200, ...apiOpts });
  setup(api);
  const kc = await kubeconfigFor(api);
  const connection = new ApiConnection(loadKubeConfig(kc.path).config);
  const source = new KubernetesSource({
    connection,
    namespace: 'default',
    scope: { kind: 'gateway', gatewayClass: 'infergate' },
    backoff: () => new Backoff(20, 200),
    missingBackoff: () => new Backoff(50, 200),
    ...opts,
  });
  const batches: ConfigBatch[] = [];
  const state = new Map<string, Resource>();
  const logs: Harness['logs'] = [];
  const log: SourceLog = {
    info: (fields, msg) => logs.push({ level: 'info', msg, fields }),
    warn: (fields, msg) => logs.push({ level: 'warn', msg, fields }),
  };
  const started = source.start(async (b) => {
    batches.push(b);
    if (b.replace) state.clear();
    for (const d of b.deletes) state.delete(key(d));
    for (const u of b.upserts) state.set(key(u), u);
    return { ok: true, version: batches.length, warnings: [], configChanged: true };
  }, log);
  cleanups.push(async () => {
    await source.stop();
    await api.close();
    await kc.remove();
  });
  return { api, source, batches, logs, state, started };
}

function basics(api: FakeApiServer, pods = 0): void {
  api.apply(gatewayClassObj());
  api.apply(gatewayObj(18080));
  api.apply(routeObj('pool'));
  api.apply(poolObj('pool', { app: 'sim' }, 8000));
  for (let i = 0; i < pods; i++) api.apply(podObj(`p${i}`, { app: 'sim' }, `10.0.${Math.floor(i / 250)}.${i % 250}`));
}

const podsIn = (state: Map<string, Resource>): string[] => [...state.values()].filter((r) => r.kind === 'Pod').map((r) => r.metadata.name).sort();

describe('Kubernetes source', () => {
  test('1000 pods listed at start are one batch; one pod change is one small batch; unselected pods stay out', async () => {
    const h = await harness((api) => {
      basics(api, 1000);
      api.apply(podObj('other', { app: 'unrelated' }, '10.9.9.9'));
    });
    await h.started;
    assert.equal(h.batches.length, 1);
    assert.equal(h.batches[0]!.replace, true);
    assert.equal(h.batches[0]!.upserts.filter((r) => r.kind === 'Pod').length, 1000);
    assert.ok(!h.state.has('Pod/default/other'), 'a pod no pool or Service selects does not reach the gateway');
    // Pods are slimmed to what discovery reads.
    const p0 = h.state.get('Pod/default/p0');
    assert.equal(p0?.kind === 'Pod' && p0.status.podIP, '10.0.0.0');
    assert.equal(p0?.kind === 'Pod' && p0.status.ready, true);
    // A Pod whose kubelet has not reported Ready yet is not ready (a file's Pod without conditions is).
    const fresh = podObj('fresh', { app: 'sim' }, '10.0.9.1');
    (fresh['status'] as Record<string, unknown>)['conditions'] = [{ type: 'PodScheduled', status: 'True' }];
    h.api.apply(fresh);
    await until('the fresh pod', () => h.state.get('Pod/default/fresh'));
    const f = h.state.get('Pod/default/fresh');
    assert.equal(f?.kind === 'Pod' && f.status.ready, false);
    h.api.delete('Pod/default/fresh');
    await until('the fresh pod gone', () => !h.state.has('Pod/default/fresh'));
    const settled = h.batches.length;

    h.api.apply(podObj('p1', { app: 'sim' }, '10.0.0.1', false));
    await until('the pod change', () => h.batches.length === settled + 1);
    const b = h.batches[settled]!;
    assert.equal(b.replace, false);
    assert.deepEqual(b.upserts.map((r) => r.metadata.name), ['p1']);
    assert.equal(b.deletes.length, 0);
  });

  test('a pod flapping Ready as fast as the API server can say it: a bounded number of batches, ending in its last state', async () => {
    const h = await harness((api) => basics(api, 1));
    await h.started;
    const before = h.batches.length;
    // A second of flapping: one change per timer tick (~1 ms), hundreds in all.
    let ready = true;
    let flips = 0;
    const end = Date.now() + 1000;
    while (Date.now() < end) {
      ready = !ready;
      flips++;
      h.api.apply(podObj('p0', { app: 'sim' }, '10.0.0.0', ready));
      await new Promise((r) => setImmediate(r));
      if (flips % 5 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    h.api.apply(podObj('p0', { app: 'sim' }, '10.0.0.0', true));
    await until('the last state', () => {
      const p = h.state.get('Pod/default/p0');
      return p?.kind === 'Pod' && p.status.ready === true && h.batches.length > before;
    });
    await new Promise((r) => setTimeout(r, 300));
    const p = h.state.get('Pod/default/p0');
    assert.equal(p?.kind === 'Pod' && p.status.ready, true);
    // About ten a second (minBatchIntervalMs 100) however many events; a batch per 5 ms window would be hundreds.
    const batches = h.batches.length - before;
    assert.ok(flips > 100, `${flips} flips`);
    assert.ok(batches <= 30, `${batches} batches for ${flips} flips`);
  });

  test('a pool selector change brings the newly selected pods and drops the others', async () => {
    const h = await harness((api) => {
      basics(api);
      api.apply(podObj('a', { app: 'sim', track: 'blue' }, '10.0.0.1'));
      api.apply(podObj('b', { app: 'other', track: 'green' }, '10.0.0.2'));
    });
    await h.started;
    assert.deepEqual(podsIn(h.state), ['a']);
    h.api.apply(poolObj('pool', { track: 'green' }, 8000));
    await until('the new selection', () => podsIn(h.state).join() === 'b');
  });

  test('410 Gone: the re-list keeps the pods that still exist and drops only the vanished one', async () => {
    const h = await harness((api) => {
      basics(api);
      for (const n of ['a', 'b', 'c']) api.apply(podObj(n, { app: 'sim' }, `10.0.0.${n.charCodeAt(0) - 96}`));
    });
    await h.started;
    await until('the pod watch', () => h.api.watchCount('Pod') === 1);
    // While the watch is down, `b` goes and the history is compacted: the resume gets 410.
    await h.api.stop();
    h.api.delete('Pod/default/b');
    h.api.apply(podObj('d', { app: 'sim' }, '10.0.0.4'));
    h.api.compactBefore();
    const before = h.batches.length;
    await h.api.restart();
    await until('the re-list', () => podsIn(h.state).join() === 'a,c,d');
    const after = h.batches.slice(before);
    assert.ok(after.every((b) => !b.replace), 'changes only');
    const deleted = after.flatMap((b) => b.deletes.map((d) => d.name));
    assert.deepEqual(deleted, ['b'], 'only the vanished pod is deleted');
    const upserted = after.flatMap((b) => b.upserts.map((u) => u.metadata.name));
    assert.deepEqual(upserted, ['d'], 'pods that did not change are not delivered again');
    const podLists = h.api.requests.filter((r) => !r.watch && r.path === '/api/v1/namespaces/default/pods' && r.status === 200);
    assert.ok(podLists.length >= 2, 'the 410 made it list again');
  });

  test('the API server down and back: stale while it is down, fresh after, and changes made meanwhile arrive', async () => {
    const h = await harness((api) => {
      basics(api);
      api.apply(podObj('a', { app: 'sim' }, '10.0.0.1'));
    });
    await h.started;
    assert.equal(h.source.health().stale, false);
    await h.api.stop();
    await until('stale', () => h.source.health().stale);
    assert.match(h.source.health().detail ?? '', /last view/);
    h.api.apply(podObj('b', { app: 'sim' }, '10.0.0.2'));
    await h.api.restart();
    await until('fresh again', () => !h.source.health().stale && podsIn(h.state).join() === 'a,b');
    assert.ok(h.logs.some((l) => /unreachable/.test(l.msg)));
    assert.ok(h.logs.some((l) => /reachable again/.test(l.msg)));
  });

  test('started while the API server is down: the first state is delivered once it answers, never an empty one', async () => {
    const h = await harness((a) => basics(a, 2));
    await h.started;
    // A second source, started while the API server is down.
    await h.api.stop();
    const kc = await kubeconfigFor(h.api);
    cleanups.push(kc.remove);
    const again = new KubernetesSource({
      connection: new ApiConnection(loadKubeConfig(kc.path).config),
      namespace: 'default',
      scope: { kind: 'gateway', gatewayClass: 'infergate' },
      backoff: () => new Backoff(20, 200),
    });
    const batches: ConfigBatch[] = [];
    let done = false;
    const started = again.start(async (b) => {
      batches.push(b);
      return { ok: true, version: 1, warnings: [], configChanged: true };
    }).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(done, false, 'not started (not ready) while nothing could be listed');
    assert.equal(batches.length, 0);
    await h.api.restart();
    await started;
    assert.equal(batches[0]?.replace, true);
    assert.equal(batches[0]?.upserts.filter((r) => r.kind === 'Pod').length, 2);
    await again.stop();
  });

  test('a missing CRD is skipped with one warning and picked up once installed', async () => {
    const h = await harness(
      (api) => {
        basics(api);
        api.uninstall('inference.networking.x-k8s.io/v1alpha2', 'InferenceModel');
      },
      {},
    );
    await h.started;
    const warned = h.logs.filter((l) => /does not serve inferencemodels/.test(l.msg));
    assert.equal(warned.length, 1);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(h.logs.filter((l) => /does not serve inferencemodels/.test(l.msg)).length, 1, 'warned once, however often it is checked');
    h.api.install({ group: 'inference.networking.x-k8s.io', version: 'v1alpha2', plural: 'inferencemodels', kind: 'InferenceModel', namespaced: true });
    h.api.apply(modelObj('m', 'mymodel', 'pool', [{ name: 'mymodel', weight: 1 }]));
    await until('the model', () => h.state.has('InferenceModel/default/m'));
  });

  test('a hostile object is refused (named, with field and reason) and its last good version keeps serving', async () => {
    const h = await harness((api) => basics(api));
    await h.started;
    assert.ok(h.state.has('InferencePool/default/pool'));
    // Bad fields: a port out of range and an unknown field.
    const bad = poolObj('pool', { app: 'sim' }, 8000);
    (bad['spec'] as Record<string, unknown>)['targetPorts'] = [{ number: 70000 }];
    (bad['spec'] as Record<string, unknown>)['selectr'] = {};
    h.api.apply(bad);
    await until('the refusal', () => h.logs.find((l) => /Kubernetes object refused/.test(l.msg) && /targetPorts/.test(String(l.fields['problem']))));
    const pool = h.state.get('InferencePool/default/pool');
    assert.ok(pool?.kind === 'InferencePool' && pool.spec.targetPorts[0] === 8000, 'last good version');
    // Oversized: over 1 MiB of annotations. The watch refuses the line and re-lists; the list names it.
    const huge = poolObj('pool', { app: 'sim' }, 8001);
    (huge['metadata'] as Record<string, unknown>)['annotations'] = { 'example.com/blob': 'x'.repeat(1_200_000) };
    h.api.apply(huge);
    await until('the size refusal', () => h.logs.find((l) => /refused/.test(l.msg) && /over the 1048576-byte limit/.test(String(l.fields['reason']))));
    const still = h.state.get('InferencePool/default/pool');
    assert.ok(still?.kind === 'InferencePool' && still.spec.targetPorts[0] === 8000);
    // A good version afterwards applies.
    h.api.apply(poolObj('pool', { app: 'sim' }, 8002));
    await until('the good version', () => {
      const p = h.state.get('InferencePool/default/pool');
      return p?.kind === 'InferencePool' && p.spec.targetPorts[0] === 8002;
    });
  });

  test('one name in two API groups: the newer group is served; deleting it falls back to the older', async () => {
    const h = await harness((api) => {
      basics(api);
      api.apply({ apiVersion: 'inference.networking.x-k8s.io/v1alpha2', kind: 'InferenceModelRewrite', metadata: { name: 'rw' }, spec: { poolRef: { name: 'pool' }, rules: [{ targets: [{ modelRewrite: 'old-group', weight: 1 }] }] } });
      api.apply({ apiVersion: 'llm-d.ai/v1alpha2', kind: 'InferenceModelRewrite', metadata: { name: 'rw' }, spec: { poolRef: { name: 'pool' }, rules: [{ targets: [{ modelRewrite: 'new-group', weight: 1 }] }] } });
    });
    await h.started;
    assert.equal(h.state.get('InferenceModelRewrite/default/rw')?.apiVersion, 'llm-d.ai/v1alpha2');
    h.api.delete({ apiVersion: 'llm-d.ai/v1alpha2', kind: 'InferenceModelRewrite', namespace: 'default', name: 'rw' });
    await until('the fallback', () => h.state.get('InferenceModelRewrite/default/rw')?.apiVersion === 'inference.networking.x-k8s.io/v1alpha2');
  });

  test('InferenceObjective in both groups too (llm-d router v0.9 moved it): the newer served, then the older', async () => {
    const objective = (apiVersion: string, priority: number): Record<string, unknown> => ({ apiVersion, kind: 'InferenceObjective', metadata: { name: 'obj' }, spec: { priority, poolRef: { name: 'pool' } } });
    const h = await harness((api) => {
      basics(api);
      api.apply(objective('inference.networking.x-k8s.io/v1alpha2', 1));
      api.apply(objective('llm-d.ai/v1alpha2', 7));
    });
    await h.started;
    assert.equal(h.state.get('InferenceObjective/default/obj')?.apiVersion, 'llm-d.ai/v1alpha2');
    h.api.delete({ apiVersion: 'llm-d.ai/v1alpha2', kind: 'InferenceObjective', namespace: 'default', name: 'obj' });
    await until('the fallback', () => h.state.get('InferenceObjective/default/obj')?.apiVersion === 'inference.networking.x-k8s.io/v1alpha2');
  });

  test('only Gateways of our GatewayClass, and the routes attached to them, are served', async () => {
    const h = await harness((api) => {
      basics(api);
      api.apply(gatewayClassObj('envoy', 'gateway.envoyproxy.io/gatewayclass-controller'));
      api.apply(gatewayObj(18081, 'eg', 'envoy'));
      api.apply(routeObj('pool', 'eg-route', 'eg'));
    });
    await h.started;
    assert.ok(h.state.has('Gateway/default/gw'));
    assert.ok(!h.state.has('Gateway/default/eg'));
    assert.ok(h.state.has('HTTPRoute/default/r'));
    assert.ok(!h.state.has('HTTPRoute/default/eg-route'));
    assert.ok(!h.state.has('GatewayClass/default/envoy'));
    // Our class handed to another controller: our Gateway goes.
    h.api.apply(gatewayClassObj('infergate', 'example.com/other'));
    await until('the Gateway withdrawn', () => !h.state.has('Gateway/default/gw') && !h.state.has('HTTPRoute/default/r'));
  });

  test('bookmarks move the revision a dropped watch resumes from', async () => {
    const h = await harness((api) => basics(api), {}, { bookmarkIntervalMs: 0 });
    await h.started;
    await until('the pod watch', () => h.api.watchCount('Pod') === 1);
    // Changes to other kinds move the global revision; only a bookmark tells the pod watch.
    for (let i = 0; i < 5; i++) h.api.apply(modelObj(`m${i}`, `model-${i}`, 'pool', [{ name: 'x', weight: 1 }]));
    h.api.bookmark();
    const rv = String(h.api.resourceVersion);
    await new Promise((r) => setTimeout(r, 200));
    const before = h.api.requests.length;
    h.api.cutWatches();
    const resumed = await until('the resumed pod watch', () => h.api.requests.slice(before).find((r) => r.watch && r.path === '/api/v1/namespaces/default/pods'));
    assert.equal(resumed.query['resourceVersion'], rv);
  });

  test('objects of one kind past the cap are problems, not memory: additions past it are refused', async () => {
    const h = await harness((api) => basics(api, 3), { limits: { maxObjectsPerKind: 4 } });
    await h.started;
    assert.equal(podsIn(h.state).length, 3);
    for (let i = 3; i < 7; i++) h.api.apply(podObj(`p${i}`, { app: 'sim' }, `10.0.0.${i}`));
    await until('the cap warning', () => h.logs.find((l) => /more than 4 pods/.test(l.msg)));
    await until('four pods', () => podsIn(h.state).length === 4);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(podsIn(h.state).length, 4, 'never more than the cap');
  });

  test('an endpoint picker watches its pool by name and its pods by the pool\'s label selector', async () => {
    const h = await harness(
      (api) => {
        api.apply(poolObj('pool', { app: 'sim' }, 8000));
        api.apply(poolObj('other', { app: 'other' }, 8000));
        api.apply(modelObj('mine', 'mymodel', 'pool', [{ name: 'mymodel', weight: 1 }]));
        api.apply(modelObj('theirs', 'theirmodel', 'other', [{ name: 'theirmodel', weight: 1 }]));
        api.apply(podObj('a', { app: 'sim' }, '10.0.0.1'));
        api.apply(podObj('z', { app: 'other' }, '10.0.0.9'));
      },
      { scope: { kind: 'pool', namespace: 'default', name: 'pool' } },
    );
    await h.started;
    assert.deepEqual([...h.state.keys()].sort(), ['InferenceModel/default/mine', 'InferencePool/default/pool', 'Pod/default/a']);
    const podWatch = h.api.requests.find((r) => r.path === '/api/v1/namespaces/default/pods');
    assert.equal(podWatch?.query['labelSelector'], 'app=sim');
    assert.ok(h.api.requests.some((r) => r.path.endsWith('/inferencepools') && r.query['fieldSelector'] === 'metadata.name=pool'));
    // The selector moves: the pod watch follows it.
    h.api.apply(poolObj('pool', { app: 'other' }, 8000));
    await until('the pods of the new selector', () => podsIn(h.state).join() === 'z');
    await until('the pool\'s new selector', () => {
      const p = h.state.get('InferencePool/default/pool');
      return p?.kind === 'InferencePool' && p.spec.selector['app'] === 'other';
    });
    assert.ok(h.api.requests.some((r) => r.path === '/api/v1/namespaces/default/pods' && r.query['labelSelector'] === 'app=other'));
  });
});

