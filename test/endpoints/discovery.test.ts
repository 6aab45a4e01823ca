import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDocuments } from '../../src/api/index.js';
import type { Pod } from '../../src/api/types.js';
import { EndpointDiscovery, type DiscoveryTarget } from '../../src/endpoints/discovery.js';
import { EndpointRegistry } from '../../src/endpoints/registry.js';

function pod(name: string, labels: Record<string, string>, status: string, annotations: Record<string, string> = {}): Pod {
  const loaded = parseDocuments(`apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, labels: ${JSON.stringify(labels)}, annotations: ${JSON.stringify(annotations)}}\nstatus: ${status}\n`, 'p.yaml');
  return loaded.resources[0] as Pod;
}

const POOL: DiscoveryTarget = { kind: 'pool', key: 'pool:default/a', namespace: 'default', selector: { app: 'm' }, targetPorts: [8000], runtime: 'vllm', runtimeConfigured: false };

function setup(targets: DiscoveryTarget[] = [POOL]): { discovery: EndpointDiscovery; registry: EndpointRegistry; changes: string[][] } {
  const registry = new EndpointRegistry();
  const changes: string[][] = [];
  const discovery = new EndpointDiscovery(registry, { onChange: (t) => changes.push([...t]) });
  discovery.setTargets(targets);
  return { discovery, registry, changes };
}

test('discovery: a pod becoming ready adds one endpoint; the others stay the same objects', () => {
  const { discovery, changes } = setup();
  discovery.applyPods([pod('a', { app: 'm' }, '{podIP: 10.0.0.1}'), pod('b', { app: 'm' }, '{phase: Pending}')], []);
  const members = discovery.members(POOL.key);
  assert.deepEqual(members.endpoints.map((e) => e.key), ['10.0.0.1:8000']);
  const a = members.endpoints[0];
  a!.inFlight = 3;
  changes.length = 0;
  discovery.applyPods([pod('b', { app: 'm' }, '{phase: Running, podIP: 10.0.0.2}')], []);
  assert.deepEqual(members.endpoints.map((e) => e.key), ['10.0.0.1:8000', '10.0.0.2:8000']);
  assert.equal(members.endpoints[0], a, 'the unchanged pod keeps its endpoint and counters');
  assert.equal(members.endpoints[0]?.inFlight, 3);
  assert.deepEqual(changes, [[POOL.key]]);
});

test('discovery: unready, deleted and relabelled pods leave; unrelated pods change nothing', () => {
  const { discovery, registry, changes } = setup();
  discovery.applyPods([pod('a', { app: 'm' }, '{podIP: 10.0.0.1}'), pod('b', { app: 'm' }, '{podIP: 10.0.0.2}')], []);
  changes.length = 0;
  discovery.applyPods([pod('z', { app: 'other' }, '{podIP: 10.0.0.9}')], []);
  assert.deepEqual(changes, [], 'a pod no target selects changes no target');
  discovery.applyPods([pod('a', { app: 'm' }, '{podIP: 10.0.0.1, conditions: [{type: Ready, status: "False"}]}')], ['default/b']);
  assert.deepEqual(discovery.members(POOL.key).endpoints.map((e) => e.key), []);
  assert.equal(registry.size, 0, 'endpoints no target uses are dropped from the registry');
});

test('discovery: several target ports are ranks, active-ports limits them, roles come from the role label', () => {
  const pd: DiscoveryTarget = { ...POOL, key: 'pool:default/pd', targetPorts: [8000, 8001], roleLabel: 'role' };
  const { discovery } = setup([pd]);
  discovery.applyPods([pod('p', { app: 'm', role: 'prefill' }, '{podIP: 10.0.0.1}'), pod('d', { app: 'm', role: 'decode' }, '{podIP: 10.0.0.2}', { 'inference.networking.k8s.io/active-ports': '8001' })], []);
  const eps = discovery.members(pd.key).endpoints;
  assert.deepEqual(
    eps.map((e) => `${e.name} ${e.key} ${e.role}`),
    ['p-rank-0 10.0.0.1:8000 prefill', 'p-rank-1 10.0.0.1:8001 prefill', 'd-rank-1 10.0.0.2:8001 decode'],
  );
});

test('discovery: new targets match every known pod; a Service port resolves a named container port', () => {
  const { discovery } = setup([]);
  const loaded = parseDocuments('apiVersion: v1\nkind: Pod\nmetadata: {name: s, labels: {app: web}}\nspec: {containers: [{name: c, ports: [{name: http, containerPort: 9000}]}]}\nstatus: {podIP: 10.0.0.7}\n', 'p.yaml');
  discovery.applyPods([pod('a', { app: 'm' }, '{podIP: 10.0.0.1}'), loaded.resources[0] as Pod], []);
  const svc: DiscoveryTarget = { kind: 'service', key: 'service:default/web|http', namespace: 'default', selector: { app: 'web' }, targetPort: 'http' };
  discovery.setTargets([POOL, svc]);
  assert.deepEqual(discovery.members(POOL.key).endpoints.map((e) => e.key), ['10.0.0.1:8000']);
  assert.deepEqual(discovery.members(svc.key).endpoints.map((e) => e.key), ['10.0.0.7:9000']);
});

