import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Criticality } from '../../src/api/types.js';
import type { Endpoint } from '../../src/core/endpoint.js';
import { GatewayError } from '../../src/core/errors.js';
import { AdmissionGate, type AdmissionOptions } from '../../src/flowcontrol/admission.js';
import { isSaturated } from '../../src/flowcontrol/saturation.js';
import { endpoints, NOW } from '../scheduling/support.js';

const OPTIONS: AdmissionOptions = { queueDepth: 5, kvCacheUtilization: 0.8, stalenessMs: 200, maxRequests: 3, ttlMs: 60_000, sheddable: 'reject', recheckMs: 5 };

function gate(eps: Endpoint[], options: Partial<AdmissionOptions> = {}): AdmissionGate {
  return new AdmissionGate(() => [eps], { ...OPTIONS, ...options }, () => NOW);
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'admitted';
  } catch (err) {
    return err instanceof GatewayError ? err.code : String(err);
  }
}

test('saturation: only when no endpoint has headroom; stale counts as none; endpoints without metrics are judged by in-flight', () => {
  const cases: Array<{ name: string; eps: Endpoint[]; want: boolean }> = [
    { name: 'one idle endpoint among busy ones', eps: endpoints([{ metrics: { waitingRequests: 9 } }, { metrics: { waitingRequests: 0 } }]), want: false },
    { name: 'all over the queue threshold', eps: endpoints([{ metrics: { waitingRequests: 5 } }, { metrics: { waitingRequests: 7 } }]), want: true },
    { name: 'all over the KV threshold', eps: endpoints([{ metrics: { kvCacheUsage: 0.9 } }, { metrics: { kvCacheUsage: 0.85 } }]), want: true },
    { name: 'the only idle one is stale', eps: endpoints([{ metrics: { waitingRequests: 9 } }, { metrics: { waitingRequests: 0 }, ageMs: 1000 }]), want: true },
    { name: 'no endpoint has metrics', eps: endpoints([{ inFlight: 50 }, {}]), want: false },
    { name: 'beside a queueing endpoint, one without metrics and few requests in flight has headroom', eps: endpoints([{ metrics: { waitingRequests: 9 } }, { inFlight: 4 }]), want: false },
    { name: 'beside a queueing endpoint, one without metrics and queueDepth in flight has none', eps: endpoints([{ metrics: { waitingRequests: 9 } }, { inFlight: 5 }]), want: true },
    {
      name: 'requests sent since the scrape to a queueing endpoint count',
      eps: endpoints([{ metrics: { waitingRequests: 9 } }, { metrics: { waitingRequests: 1 }, inFlight: 5, inFlightAtScrape: 0 }]),
      want: true,
    },
    {
      name: 'prompt tokens sent since the scrape fill the KV of the idle one',
      eps: ((): Endpoint[] => {
        const eps = endpoints([{ metrics: { waitingRequests: 9 } }, { metrics: { waitingRequests: 0, kvCacheUsage: 0.5, blockSize: 16, numGpuBlocks: 100 }, inFlight: 5, inFlightAtScrape: 0 }]);
        (eps[1] as Endpoint).inFlightTokens = 800; // 800 of 1600 tokens: 0.5 + 0.5
        return eps;
      })(),
      want: true,
    },
  ];
  for (const c of cases) assert.equal(isSaturated(c.eps, OPTIONS, NOW, 'shed'), c.want, c.name);
});

test('saturation for holding requests: only when every endpoint is queueing; a full KV alone is not', () => {
  const fullKv = endpoints([{ metrics: { kvCacheUsage: 0.95 } }, { metrics: { kvCacheUsage: 0.9 } }]);
  assert.equal(isSaturated(fullKv, OPTIONS, NOW, 'shed'), true, 'Sheddable is refused');
  assert.equal(isSaturated(fullKv, OPTIONS, NOW, 'queue'), false, 'Standard still goes to the servers');
  assert.equal(isSaturated(endpoints([{ metrics: { waitingRequests: 6 } }, { metrics: { waitingRequests: 5 } }]), OPTIONS, NOW, 'queue'), true);
  assert.equal(isSaturated(endpoints([{ metrics: { waitingRequests: 6 } }, { metrics: { waitingRequests: 0 }, ageMs: 1000 }]), OPTIONS, NOW, 'queue'), true, 'stale is no headroom');
});

