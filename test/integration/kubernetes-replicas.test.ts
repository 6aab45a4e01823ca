import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { startFleet } from '../support/fleet.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { gatewayClassObj, gatewayObj, kubeconfigFor, podObj, poolObj, routeObj } from '../support/kube.js';
import { freePort } from '../support/ports.js';

/*
 * Two active replicas of `infergate serve --kubernetes` (two processes, each on its own loopback
 * address as two pods have their own IPs, one Gateway port) on one API server: both serve, one
 * holds the Lease and writes status, and when it stops the other takes over the status writing.
 */

const DEADLINE_MS = 60_000;
const SIMS = { 'sim-0': '127.0.0.81', 'sim-1': '127.0.0.82' } as const;
const REPLICAS = { 'replica-a': '127.0.0.91', 'replica-b': '127.0.0.92' } as const;
type Replica = keyof typeof REPLICAS;
const CONTROLLER = 'infergate.dev/gateway-controller';

async function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let api: FakeApiServer;
let fleet: Awaited<ReturnType<typeof startFleet>>;
let kube: Awaited<ReturnType<typeof kubeconfigFor>>;
let port: number;
const replicas = new Map<Replica, GatewayProcess>();

async function chat(replica: Replica): Promise<number> {
  const r = await fetch(`http://${REPLICAS[replica]}:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mymodel', messages: [{ role: 'user', content: 'hello' }], max_tokens: 2 }),
  });
  await r.arrayBuffer();
  return r.status;
}

function holder(): string | undefined {
  const lease = api.get({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', namespace: 'default', name: 'infergate-status' });
  const id = (lease?.['spec'] as { holderIdentity?: string } | undefined)?.holderIdentity;
  return id === undefined || id === '' ? undefined : id;
}

type Condition = { type: string; status: string; reason: string };
type Parent = { controllerName?: string; parentRef?: { name?: string }; conditions?: Condition[] };

function ourParents(obj: KubeObject | undefined): Parent[] {
  const parents = ((obj?.['status'] as { parents?: Parent[] } | undefined)?.parents ?? []) as Parent[];
  return parents.filter((p) => p.controllerName === CONTROLLER);
}

function condition(p: Parent | undefined, type: string): Condition | undefined {
  return p?.conditions?.find((c) => c.type === type);
}

before(async () => {
  fleet = await startFleet((Object.keys(SIMS) as Array<keyof typeof SIMS>).map((name) => ({ host: SIMS[name], name, models: ['mymodel'] })));
  api = await FakeApiServer.start();
  port = await freePort();
  api.apply(gatewayClassObj());
  api.apply(gatewayObj(port));
  api.apply(routeObj('pool'));
  api.apply(poolObj('pool', { app: 'sim' }, fleet.port));
  for (const [name, ip] of Object.entries(SIMS)) api.apply(podObj(name, { app: 'sim' }, ip, true, fleet.port));
  kube = await kubeconfigFor(api);
  for (const [name, address] of Object.entries(REPLICAS) as Array<[Replica, string]>) {
    replicas.set(name, await startGatewayProcess(['--kubernetes', '--kubeconfig', kube.path, '--namespace', 'default', '--address', address], { POD_NAME: name }));
  }
});

after(async () => {
  for (const r of replicas.values()) await r.stop();
  await api?.close();
  await fleet?.close();
  await kube?.remove();
});

test('two active replicas: both serve, the Lease holder writes status, and the other takes over when it stops', { timeout: 240_000 }, async () => {
  // Both replicas serve at once: no standby.
  for (const name of Object.keys(REPLICAS) as Replica[]) {
    await until(`${name} answering 200`, async () => (await chat(name).catch(() => 0)) === 200);
  }

  const first = (await until('a Lease holder', () => holder())) as Replica;
  assert.ok(first in REPLICAS, `holder ${first} is one of the replicas`);

  // The holder wrote the pool's and the route's status, once each under our controller name.
  const poolParent = await until('the pool accepted by our Gateway', () => {
    const p = ourParents(api.get({ apiVersion: 'inference.networking.k8s.io/v1', kind: 'InferencePool', namespace: 'default', name: 'pool' }));
    return p.length === 1 && condition(p[0], 'Accepted')?.status === 'True' ? p[0] : undefined;
  });
  assert.equal(poolParent?.parentRef?.name, 'gw');
  await until('the route accepted', () => {
    const p = ourParents(api.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: 'default', name: 'r' }));
    return p.length === 1 && condition(p[0], 'Accepted')?.status === 'True' && condition(p[0], 'ResolvedRefs')?.status === 'True';
  });

  // The holder stops (a rolling update): it releases the Lease and the other replica takes over,
  // long before the 15 s lease would have expired on its own.
  const second = (Object.keys(REPLICAS) as Replica[]).find((r) => r !== first) as Replica;
  await replicas.get(first)?.stop();
  await until(`${second} holding the Lease`, () => holder() === second);

  // A change only the new holder can report: a route to a pool that does not exist.
  api.apply(routeObj('missing-pool', 'r2'));
  const r2 = await until('route r2 reported BackendNotFound', () => {
    const p = ourParents(api.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', namespace: 'default', name: 'r2' }));
    const c = condition(p[0], 'ResolvedRefs');
    return c?.status === 'False' ? c : undefined;
  });
  assert.equal(r2.reason, 'BackendNotFound');

  // The survivor kept serving throughout and still does.
  for (let i = 0; i < 10; i++) assert.equal(await chat(second), 200);
});