test('discovery: a pod event reads only the targets it may belong to (indexed by namespace and selector), not every target', () => {
  let reads = 0;
  const counted = (t: DiscoveryTarget): DiscoveryTarget => new Proxy(t, { get: (target, prop, receiver) => (reads++, Reflect.get(target, prop, receiver)) });
  const targets = Array.from({ length: 100 }, (_, i) => counted({ ...POOL, key: `pool:default/p${i}`, selector: { app: `m${i}`, tier: 'gpu' } }));
  const { discovery, registry } = setup(targets);
  reads = 0;
  discovery.applyPods([pod('a', { app: 'm42', tier: 'gpu' }, '{podIP: 10.0.0.1}')], []);
  assert.deepEqual(discovery.members('pool:default/p42').endpoints.map((e) => e.key), ['10.0.0.1:8000']);
  const one = reads;
  assert.ok(one > 0 && one < 50, `only pool p42 was read (${one} property reads), not the 100 targets`);
  reads = 0;
  discovery.applyPods([], ['default/a']);
  assert.deepEqual(discovery.members('pool:default/p42').endpoints, []);
  assert.ok(reads < 50, `a delete reads only the targets the pod was in (${reads} reads)`);
  assert.equal(registry.size, 0);
  // A pod lacking one of a selector's labels matches nothing.
  discovery.applyPods([pod('b', { app: 'm1' }, '{podIP: 10.0.0.2}')], []);
  assert.equal(registry.size, 0);
});

test('discovery: a relabelled pod leaves the pool it no longer matches and joins the one it does; the delta names endpoints that came and went', () => {
  const other: DiscoveryTarget = { ...POOL, key: 'pool:default/b', selector: { app: 'n' } };
  const registry = new EndpointRegistry();
  const deltas: Array<{ targets: string[]; added: string[]; removed: string[] }> = [];
  const discovery = new EndpointDiscovery(registry, { onChange: (t, d) => d !== undefined && deltas.push({ targets: [...t].sort(), added: [...d.added].map((e) => e.key), removed: [...d.removed].map((e) => e.key) }) });
  discovery.setTargets([POOL, other]);
  discovery.applyPods([pod('a', { app: 'm' }, '{podIP: 10.0.0.1}')], []);
  const e = discovery.members(POOL.key).endpoints[0];
  assert.ok(e !== undefined);
  e.inFlight = 2;
  discovery.applyPods([pod('a', { app: 'n' }, '{podIP: 10.0.0.1}')], []);
  assert.deepEqual(discovery.members(POOL.key).endpoints, []);
  assert.equal(discovery.members(other.key).endpoints[0], e, 'the same address keeps its endpoint object (and counters) across pools');
  assert.equal(registry.size, 1);
  // One pod's IP handed to another in the same batch: the endpoint stays, nothing came or went.
  discovery.applyPods([pod('c', { app: 'n' }, '{podIP: 10.0.0.1}')], ['default/a']);
  assert.equal(discovery.members(other.key).endpoints[0], e);
  discovery.applyPods([pod('c', { app: 'n' }, '{podIP: 10.0.0.3}')], []);
  assert.equal(registry.size, 1);
  assert.deepEqual(deltas, [
    { targets: [POOL.key], added: ['10.0.0.1:8000'], removed: [] },
    { targets: [other.key, POOL.key].sort(), added: [], removed: [] },
    { targets: [other.key], added: [], removed: [] },
    { targets: [other.key], added: ['10.0.0.3:8000'], removed: ['10.0.0.1:8000'] },
  ]);
});

test('discovery: an endpoint two targets share leaves the registry only when the last one lets it go', () => {
  const svc: DiscoveryTarget = { kind: 'service', key: 'service:default/s|8000', namespace: 'default', selector: { app: 'm' }, targetPort: 8000 };
  const { discovery, registry } = setup([POOL, svc]);
  discovery.applyPods([pod('a', { app: 'm' }, '{podIP: 10.0.0.1}')], []);
  assert.equal(discovery.members(POOL.key).endpoints[0], discovery.members(svc.key).endpoints[0]);
  assert.equal(registry.size, 1);
  discovery.setTargets([svc]);
  assert.equal(registry.size, 1, 'the Service still uses it');
  discovery.applyPods([], ['default/a']);
  assert.equal(registry.size, 0);
});