test('admission: with a full KV but no queues, Sheddable is refused while Standard passes at once', async () => {
  const g = gate(endpoints([{ metrics: { kvCacheUsage: 0.9 } }]));
  await assert.rejects(g.admit('Sheddable', new AbortController().signal), (e: unknown) => e instanceof GatewayError && e.code === 'request_shed');
  const t = await g.admit('Standard', new AbortController().signal);
  assert.equal(t.waitedMs, 0);
});

test('admission: passes at once with headroom; sheds Sheddable while saturated with Retry-After; queue limit is 429', async () => {
  const eps = endpoints([{ metrics: { waitingRequests: 0 } }]);
  const g = gate(eps);
  const t = await g.admit('Sheddable', new AbortController().signal);
  assert.equal(t.waitedMs, 0);
  t.done();

  (eps[0] as Endpoint).metrics = { waitingRequests: 8, runningRequests: 4, kvCacheUsage: 0.5 };
  const shed = g.admit('Sheddable', new AbortController().signal);
  await assert.rejects(shed, (e: unknown) => e instanceof GatewayError && e.code === 'request_shed' && e.status === 429 && (e.retryAfterSeconds ?? 0) >= 1);

  const waiting = [g.admit('Standard', new AbortController().signal), g.admit('Standard', new AbortController().signal), g.admit('Critical', new AbortController().signal)];
  assert.equal(g.size, 3);
  assert.equal(await code(g.admit('Critical', new AbortController().signal)), 'queue_full');
  g.close(new GatewayError('gateway_shutting_down', 'test over'));
  for (const w of waiting) assert.equal(await code(w), 'gateway_shutting_down');
});

test('admission: Critical first, then FIFO; one at a time, each after the previous took its endpoint', async () => {
  const eps = endpoints([{ metrics: { waitingRequests: 8 } }]);
  const g = gate(eps, { maxRequests: 10 });
  const order: string[] = [];
  const admitted = new Map<string, () => void>();
  const enqueue = (name: string, band: Criticality): Promise<void> =>
    g.admit(band, new AbortController().signal).then((ticket) => {
      order.push(name);
      admitted.set(name, () => ticket.done());
    });
  const all = [enqueue('s1', 'Standard'), enqueue('s2', 'Standard'), enqueue('c1', 'Critical')];
  assert.equal(g.size, 3);
  (eps[0] as Endpoint).metrics = { waitingRequests: 0, runningRequests: 0, kvCacheUsage: 0 };
  g.wake();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ['c1'], 'only one request is let through before it reports done');
  admitted.get('c1')?.();
  await new Promise((r) => setImmediate(r));
  admitted.get('s1')?.();
  await Promise.all(all);
  assert.deepEqual(order, ['c1', 's1', 's2']);
});

test('admission: a queued request times out with 503 and Retry-After; a client that leaves is removed', async () => {
  const eps = endpoints([{ metrics: { waitingRequests: 8 } }]);
  const g = gate(eps, { ttlMs: 20 });
  await assert.rejects(g.admit('Standard', new AbortController().signal), (e: unknown) => e instanceof GatewayError && e.code === 'queue_timeout' && e.status === 503 && e.retryAfterSeconds !== undefined);
  const controller = new AbortController();
  const leaving = g.admit('Critical', controller.signal);
  assert.equal(g.size, 1);
  controller.abort();
  assert.equal(await code(leaving), 'client_gone');
  assert.equal(g.size, 0);
});
