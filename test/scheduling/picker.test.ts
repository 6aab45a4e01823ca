import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Endpoint } from '../../src/core/endpoint.js';
import { seededRandom } from '../../src/core/weighted.js';
import { InflightScorer } from '../../src/scheduling/plugins/inflight-scorer.js';
import { MaxScorePicker } from '../../src/scheduling/plugins/max-score-picker.js';
import { buildProfile, builtinRegistry, POLICIES } from '../../src/scheduling/policies.js';
import { GatewayError } from '../../src/core/errors.js';
import { binomialZ } from '../support/stats.js';

const request = { requestId: 'r', model: 'm', targetModel: 'm', criticality: 'Standard' as const };

function endpoints(inFlight: number[]): Endpoint[] {
  return inFlight.map((n, i) => {
    const e = new Endpoint({ address: `127.0.0.${i + 2}`, port: 8000, name: `pod-${i}`, podName: `pod-${i}`, labels: {} });
    e.inFlight = n;
    return e;
  });
}

test('inflight scorer: min-max over candidates, 1.0 for all when equal', () => {
  const scorer = new InflightScorer('s');
  const cases: Array<{ inFlight: number[]; want: number[] }> = [
    { inFlight: [0, 5, 10], want: [1, 0.5, 0] },
    { inFlight: [3, 3, 3], want: [1, 1, 1] },
    { inFlight: [7], want: [1] },
    { inFlight: [], want: [] },
  ];
  for (const { inFlight, want } of cases) {
    const out = new Float64Array(inFlight.length);
    scorer.score(request, endpoints(inFlight), out);
    assert.deepEqual([...out], want, `in-flight ${inFlight}`);
  }
});

test('max-score picker: best first, ties broken at random and fairly, fallbacks follow', () => {
  const picker = new MaxScorePicker('p', 3);
  const eps = endpoints([0, 0, 0, 0]);
  const random = seededRandom(3);
  const firsts = new Map<string, number>();
  const n = 8000;
  for (let i = 0; i < n; i++) {
    const picked = picker.pick(eps, new Float64Array([1, 1, 1, 0.5]), random);
    assert.equal(picked.length, 3);
    assert.ok(!picked.slice(0, 3).includes(eps[3] as Endpoint) || picked[2] === eps[3]);
    firsts.set(picked[0]?.name ?? '', (firsts.get(picked[0]?.name ?? '') ?? 0) + 1);
  }
  assert.equal(firsts.get('pod-3'), undefined, 'the lower score never wins');
  for (const name of ['pod-0', 'pod-1', 'pod-2']) {
    assert.ok(Math.abs(binomialZ(firsts.get(name) ?? 0, n, 1 / 3)) < 4.5, `${name} won ${firsts.get(name)} of ${n}`);
  }
});

test('profile: least in-flight wins; no candidates is no_ready_endpoint (503)', () => {
  const profile = buildProfile('DEFAULT', POLICIES.DEFAULT, builtinRegistry());
  const eps = endpoints([4, 1, 9]);
  const result = profile.schedule(request, eps, seededRandom(1));
  assert.equal(result.endpoints[0]?.name, 'pod-1');
  assert.equal(result.scores[0], 1);
  assert.throws(() => profile.schedule(request, [], seededRandom(1)), (e: unknown) => e instanceof GatewayError && e.status === 503);
});

test('registry: unknown plugin types and bad parameters are refused with their names', () => {
  const registry = builtinRegistry();
  assert.throws(() => registry.create('no-such-scorer'), /unknown plugin type no-such-scorer/);
  assert.throws(() => registry.create('max-score-picker', 'p', { maxNumOfEndpoints: 0 }));
  assert.throws(() => registry.register('max-score-picker', () => new InflightScorer('x')), /already registered/);
});
