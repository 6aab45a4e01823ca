import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startStatusReporting, type StatusReporting } from '../../../src/config/kubernetes/status-reporting.js';
import type { LeaseTimings } from '../../../src/config/kubernetes/lease.js';
import { startStandaloneGateway, type RunningGateway } from '../../../src/proxy/standalone.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { memoryLogger, MemorySource } from '../../support/memory-source.js';
import { freePort } from '../../support/ports.js';
import { chatBody, gatewayForPools, poolYaml, post, startPods, waitFor, type SimPods } from '../../support/smart.js';
import { applyYaml, memoryLog, ReplicaApi } from '../../support/status-kube.js';

/*
 * Two active replicas of the standalone gateway, each with its own status reporter, against one
 * API server: both serve traffic the whole time; exactly one writes status; when it stops the
 * other takes over (release), and when a holder dies without releasing, the other takes over after
 * the Lease expires. Each replica's configuration stands in for what its Kubernetes source would
 * deliver (the same cluster state, its own listener port).
 */

/** Short enough for a quick test, long enough that a busy machine's pauses do not move the Lease on their own. */
const TIMINGS: LeaseTimings = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 200 };
const CLASS = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: infergate}
spec: {controllerName: infergate.dev/gateway-controller}
---
`;

interface ReplicaSetup {
  readonly name: string;
  readonly base: string;
  readonly running: RunningGateway;
}

let server: FakeApiServer;
let pods: SimPods;
const replicas: ReplicaSetup[] = [];

function config(port: number): string {
  return CLASS + gatewayForPools(port, ['pool']) + poolYaml('pool', pods.port) + pods.podsYaml();
}

before(async () => {
  server = await FakeApiServer.start();
  pods = await startPods([{ name: 'pod-1', host: '127.0.0.2', labels: { pool: 'pool' } }]);
  for (const name of ['replica-a', 'replica-b']) {
    const port = await freePort();
    const running = await startStandaloneGateway({
      sources: [new MemorySource(config(port))],
      address: '127.0.0.1',
      adminPort: 0,
      logger: memoryLogger().logger,
      scrapeTimeoutMs: 10_000,
      stalenessMs: 10_000,
    });
    replicas.push({ name, base: `http://127.0.0.1:${port}`, running });
  }
  // The cluster holds the same objects (the Pods are not needed for status).
  const first = replicas[0] as ReplicaSetup;
  applyYaml(server, CLASS + gatewayForPools(Number(new URL(first.base).port), ['pool']) + poolYaml('pool', pods.port));
  for (const r of replicas) await waitFor(`${r.name} serves`, async () => (await post(r.base, chatBody('mymodel', 'warm up'))).status === 200, 30_000);
});

after(async () => {
  for (const r of replicas) await r.running.close();
  await pods.close();
  await server.close();
});

function start(replica: ReplicaSetup, api: ReplicaApi): StatusReporting {
  const gateway = replica.running.gateway;
  return startStatusReporting(
    { api, identity: replica.name, leaseName: 'infergate-status', namespace: 'default', mode: 'gateway', gatewayClass: 'infergate', log: memoryLog(), lease: TIMINGS, debounceMs: 20 },
    () => gateway.configResources(),
    (cb) => gateway.afterSwap(() => cb()),
  );
}

interface Parent {
  controllerName?: string;
  parentRef: { name: string };
  conditions: Array<{ type: string; status: string }>;
}

function ourPoolEntry(): Parent | undefined {
  const parents = (server.get('InferencePool/default/pool')?.['status'] as { parents?: Parent[] } | undefined)?.parents ?? [];
  return parents.find((p) => p.controllerName === 'infergate.dev/gateway-controller');
}

function accepted(): boolean {
  const entry = ourPoolEntry();
  return entry !== undefined && entry.parentRef.name === 'gw' && entry.conditions.some((c) => c.type === 'Accepted' && c.status === 'True');
}

/** Requests to both replicas in a loop until stopped; every answer's status, per replica. */
function traffic(): { stop(): Promise<Map<string, number[]>> } {
  const statuses = new Map<string, number[]>(replicas.map((r) => [r.name, []]));
  let running = true;
  const loops = replicas.map(async (r) => {
    let i = 0;
    while (running) {
      const res = await post(r.base, chatBody('mymodel', `question ${i++}`)).catch(() => ({ status: 0 }));
      statuses.get(r.name)?.push(res.status);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return statuses;
    },
  };
}

test('two active replicas: one writes status, the other takes over on release and on expiry, and both serve throughout', async () => {
  const load = traffic();
  const apiA = new ReplicaApi(server);
  const apiB = new ReplicaApi(server);
  const apiA2 = new ReplicaApi(server);
  let a: StatusReporting | undefined = start(replicas[0] as ReplicaSetup, apiA);
  let b: StatusReporting | undefined = start(replicas[1] as ReplicaSetup, apiB);
  let a2: StatusReporting | undefined;
  try {
    // The server holds the write before the writer has its answer: wait for both.
    await waitFor('status written by the holder', () => accepted() && apiA.statusPuts.length + apiB.statusPuts.length > 0, 20_000);
    assert.notEqual(a.leader, b.leader, 'exactly one holds the Lease');
    const holderIndex = a.leader ? 0 : 1;
    const [holder, follower, holderApi, followerApi] = a.leader ? [a, b, apiA, apiB] : [b, a, apiB, apiA];
    assert.ok(holderApi.statusPuts.length > 0, 'the holder wrote');
    assert.equal(followerApi.statusPuts.length, 0, 'the follower never wrote');
    await holder.idle();
    const holderWrites = holderApi.statusPuts.length;

    // A config change that changes no status costs no write.
    await (replicas[0] as ReplicaSetup).running.reload();
    await (replicas[1] as ReplicaSetup).running.reload();
    await holder.idle();
    assert.equal(holderApi.statusPuts.length, holderWrites, 'no rewrite when nothing changed');

    // Graceful stop: the holder releases; the follower takes over and writes what is missing.
    server.setStatus('InferencePool/default/pool', {});
    await holder.stop();
    if (holder === a) a = undefined;
    else b = undefined;
    await waitFor('the follower takes over and writes', () => follower.leader && accepted() && followerApi.statusPuts.length > 0, 20_000);

    // The first replica's reporter comes back (a new pod) as a follower; then the holder dies
    // without releasing (its API calls fail): the newcomer takes over after the Lease expires.
    a2 = start(replicas[holderIndex] as ReplicaSetup, apiA2);
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(a2.leader, false, 'a newcomer waits while the holder renews');
    server.setStatus('InferencePool/default/pool', {});
    followerApi.dead = true;
    await waitFor('the dead holder stops by itself', () => !follower.leader, 20_000);
    await waitFor('the newcomer takes over after expiry and writes', () => (a2?.leader ?? false) && accepted() && apiA2.statusPuts.length > 0, 20_000);
  } finally {
    const statuses = await load.stop();
    for (const r of [a, b, a2]) await r?.stop();
    for (const api of [apiA, apiB, apiA2]) await api.close();
    for (const [name, list] of statuses) {
      assert.ok(list.length > 0, `${name} was sent requests`);
      assert.deepEqual([...new Set(list)], [200], `${name} answered every request 200 throughout`);
    }
  }
});
