import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseDocuments } from '../../../src/api/index.js';
import { desiredStatuses, GATEWAY_CONTROLLER_NAME, type DesiredStatus } from '../../../src/config/kubernetes/status-conditions.js';
import { StatusWriter } from '../../../src/config/kubernetes/status-writer.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { applyYaml, memoryLog, ReplicaApi } from '../../support/status-kube.js';

/*
 * The status writer against the in-process API server: one write when something changed, none
 * when nothing did, and a conflict (another controller wrote between our read and our write)
 * re-read and merged so the other controller's entry survives.
 */

const CLUSTER = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: infergate}
spec: {controllerName: infergate.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: infergate
  listeners: [{name: http, protocol: HTTP, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool}]}]
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool, namespace: default}
spec:
  selector: {matchLabels: {app: m}}
  targetPorts: [{number: 8000}]
`;

const THEIRS = {
  parentRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'envoy', namespace: 'default' },
  controllerName: 'gateway.envoyproxy.io/gatewayclass-controller',
  conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'theirs', lastTransitionTime: '2026-01-01T00:00:00Z' }],
};

let server: FakeApiServer;
let desired: DesiredStatus[];

before(async () => {
  server = await FakeApiServer.start();
  applyYaml(server, CLUSTER);
  desired = desiredStatuses({ resources: parseDocuments(CLUSTER, 'cluster.yaml').resources }, { mode: 'gateway', gatewayClass: 'infergate' });
});

after(async () => {
  await server.close();
});

function poolStatus(): DesiredStatus {
  const d = desired.find((s) => s.target.kind === 'InferencePool');
  assert.ok(d);
  return d;
}

interface Parent {
  controllerName?: string;
  parentRef: { name: string };
  conditions: Array<{ type: string; status: string; observedGeneration?: number }>;
}

function parentsOf(ref: string): Parent[] {
  const obj = server.get(ref);
  return ((obj?.['status'] as { parents?: Parent[] } | undefined)?.parents ?? []) as Parent[];
}

test('writes once through the status subresource, then not again while nothing changed', async () => {
  const api = new ReplicaApi(server);
  const writer = new StatusWriter({ api, log: memoryLog(), mayWrite: () => true });
  try {
    assert.equal(await writer.write(poolStatus()), 'written');
    assert.deepEqual(api.statusPuts.map((p) => p.status), [200]);
    assert.match(api.statusPuts[0]?.path ?? '', /^\/apis\/inference\.networking\.k8s\.io\/v1\/namespaces\/default\/inferencepools\/pool\/status$/);
    const parents = parentsOf('InferencePool/default/pool');
    assert.equal(parents.length, 1);
    assert.equal(parents[0]?.controllerName, GATEWAY_CONTROLLER_NAME);
    assert.deepEqual(parents[0]?.conditions.map((c) => `${c.type}=${c.status}@${c.observedGeneration}`), ['Accepted=True@1', 'ResolvedRefs=True@1']);

    assert.equal(await writer.write(poolStatus()), 'unchanged');
    assert.equal(api.statusPuts.length, 1, 'no second write');

    const route = desired.find((s) => s.target.kind === 'HTTPRoute');
    assert.ok(route);
    assert.equal(await writer.write(route), 'written');
    assert.deepEqual(parentsOf('HTTPRoute/default/route').map((p) => `${p.parentRef.name} ${p.conditions.map((c) => `${c.type}=${c.status}`).join(',')}`), ['gw Accepted=True,ResolvedRefs=True']);
  } finally {
    await api.close();
  }
});

test('a conflict (another controller wrote between our read and write) is re-read and merged: their entry is kept', async () => {
  server.setStatus('InferencePool/default/pool', {});
  const api = new ReplicaApi(server);
  const writer = new StatusWriter({ api, log: memoryLog(), mayWrite: () => true, backoffMs: 10 });
  try {
    // Between our GET and our PUT, Envoy Gateway's controller writes its own entry.
    api.beforeStatusPut = () => server.setStatus('InferencePool/default/pool', { parents: [THEIRS] });
    assert.equal(await writer.write(poolStatus()), 'written');
    assert.deepEqual(api.statusPuts.map((p) => p.status), [409, 200]);
    const parents = parentsOf('InferencePool/default/pool');
    assert.deepEqual(parents[0], THEIRS, 'the other controller’s entry is intact and first');
    assert.equal(parents[1]?.controllerName, GATEWAY_CONTROLLER_NAME);
    assert.equal(parents.length, 2);
  } finally {
    await api.close();
  }
});

test('our entry for a deleted route is removed on the next write; the other controller’s stays', async () => {
  const api = new ReplicaApi(server);
  const writer = new StatusWriter({ api, log: memoryLog(), mayWrite: () => true });
  try {
    const withoutRoute = CLUSTER.split('---').filter((d) => !d.includes('kind: HTTPRoute')).join('---');
    const now = desiredStatuses({ resources: parseDocuments(withoutRoute, 'cluster.yaml').resources }, { mode: 'gateway', gatewayClass: 'infergate' });
    const pool = now.find((s) => s.target.kind === 'InferencePool');
    assert.ok(pool);
    assert.equal(await writer.write(pool), 'written');
    assert.deepEqual(parentsOf('InferencePool/default/pool'), [THEIRS]);
  } finally {
    await api.close();
  }
});

test('conflicts without end give up after the bounded attempts; without the Lease nothing is sent', async () => {
  server.setStatus('InferencePool/default/pool', {});
  const log = memoryLog();
  const api = new ReplicaApi(server);
  try {
    const writer = new StatusWriter({ api, log, mayWrite: () => true, maxAttempts: 3, backoffMs: 5 });
    server.failNext({ method: 'PUT', pathIncludes: '/inferencepools/pool/status' }, 409, 3);
    assert.equal(await writer.write(poolStatus()), 'failed');
    assert.equal(api.statusPuts.length, 3);
    assert.ok(log.lines.some((l) => l.message.startsWith('status not written')));

    // Forbidden (no RBAC rule for the status subresource) is not retried: trying again cannot help.
    server.failNext({ method: 'PUT', pathIncludes: '/inferencepools/pool/status' }, 403, 1);
    assert.equal(await writer.write(poolStatus()), 'failed');
    assert.deepEqual(api.statusPuts.slice(3).map((p) => p.status), [403]);
    api.statusPuts.splice(3);

    const follower = new StatusWriter({ api, log, mayWrite: () => false });
    assert.equal(await follower.write(poolStatus()), 'not-leader');
    assert.equal(api.statusPuts.length, 3);
  } finally {
    await api.close();
  }
});

test('a v1alpha2 pool is written under status.parent without controllerName', async () => {
  const v1a2 = `apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: old, namespace: default}
