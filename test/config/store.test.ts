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

test('store: an incremental batch reads only the resources it names (a pod event costs O(1), not O(all resources))', () => {
  const store = new ConfigStore();
  const loaded = parseDocuments(POOL + Array.from({ length: 50 }, (_, i) => pod(`p${i}`, `10.0.1.${i + 1}`)).join(''), 'x.yaml');
  // Count every time the store serialises (fingerprints) a resource it was given at first.
  let reads = 0;
  for (const r of loaded.resources) Object.defineProperty(r, 'toJSON', { enumerable: false, value: () => (reads++, { ...r }) });
  store.prepare('k8s', { upserts: loaded.resources, deletes: [], replace: true, problems: [], ignored: 0 }).commit();
  reads = 0;

  const moved = store.prepare('k8s', batch(pod('p7', '10.0.2.7'), false));
  assert.equal(moved.compiled, undefined);
  assert.deepEqual(moved.podUpserts.map((p) => p.status.podIP), ['10.0.2.7']);
  moved.commit();
  assert.ok(reads <= 1, `one resource compared (the pod named), not all 51: ${reads} reads`);
  reads = 0;
  const gone = store.prepare('k8s', { upserts: [], deletes: [{ kind: 'Pod', namespace: 'default', name: 'p9' }], replace: false, problems: [], ignored: 0 });
  assert.deepEqual(gone.podDeletes, ['default/p9']);
  gone.commit();
  assert.equal(reads, 0);
  assert.equal(store.pods().length, 49);

  // A whole state is still diffed against everything held.
  const again = store.prepare('k8s', { upserts: store.pods(), deletes: [], replace: true, problems: [], ignored: 0 });
  assert.ok(again.compiled !== undefined, 'the pool is not in this whole state: removed, so recompiled');
  assert.equal(again.compiled.snapshot.pools.size, 0);
});

test('store: an incremental batch that deletes and re-adds a resource keeps the re-added one; order of resources is kept for the compiler', () => {
  const store = new ConfigStore();
  store.prepare('k8s', batch(POOL + pod('a', '10.0.0.1'))).commit();
  const readd = store.prepare('k8s', { ...batch(pod('a', '10.0.0.2'), false), deletes: [{ kind: 'Pod', namespace: 'default', name: 'a' }] });
  assert.deepEqual(readd.podUpserts.map((p) => p.status.podIP), ['10.0.0.2']);
  assert.deepEqual(readd.podDeletes, []);
  readd.commit();
  assert.deepEqual(store.pods().map((p) => p.status.podIP), ['10.0.0.2']);
  const pool2 = store.prepare('k8s', batch(POOL.replace('name: pool', 'name: pool2'), false));
  assert.ok(pool2.compiled !== undefined);
  assert.deepEqual([...pool2.compiled.snapshot.pools.keys()], ['default/pool', 'default/pool2']);
});

test('a refused configuration says how many errors it has, the ones not shown one by one included', () => {
  // An unclosed flow list reports one syntax error per line still inside it: more than are shown.
  const loaded = parseDocuments(`kind: InferencePool\nmetadata: {name: [a\n${Array.from({ length: 20 }, (_, i) => `k${i}: : v\n`).join('')}`, 'x.yaml');
  const shownAndMore = loaded.problems.filter((p) => p.severity === 'error');
  const more = shownAndMore.map((p) => /^(\d+) more YAML syntax error/.exec(p.message)).find((m) => m !== null);
  assert.ok(more, shownAndMore.map((p) => p.message).join('\n'));
  const err = new ConfigRejectedError(shownAndMore);
  assert.match(err.message, new RegExp(`^configuration rejected, ${shownAndMore.length - 1 + Number(more[1])} error\\(s\\):`));
});
