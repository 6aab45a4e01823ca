import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Endpoint } from '../../src/core/endpoint.js';
import { GatewayError } from '../../src/core/errors.js';
import { seededRandom } from '../../src/core/weighted.js';
import { InflightScorer } from '../../src/scheduling/plugins/inflight-scorer.js';
import { MaxScorePicker } from '../../src/scheduling/plugins/max-score-picker.js';
import { RoundRobinPicker } from '../../src/scheduling/plugins/round-robin-picker.js';
import { buildScheduler } from '../../src/scheduling/config.js';
import { builtinRegistry, policyFor } from '../../src/scheduling/policies.js';
import { binomialZ } from '../support/stats.js';
import { endpoints, handle, request } from './support.js';

test('max-score picker: best first, ties broken at random and fairly, fallbacks follow', () => {
  const picker = new MaxScorePicker('p', 3);
  const eps = endpoints([{}, {}, {}, {}]);
  const random = seededRandom(3);
  const firsts = new Map<string, number>();
  const n = 8000;
  for (let i = 0; i < n; i++) {
    const picked = picker.pick(eps, new Float64Array([1, 1, 1, 0.5]), random);
    assert.equal(picked.length, 3);
    assert.ok(!picked.includes(eps[3] as Endpoint), 'the lowest score is not among the top three');
    firsts.set(picked[0]?.name ?? '', (firsts.get(picked[0]?.name ?? '') ?? 0) + 1);
  }
  assert.equal(firsts.get('pod-3'), undefined, 'the lower score never wins');
  for (const name of ['pod-0', 'pod-1', 'pod-2']) {
    assert.ok(Math.abs(binomialZ(firsts.get(name) ?? 0, n, 1 / 3)) < 4.5, `${name} won ${firsts.get(name)} of ${n}`);
  }
});

test('round-robin picker: each candidate in turn, the next ones as fallbacks', () => {
  const picker = new RoundRobinPicker('rr');
  const eps = endpoints([{}, {}, {}]);
  const firsts = Array.from({ length: 6 }, () => picker.pick(eps)[0]?.name);
  assert.deepEqual(firsts, ['pod-0', 'pod-1', 'pod-2', 'pod-0', 'pod-1', 'pod-2']);
  // The pick and one fallback: MAX_ATTEMPTS, the one place the retry count is defined.
  assert.deepEqual(picker.pick(eps).map((e) => e.name), ['pod-0', 'pod-1']);
});

test('profile: the least loaded wins with its per-scorer breakdown; no candidates is no_ready_endpoint (503)', () => {
  const { scheduler } = buildScheduler(policyFor('DEFAULT', undefined).config, builtinRegistry(), handle());
  const profile = { schedule: (...args: Parameters<typeof scheduler.schedule>) => scheduler.schedule(...args).primary };
  const eps = endpoints([
    { inFlight: 4, metrics: { waitingRequests: 6, kvCacheUsage: 0.7 } },
    { inFlight: 1, metrics: { waitingRequests: 0, kvCacheUsage: 0.2 } },
    { inFlight: 9, metrics: { waitingRequests: 3, kvCacheUsage: 0.5 } },
  ]);
  const result = profile.schedule(request(), eps, seededRandom(1));
  assert.equal(result.endpoints[0]?.name, 'pod-1');
  assert.deepEqual(result.breakdown, { queue: 1, kvCache: 0.8, inflight: 1, prefill: 1, lora: 1 });
  assert.equal(result.scores[0], 2 * 1 + 2 * 0.8 + 1 + 2 * 1 + 1);
  assert.throws(() => profile.schedule(request(), [], seededRandom(1)), (e: unknown) => e instanceof GatewayError && e.status === 503);
});

test('registry: unknown plugin types and bad parameters are refused with their names', () => {
  const registry = builtinRegistry();
  assert.throws(() => registry.create('no-such-scorer', handle()), /no-such-scorer.*unknown plugin type/);
  assert.throws(() => registry.create('max-score-picker', handle(), 'p', { maxNumOfEndpoints: 0 }));
  assert.throws(() => registry.create('prefix-cache-scorer', handle(), 'p', { hotspotKvDelta: 2 }));
  assert.throws(() => registry.register('max-score-picker', () => new InflightScorer('x')), /already registered/);
});
