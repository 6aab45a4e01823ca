import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeApiServer, parseLabelSelector, type KubeObject } from '../../support/fake-apiserver.js';

/*
 * The fake API server the Kubernetes source's tests stand on: it must speak the protocol as the real
 * one does, or those tests prove nothing.
 */

const DEADLINE_MS = 20_000;

function pod(name: string, labels: Record<string, string> = { app: 'a' }, ns = 'default'): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, labels }, spec: { containers: [] } };
}

interface WatchEvent {
  type: string;
  object: KubeObject & { code?: number; reason?: string };
}

/** Opens a watch and collects its events until `stop()` or the stream ends. */
async function watch(url: string): Promise<{ events: WatchEvent[]; ended: Promise<void>; stop: () => void; waitFor: (n: number) => Promise<WatchEvent[]> }> {
  const ac = new AbortController();
  const res = await fetch(url, { signal: ac.signal });
  assert.equal(res.status, 200);
  const events: WatchEvent[] = [];
  const ended = (async () => {
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += Buffer.from(chunk).toString('utf8');
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          events.push(JSON.parse(buf.slice(0, i)) as WatchEvent);
          buf = buf.slice(i + 1);
        }
      }
    } catch {
      // aborted or cut
    }
  })();
  const waitFor = async (n: number): Promise<WatchEvent[]> => {
    const deadline = Date.now() + DEADLINE_MS;
    while (events.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${events.length} events: ${JSON.stringify(events)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return events;
  };
  return { events, ended, stop: () => ac.abort(), waitFor };
}

describe('fake API server', () => {
  let api: FakeApiServer;
  before(async () => {
    api = await FakeApiServer.start({ bookmarkIntervalMs: 0 });
  });
  after(() => api.close());

  test('lists per namespace and cluster-wide with the revision the list was read at, and pages', async () => {
    api.apply(pod('l1', { app: 'list' }));
    api.apply(pod('l2', { app: 'list' }, 'other'));
    const all = (await (await fetch(`${api.url}/api/v1/pods?labelSelector=app%3Dlist`)).json()) as { kind: string; metadata: { resourceVersion: string }; items: KubeObject[] };
    assert.equal(all.kind, 'PodList');
    assert.equal(all.metadata.resourceVersion, String(api.resourceVersion));
    assert.deepEqual(all.items.map((i) => i.metadata.name).sort(), ['l1', 'l2']);
    const ns = (await (await fetch(`${api.url}/api/v1/namespaces/other/pods?labelSelector=app%3Dlist`)).json()) as { items: KubeObject[] };
    assert.deepEqual(ns.items.map((i) => i.metadata.name), ['l2']);
    const page = (await (await fetch(`${api.url}/api/v1/pods?labelSelector=app%3Dlist&limit=1`)).json()) as { metadata: { continue?: string }; items: KubeObject[] };
    assert.equal(page.items.length, 1);
    assert.ok(page.metadata.continue);
    const rest = (await (await fetch(`${api.url}/api/v1/pods?labelSelector=app%3Dlist&limit=1&continue=${page.metadata.continue}`)).json()) as { items: KubeObject[] };
    assert.equal(rest.items.length, 1);
    assert.notEqual(rest.items[0]!.metadata.name, page.items[0]!.metadata.name);
  });

  test('watches from a revision: later events in order, selector changes as ADDED/DELETED, bookmarks', async () => {
    const start = api.resourceVersion;
    const w = await watch(`${api.url}/api/v1/namespaces/default/pods?watch=1&resourceVersion=${start}&allowWatchBookmarks=true&labelSelector=app%3Dw`);
    api.apply(pod('w1', { app: 'w' }));
    api.apply({ ...pod('w1', { app: 'w' }), status: { podIP: '10.0.0.1' } });
    api.apply(pod('w1', { app: 'other' })); // leaves the selector: DELETED to this watch
    api.apply(pod('w1', { app: 'w' })); // back: ADDED
    api.delete('Pod/default/w1');
    api.bookmark();
    const events = await w.waitFor(6);
    assert.deepEqual(events.map((e) => e.type), ['ADDED', 'MODIFIED', 'DELETED', 'ADDED', 'DELETED', 'BOOKMARK']);
    const rvs = events.map((e) => Number(e.object.metadata.resourceVersion));
    assert.deepEqual([...rvs].sort((a, b) => a - b), rvs, 'revisions only grow');
    assert.equal(rvs.at(-1), api.resourceVersion);
    w.stop();
    await w.ended;
  });

  test('a watch from before the compaction gets a 410 Expired ERROR; compaction ends open watches the same way', async () => {
    api.apply(pod('c1'));
    const old = api.resourceVersion;
    const open = await watch(`${api.url}/api/v1/pods?watch=1&resourceVersion=${old}`);
    api.apply(pod('c2'));
    api.compactBefore();
    const evs = await open.waitFor(2);
    assert.equal(evs[0]!.type, 'ADDED');
    assert.equal(evs[1]!.type, 'ERROR');
    assert.equal(evs[1]!.object.code, 410);
    await open.ended;
    const late = await watch(`${api.url}/api/v1/pods?watch=1&resourceVersion=${old}`);
    await late.ended;
    assert.equal(late.events.length, 1);
    assert.equal(late.events[0]!.object.code, 410);
    assert.equal(late.events[0]!.object.reason, 'Expired');
  });

  test('optimistic concurrency: a PUT with a stale resourceVersion is 409 Conflict; /status changes only status', async () => {
    const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l', namespace: 'default' }, spec: { holderIdentity: 'a' } };
    const base = `${api.url}/apis/coordination.k8s.io/v1/namespaces/default/leases`;
    const created = await fetch(base, { method: 'POST', body: JSON.stringify(lease), headers: { 'content-type': 'application/json' } });
    assert.equal(created.status, 201);
    const again = await fetch(base, { method: 'POST', body: JSON.stringify(lease), headers: { 'content-type': 'application/json' } });
    assert.equal(again.status, 409);
    assert.equal(((await again.json()) as { reason: string }).reason, 'AlreadyExists');
    const stored = (await created.json()) as KubeObject;
    const ok = await fetch(`${base}/l`, { method: 'PUT', body: JSON.stringify({ ...stored, spec: { holderIdentity: 'b' } }) });
    assert.equal(ok.status, 200);
    const stale = await fetch(`${base}/l`, { method: 'PUT', body: JSON.stringify({ ...stored, spec: { holderIdentity: 'c' } }) });
    assert.equal(stale.status, 409);
    assert.equal(((await stale.json()) as { reason: string }).reason, 'Conflict');
    assert.equal((api.get('Lease/default/l')!['spec'] as { holderIdentity: string }).holderIdentity, 'b');

    api.apply({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'gc' }, spec: { controllerName: 'x/y' } });
    const gc = `${api.url}/apis/gateway.networking.k8s.io/v1/gatewayclasses/gc`;
    const patched = await fetch(`${gc}/status`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/merge-patch+json' },
      body: JSON.stringify({ spec: { controllerName: 'ignored' }, status: { conditions: [{ type: 'Accepted', status: 'True' }] } }),
    });
    assert.equal(patched.status, 200);
    const now = api.get('GatewayClass/gc')!;
    assert.deepEqual(now['spec'], { controllerName: 'x/y' });
    assert.deepEqual(now['status'], { conditions: [{ type: 'Accepted', status: 'True' }] });
    assert.equal(now.metadata.generation, 1, 'a status write does not move the generation');
  });

  test('an uninstalled kind is 404; stop and restart on the same port keep the store', async () => {
    api.uninstall('inference.networking.x-k8s.io/v1alpha2', 'InferenceModel');
    assert.equal((await fetch(`${api.url}/apis/inference.networking.x-k8s.io/v1alpha2/inferencemodels`)).status, 404);
    const port = api.port;
    const w = await watch(`${api.url}/api/v1/pods?watch=1`);
    await api.stop();
    await w.ended;
    await assert.rejects(fetch(`${api.url}/api/v1/pods`));
    api.apply(pod('while-down'));
    await api.restart();
    assert.equal(api.port, port);
    const list = (await (await fetch(`${api.url}/api/v1/namespaces/default/pods/while-down`)).json()) as KubeObject;
    assert.equal(list.metadata.name, 'while-down');
    assert.ok(api.requests.some((r) => r.watch && r.path === '/api/v1/pods'));
  });

  test('label selectors follow the Kubernetes syntax', () => {
    const sel = parseLabelSelector('app=a,tier in (x, y),!canary,env!=prod');
    assert.equal(sel({ app: 'a', tier: 'x' }), true);
    assert.equal(sel({ app: 'a', tier: 'z' }), false);
    assert.equal(sel({ app: 'a', tier: 'y', canary: '1' }), false);
    assert.equal(sel({ app: 'a', tier: 'y', env: 'prod' }), false);
  });
});