spec: {selector: {app: m}, targetPortNumber: 8000}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: old-route, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: old}]}]
`;
  applyYaml(server, v1a2);
  const all = desiredStatuses({ resources: parseDocuments(CLUSTER + '---\n' + v1a2, 'cluster.yaml').resources }, { mode: 'gateway', gatewayClass: 'infergate' });
  const old = all.find((s) => s.target.kind === 'InferencePool' && s.target.name === 'old');
  assert.ok(old);
  const api = new ReplicaApi(server);
  try {
    const writer = new StatusWriter({ api, log: memoryLog(), mayWrite: () => true });
    assert.equal(await writer.write(old), 'written');
    const status = server.get('InferencePool/default/old')?.['status'] as { parent?: Parent[]; parents?: unknown };
    assert.equal(status.parents, undefined);
    assert.equal(status.parent?.length, 1);
    assert.equal(status.parent?.[0]?.controllerName, undefined);
    assert.equal(status.parent?.[0]?.parentRef.name, 'gw');
    assert.equal(await writer.write(old), 'unchanged');
  } finally {
    await api.close();
  }
});

test('a view older than the object (a lower generation) writes nothing: the next view will', async () => {
  const stalePool = `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: moving, namespace: default, generation: 1}
spec:
  selector: {matchLabels: {app: m}}
  targetPorts: [{number: 8000}]
`;
  applyYaml(server, stalePool);
  applyYaml(server, stalePool.replace('number: 8000', 'number: 8001'));
  assert.equal(server.get('InferencePool/default/moving')?.metadata.generation, 2);
  const all = desiredStatuses({ resources: parseDocuments(CLUSTER + '---\n' + stalePool, 'cluster.yaml').resources }, { mode: 'gateway', gatewayClass: 'infergate' });
  const moving = all.find((s) => s.target.name === 'moving');
  assert.equal(moving?.target.generation, 1);
  const api = new ReplicaApi(server);
  try {
    const writer = new StatusWriter({ api, log: memoryLog(), mayWrite: () => true });
    assert.equal(await writer.write(moving as DesiredStatus), 'stale');
    assert.equal(api.statusPuts.length, 0);
  } finally {
    await api.close();
  }
});

test('an object whose CRD has no status subresource: said once in the log, nothing written', async () => {
  const log = memoryLog();
  const inner = new ReplicaApi(server);
  // The API server of a CRD without `subresources: status` answers 404 on /status only.
  const api = { get: (path: string) => (path.endsWith('/status') ? Promise.resolve({ status: 404, body: { kind: 'Status', code: 404 } }) : inner.get(path)), put: inner.put.bind(inner), post: inner.post.bind(inner) };
  try {
    const writer = new StatusWriter({ api, log, mayWrite: () => true });
    assert.equal(await writer.write(poolStatus()), 'gone');
    assert.equal(await writer.write(poolStatus()), 'gone');
    const said = log.lines.filter((l) => l.message.includes('no status subresource'));
    assert.equal(said.length, 1, JSON.stringify(log.lines));
    assert.equal(said[0]?.fields['object'], 'InferencePool/default/pool');
  } finally {
    await inner.close();
  }
});
