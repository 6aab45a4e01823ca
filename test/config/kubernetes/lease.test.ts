import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LeaseElector, leaseIdentity, microTime, type LeaseTimings } from '../../../src/config/kubernetes/lease.js';
import { FakeApiServer } from '../../support/fake-apiserver.js';
import { until } from '../../support/fixed-picker.js';
import { memoryLog, ReplicaApi } from '../../support/status-kube.js';

/*
 * The Lease between replicas, against the in-process API server: one holder at a time, a quick
 * handover when the holder stops (it releases), and a takeover after expiry when the holder dies
 * without releasing. Timings are short so the tests run fast; deadlines are generous.
 */

/**
 * Expiry after 3 s; a holder cut off stops after 2 s, before anyone may take over. Short for a
 * quick test, long enough that a busy machine's pauses do not move the Lease on their own.
 */
const FAST: LeaseTimings = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 200 };
/** A Lease that would take a minute to expire: a takeover within the test's deadline must come from a release. */
const SLOW_EXPIRY: LeaseTimings = { leaseDurationMs: 60_000, renewDeadlineMs: 10_000, retryPeriodMs: 100 };

let server: FakeApiServer;

before(async () => {
  server = await FakeApiServer.start();
});

after(async () => {
  await server.close();
});

interface Replica {
  readonly api: ReplicaApi;
  readonly elector: LeaseElector;
  readonly changes: boolean[];
}

function replica(name: string, identity: string, timings: LeaseTimings): Replica {
  const api = new ReplicaApi(server);
  const changes: boolean[] = [];
  const elector = new LeaseElector({ api, namespace: 'default', name, identity, log: memoryLog(), timings, onChange: (l) => void changes.push(l) });
  return { api, elector, changes };
}

function holder(name: string): string | undefined {
  return (server.get(`Lease/default/${name}`)?.['spec'] as { holderIdentity?: string } | undefined)?.holderIdentity;
}

test('exactly one of two replicas holds the Lease; when it stops it releases, and the other takes over long before expiry', async () => {
  const a = replica('handover', 'pod-a', SLOW_EXPIRY);
  const b = replica('handover', 'pod-b', SLOW_EXPIRY);
  try {
    a.elector.start();
    b.elector.start();
    await until(() => a.elector.isLeader() !== b.elector.isLeader(), 20_000, 'one leader');
    // Several renew periods later there is still exactly one.
    const first = a.elector.isLeader() ? a : b;
    const second = first === a ? b : a;
    await until(() => (holder('handover') ?? '') === first.elector.identity, 20_000, 'the Lease names the leader');
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(first.elector.isLeader() && !second.elector.isLeader(), true);
    }
    const lease = server.get('Lease/default/handover')?.['spec'] as { leaseDurationSeconds: number; renewTime: string };
    assert.equal(lease.leaseDurationSeconds, 60);
    assert.match(lease.renewTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

    await first.elector.stop();
    assert.equal(first.elector.isLeader(), false);
    await until(() => second.elector.isLeader(), 20_000, 'the other replica takes over after the release');
    assert.equal(holder('handover'), second.elector.identity);
    assert.deepEqual(first.changes, [true, false]);
  } finally {
    await a.elector.stop();
    await b.elector.stop();
    await a.api.close();
    await b.api.close();
  }
});

test('a holder that dies without releasing stops on its own at the renew deadline; the other takes over after expiry', async () => {
  const a = replica('expiry', 'pod-a', FAST);
  const b = replica('expiry', 'pod-b', FAST);
  try {
    a.elector.start();
    await until(() => a.elector.isLeader(), 20_000, 'a leads');
    b.elector.start();
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(b.elector.isLeader(), false, 'b waits while a renews');

    a.api.dead = true;
    await until(() => !a.elector.isLeader(), 20_000, 'a stops acting as leader by itself (renew deadline)');
    await until(() => b.elector.isLeader(), 20_000, 'b takes over once the Lease expired');
    assert.equal(holder('expiry'), 'pod-b');
    const spec = server.get('Lease/default/expiry')?.['spec'] as { leaseTransitions: number };
    assert.equal(spec.leaseTransitions, 1);

    // a comes back: it sees b's Lease and stays a follower.
    a.api.dead = false;
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(a.elector.isLeader(), false);
    assert.equal(b.elector.isLeader(), true);
  } finally {
    await a.elector.stop();
    await b.elector.stop();
    await a.api.close();
    await b.api.close();
  }
});

test('identity is $POD_NAME, else the hostname; MicroTime has microseconds', () => {
  assert.equal(leaseIdentity({ POD_NAME: 'gw-7d9f-abc' }), 'gw-7d9f-abc');
  assert.notEqual(leaseIdentity({}), '');
  assert.equal(microTime(new Date('2026-12-07T12:00:00.123Z')), '2026-12-07T12:00:00.123000Z');
});

test('a Lease the replica may not read (403, a missing RBAC rule) is reported once, and the replica never writes status', async () => {
  server.failNext({ pathIncludes: '/leases/forbidden' }, 403, 1_000);
  const log = memoryLog();
  const api = new ReplicaApi(server);
  const elector = new LeaseElector({ api, namespace: 'default', name: 'forbidden', identity: 'pod-a', log, timings: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 50 } });
  try {
    elector.start();
    await until(() => server.requestsWhere((r) => r.path.includes('/leases/forbidden')).length >= 5, 20_000, 'several attempts');
    assert.equal(elector.isLeader(), false);
    const said = log.lines.filter((l) => l.message.startsWith('lease: cannot read or write the Lease'));
    assert.equal(said.length, 1, 'said once, not every retry');
    assert.match(String(said[0]?.fields['error']), /403/);
  } finally {
    await elector.stop();
    await api.close();
  }
});
