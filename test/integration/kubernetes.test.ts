import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeApiServer } from '../support/fake-apiserver.js';
import { startFleet } from '../support/fleet.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { gatewayClassObj, gatewayObj, kubeconfigFor, modelObj, podObj, poolObj, routeObj } from '../support/kube.js';
import { freePort } from '../support/ports.js';

/*
 * `infergate serve --kubernetes` against the fake API server, with simulated model servers as the
 * pods (each on its own loopback address): the cluster changes, and the traffic follows.
 */

const DEADLINE_MS = 30_000;
/** How long the outage test keeps the API server down. */
const OUTAGE_MS = 3_000;
const HOSTS = { 'sim-0': '127.0.0.41', 'sim-1': '127.0.0.42', 'sim-2': '127.0.0.43', 'sim-3': '127.0.0.44', 'slow-0': '127.0.0.45' } as const;
type PodName = keyof typeof HOSTS;

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, deadlineMs = DEADLINE_MS): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('serve --kubernetes: traffic follows the cluster', { timeout: 300_000 }, () => {
  let api: FakeApiServer;
  let fleet: Awaited<ReturnType<typeof startFleet>>;
  let gateway: GatewayProcess;
  let kube: Awaited<ReturnType<typeof kubeconfigFor>>;
  let base: string;

  const pod = (name: PodName, labels: Record<string, string>, ready = true): Record<string, unknown> => podObj(name, labels, HOSTS[name], ready, fleet.port);

  /** One chat request: its status, the pod that answered and the model it answered as. */
  async function chat(model = 'mymodel'): Promise<{ status: number; pod: string | null; model: string | undefined }> {
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], max_tokens: 2 }),
    });
    const body = (await r.json()) as { model?: string };
    return { status: r.status, pod: r.headers.get('x-sim-pod'), model: body.model };
  }

  /** Until `n` requests in a row are answered (200) by pods in `pods`. */
  async function allLandOn(pods: readonly string[], n = 20, model = 'mymodel'): Promise<void> {
    await until(`${n} requests in a row on ${pods.join(', ')}`, async () => {
      for (let i = 0; i < n; i++) {
        const r = await chat(model);
        assert.equal(r.status, 200);
        if (!pods.includes(r.pod ?? '')) return false;
      }
      return true;
    });
  }

  /** Endpoint names of the pool, as /debug/endpoints lists them. */
  async function endpoints(): Promise<string[]> {
    const r = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/debug/endpoints`)).json()) as { pools: Array<{ pool: string; endpoints: Array<{ name: string }> }> };
    return (r.pools.find((p) => p.pool === 'default/pool')?.endpoints ?? []).map((e) => e.name).sort();
  }

  /** Requests at `concurrency` until `stop()`: every status seen. */
  function load(concurrency = 4): { stop: () => Promise<number[]> } {
    const statuses: number[] = [];
    let running = true;
    const workers = Array.from({ length: concurrency }, async () => {
      while (running) statuses.push((await chat()).status);
    });
    return {
      stop: async () => {
        running = false;
        await Promise.all(workers);
        return statuses;
      },
    };
  }

  before(async () => {
    fleet = await startFleet(
      (Object.keys(HOSTS) as PodName[]).map((name) => ({ host: HOSTS[name], name, models: ['mymodel', 'canary-a', 'canary-b'], ...(name === 'slow-0' ? { timeScale: 1 } : {}) })),
    );
    // A cluster without the InferenceObjective CRD: a kind the gateway reads, not installed.
    api = await FakeApiServer.start();
    api.uninstall('inference.networking.x-k8s.io/v1alpha2', 'InferenceObjective');
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    api.apply(gatewayClassObj());
    api.apply(gatewayObj(port));
    api.apply(routeObj('pool'));
    api.apply(poolObj('pool', { app: 'sim' }, fleet.port));
    api.apply(pod('sim-0', { app: 'sim' }));
    kube = await kubeconfigFor(api);
    gateway = await startGatewayProcess(['--kubernetes', '--kubeconfig', kube.path, '--namespace', 'default']);
  });

  after(async () => {
    await gateway?.stop();
    await api?.close();
    await fleet?.close();
    await kube?.remove();
  });

  test('a missing CRD is one warning; the gateway serves what exists', async () => {
    await gateway.waitForLog((l) => /does not serve inferenceobjectives/.test(l.msg ?? ''));
    const r = await chat();
    assert.equal(r.status, 200);
    assert.equal(r.pod, 'sim-0');
    assert.equal(gateway.logs.filter((l) => /does not serve inferenceobjectives/.test(l.msg ?? '')).length, 1);
  });

  test('pods added, made ready and deleted: traffic follows', async () => {
    api.apply(pod('sim-1', { app: 'sim' }, false));
    // Not ready: no traffic, however long we look.
    for (let i = 0; i < 30; i++) assert.equal((await chat()).pod, 'sim-0');
    api.apply(pod('sim-1', { app: 'sim' }, true));
    await until('a request on sim-1', async () => (await chat()).pod === 'sim-1');
    api.delete('Pod/default/sim-0');
    await allLandOn(['sim-1']);
  });

  test('a terminating pod gets no new requests, and its stream in flight completes', async () => {
    api.apply(pod('slow-0', { app: 'sim' }));
    api.apply(pod('sim-1', { app: 'sim' }, false));
    await until('only slow-0 serving', async () => (await endpoints()).join() === 'slow-0');
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mymodel', stream: true, ignore_eos: true, max_tokens: 900, messages: [{ role: 'user', content: 'a long answer' }] }),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-sim-pod'), 'slow-0');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    api.apply(pod('sim-1', { app: 'sim' }, true));
    api.markTerminating('Pod/default/slow-0');
    await until('slow-0 withdrawn', async () => (await endpoints()).join() === 'sim-1');
    for (let i = 0; i < 20; i++) assert.equal((await chat()).pod, 'sim-1');
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    assert.match(text, /data: \[DONE\]/, 'the stream in flight completed');
    assert.ok((text.match(/^data: \{/gm) ?? []).length > 100, 'all of it');
    api.delete('Pod/default/slow-0');
  });

  test('a pool\'s selector changed: traffic moves to the pods it selects now', async () => {
    api.apply(pod('sim-2', { app: 'other', track: 'b' }));
    for (let i = 0; i < 20; i++) assert.equal((await chat()).pod, 'sim-1');
    api.apply(poolObj('pool', { track: 'b' }, fleet.port));
    await allLandOn(['sim-2']);
  });

  test('an InferenceModel\'s weights changed: the canary split follows', async () => {
    api.apply(modelObj('travel', 'travel', 'pool', [{ name: 'canary-a', weight: 100 }]));
    await until('travel served as canary-a', async () => (await chat('travel')).model === 'canary-a');
    api.apply(modelObj('travel', 'travel', 'pool', [{ name: 'canary-a', weight: 50 }, { name: 'canary-b', weight: 50 }]));
    await until('both targets', async () => {
      const seen = new Set<string | undefined>();
      for (let i = 0; i < 60; i++) seen.add((await chat('travel')).model);
      return seen.has('canary-a') && seen.has('canary-b');
    });
    api.apply(modelObj('travel', 'travel', 'pool', [{ name: 'canary-b', weight: 100 }]));
    await until('travel served as canary-b only', async () => {
      for (let i = 0; i < 20; i++) if ((await chat('travel')).model !== 'canary-b') return false;
      return true;
    });
  });

  test('the watch cut and resumed from its revision: a change made after reaches traffic', async () => {
    const watchesBefore = api.requests.filter((r) => r.watch).length;
    api.cutWatches();
    api.apply(pod('sim-3', { app: 'other', track: 'b' }));
    await until('a request on sim-3', async () => (await chat()).pod === 'sim-3');
    const resumed = api.requests.filter((r) => r.watch).slice(watchesBefore);
    assert.ok(resumed.length > 0 && resumed.every((r) => r.query['resourceVersion'] !== undefined && r.query['resourceVersion'] !== '0'), 'resumed from a revision');
  });

  test('compaction: 410 Gone, a re-list, and no endpoint dropped nor request failed meanwhile', async () => {
    const lists = (): number => api.requests.filter((r) => !r.watch && r.path === '/api/v1/namespaces/default/pods').length;
    const listsBefore = lists();
    const traffic = load();
    const seen: string[] = [];
    api.compactBefore();
    await until('the re-list', async () => {
      seen.push((await endpoints()).join());
      return lists() > listsBefore && api.watchCount('Pod') === 1;
    });
    for (let i = 0; i < 10; i++) seen.push((await endpoints()).join());
    const statuses = await traffic.stop();
    assert.ok(statuses.length > 0);
    assert.deepEqual([...new Set(statuses)], [200], 'no failed request');
    assert.deepEqual([...new Set(seen)], ['sim-2,sim-3'], 'the live endpoints stayed');
  });

  test('a hostile object is refused with resource, field and reason; the last good config keeps serving', async () => {
    const bad = poolObj('pool', { track: 'b' }, fleet.port);
    (bad['spec'] as Record<string, unknown>)['targetPorts'] = [{ number: 70000 }];
    api.apply(bad);
    const line = await gateway.waitForLog((l) => /Kubernetes object refused/.test(l.msg ?? '') && /targetPorts/.test(String(l['problem'])));
    assert.match(String(line['problem']), /^InferencePool\/pool: spec\.targetPorts/);
    const huge = modelObj('huge', 'huge', 'pool', [{ name: 'mymodel', weight: 1 }]);
    (huge['metadata'] as Record<string, unknown>)['annotations'] = { 'example.com/blob': 'x'.repeat(1_200_000) };
    api.apply(huge);
    await gateway.waitForLog((l) => /Kubernetes object refused/.test(l.msg ?? '') && /over the 1048576-byte limit/.test(String(l['reason'])));
    await allLandOn(['sim-2', 'sim-3']);
  });

  test('the API server down for seconds and back: serving throughout, stale reported, then fresh', async () => {
    const readyz = async (): Promise<{ code: number; body: { stale?: unknown[] } }> => {
      const r = await fetch(`http://127.0.0.1:${gateway.adminPort}/readyz`);
      return { code: r.status, body: (await r.json()) as { stale?: unknown[] } };
    };
    const staleGauge = async (): Promise<string | undefined> => {
      const text = await (await fetch(`http://127.0.0.1:${gateway.adminPort}/metrics`)).text();
      return text.match(/^infergate_config_source_stale\{source="kubernetes"\} (\d)/m)?.[1];
    };
    assert.equal(await staleGauge(), '0');
    const traffic = load(2);
    const downAt = Date.now();
    await api.stop();
    await until('stale', async () => {
      const r = await readyz();
      return r.code === 200 && r.body.stale !== undefined && (await staleGauge()) === '1';
    });
    // A change while the API server is down arrives once it is back.
    api.delete('Pod/default/sim-3');
    // Down for 3 s: the reflectors' retries (250 ms doubling, reflector.ts) fail three or four
    // times. A longer outage only lengthens the backoff before the retry that finds it back (at
    // 10 s down that retry came ~6 s after the restart), which the test would wait out for nothing.
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - downAt))));
    await api.restart();
    await until('fresh', async () => {
      const r = await readyz();
      return r.code === 200 && r.body.stale === undefined && (await staleGauge()) === '0';
    });
    const statuses = await traffic.stop();
    assert.deepEqual([...new Set(statuses)], [200], 'served throughout');
    await allLandOn(['sim-2']);
  });
});
