import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDocuments } from '../../src/api/index.js';
import type { ConfigBatch } from '../../src/config/source.js';
import { ConfigRejectedError, ConfigStore } from '../../src/config/store.js';

const POOL = `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool}
spec: {selector: {matchLabels: {app: m}}, targetPorts: [{number: 8000}]}
`;
const pod = (name: string, ip: string): string => `---
apiVersion: v1
kind: Pod
metadata: {name: ${name}, labels: {app: m}}
status: {podIP: ${ip}}
`;

function batch(yaml: string, replace = true): ConfigBatch {
  const loaded = parseDocuments(yaml, 'x.yaml');
  return { upserts: loaded.resources, deletes: [], replace, problems: loaded.problems, ignored: 0 };
}

test('store: the first batch compiles; a re-read of the same files compiles nothing', () => {
  const store = new ConfigStore();
  const first = store.prepare('files', batch(POOL + pod('a', '10.0.0.1')));
  assert.ok(first.compiled !== undefined);
  assert.deepEqual(first.podUpserts.map((p) => p.metadata.name), ['a']);
  first.commit();
  assert.equal(store.version, 1);
  const same = store.prepare('files', batch(POOL + pod('a', '10.0.0.1')));
  assert.equal(same.compiled, undefined, 'nothing changed: no new snapshot');
  assert.deepEqual(same.podUpserts, []);
  assert.deepEqual(same.podDeletes, []);
});

test('store: a change to pods alone goes to discovery as upserts and deletes, not to the compiler', () => {
  const store = new ConfigStore();
  store.prepare('files', batch(POOL + pod('a', '10.0.0.1') + pod('b', '10.0.0.2'))).commit();
  const change = store.prepare('files', batch(POOL + pod('a', '10.0.0.9') + pod('c', '10.0.0.3')));
  assert.equal(change.compiled, undefined);
  assert.deepEqual(change.podUpserts.map((p) => `${p.metadata.name}=${p.status.podIP}`).sort(), ['a=10.0.0.9', 'c=10.0.0.3']);
  assert.deepEqual(change.podDeletes, ['default/b']);
  change.commit();
  assert.equal(store.version, 1, 'no new snapshot version for a pod change');
  assert.deepEqual(store.pods().map((p) => p.metadata.name).sort(), ['a', 'c']);
});

test('store: errors reject the batch and leave the store as it was; incremental batches upsert and delete', () => {
  const store = new ConfigStore();
  store.prepare('k8s', batch(POOL)).commit();
  const before = store.snapshot;
  const bad = { ...batch(POOL), problems: [{ severity: 'error' as const, subject: 'InferencePool/pool', path: 'spec', message: 'broken' }] };
  assert.throws(() => store.prepare('k8s', bad), (e: unknown) => e instanceof ConfigRejectedError && /InferencePool\/pool: spec: broken/.test(e.message));
  assert.equal(store.snapshot, before);

  const added = store.prepare('k8s', batch(pod('x', '10.1.0.1'), false));
  assert.equal(added.compiled, undefined);
  added.commit();
  assert.deepEqual(store.pods().map((p) => p.metadata.name), ['x']);
  assert.ok(store.snapshot?.pools.has('default/pool'), 'an incremental batch keeps what it does not name');
  const removed = store.prepare('k8s', { upserts: [], deletes: [{ kind: 'InferencePool', namespace: 'default', name: 'pool' }], replace: false, problems: [], ignored: 0 });
  assert.ok(removed.compiled !== undefined);
  assert.equal(removed.compiled.snapshot.pools.size, 0);
});

test('store: two sources are merged; each replaces only its own resources', () => {
  const store = new ConfigStore();
  store.prepare('a', batch(POOL)).commit();
  store.prepare('b', batch(pod('p', '10.0.0.5'))).commit();
  const change = store.prepare('a', batch(POOL.replace('app: m', 'app: n')));
  assert.ok(change.compiled !== undefined);
  assert.deepEqual(change.podDeletes, [], "source a's replace does not delete source b's pods");
  change.commit();
  assert.deepEqual(store.pods().map((p) => p.metadata.name), ['p']);
});
