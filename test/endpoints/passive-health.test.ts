import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Endpoint } from '../../src/core/endpoint.js';
import { DEFAULT_PASSIVE_HEALTH, isServerFaultStatus, maxEjected, PassiveHealth } from '../../src/endpoints/passive-health.js';

function pool(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) => new Endpoint({ address: `127.0.0.${i + 1}`, port: 8000, name: `p-${i}`, podName: `p-${i}`, labels: {} }));
}

/** Passive health over one pool, its clock at `now.t`. */
function health(endpoints: readonly Endpoint[], now = { t: 1_000_000 }): PassiveHealth {
  return new PassiveHealth(DEFAULT_PASSIVE_HEALTH, {}, () => now.t, () => [endpoints]);
}

test('max ejection: half a pool at most, at least one of two or more, none of one', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 10].map((n) => maxEjected(n, 50)), [0, 1, 1, 2, 2, 5]);
  assert.deepEqual([1, 2, 4, 10, 20].map((n) => maxEjected(n, 10)), [0, 1, 1, 1, 2], "Envoy's 10 %: at least one");
});

for (const size of [1, 2, 3, 4]) {
  test(`max ejection: every pod of a pool of ${size} failing ejects at most ${maxEjected(size, 50)}`, () => {
    const pods = pool(size);
    const h = health(pods);
    for (let round = 0; round < 3; round++) for (const p of pods) for (let i = 0; i < 5; i++) h.failed(p, 'upstream_reset');
    const ejected = pods.filter((p) => p.ejectedUntil > 1_000_000).length;
    assert.equal(ejected, maxEjected(size, 50));
  });
}

test('max ejection: a slot freed by an ejection ending lets the next failure eject another', () => {
  const now = { t: 1_000_000 };
  const [a, b] = pool(2) as [Endpoint, Endpoint];
  const h = health([a, b], now);
  for (let i = 0; i < 5; i++) h.failed(a, 'upstream_reset');
  for (let i = 0; i < 5; i++) h.failed(b, 'upstream_reset');
  assert.ok(a.ejectedUntil > now.t);
  assert.equal(b.ejectedUntil, 0, 'capped');
  now.t = a.ejectedUntil;
  h.failed(b, 'upstream_reset');
  assert.ok(b.ejectedUntil > now.t, 'one more failure ejects it now');
});

test('statuses: 5xx is a failure but 501 and 505 (about the request); 4xx answers are the client\'s', () => {
  assert.deepEqual([500, 502, 503, 504, 501, 505, 400, 404, 429].map(isServerFaultStatus), [true, true, true, true, false, false, false, false, false]);
  const pods = pool(3);
  const h = health(pods);
  for (let i = 0; i < 50; i++) for (const p of pods) h.answered(p, i % 2 === 0 ? 400 : 422);
  assert.ok(pods.every((p) => p.ejectedUntil === 0 && p.backoffUntil === 0), 'a client sending only bad requests ejects and backs off nobody');
});

test('429: the server is full; backed off for its Retry-After, else 1 s doubling per 429 in a row', () => {
  const now = { t: 1_000_000 };
  const [a, b] = pool(2) as [Endpoint, Endpoint];
  const h = health([a, b], now);
  h.answered(a, 429, 7_000);
  assert.equal(a.backoffUntil, now.t + 7_000);
  assert.equal(a.ejectedUntil, 0, 'full is not broken');
  h.answered(b, 429);
  h.answered(b, 429);
  h.answered(b, 429);
  assert.equal(b.backoffUntil, now.t + 4_000);
  h.answered(b, 200);
  now.t += 10_000;
  h.answered(b, 429);
  assert.equal(b.backoffUntil, now.t + 1_000, 'a success in between starts again at 1 s');
  h.answered(b, 429, 10_000_000);
  assert.equal(b.backoffUntil, now.t + DEFAULT_PASSIVE_HEALTH.maxBackoffMs, 'Retry-After is honoured up to maxBackoffMs');
});

test("error share: a pod failing most requests while its peers serve is backed off; one as bad as its peers is not", () => {
  const [bad, p1, p2] = pool(3) as [Endpoint, Endpoint, Endpoint];
  const h = health([bad, p1, p2]);
  for (let i = 0; i < 20; i++) {
    h.answered(p1, 200);
    h.answered(p2, i % 5 === 0 ? 400 : 200);
    h.answered(bad, 404);
  }
  assert.ok(bad.backoffUntil > 1_000_000, 'the pod answering 404 to all is backed off');
  assert.equal(p1.backoffUntil, 0);
  assert.equal(p2.backoffUntil, 0, 'a pod with a client\'s share of 400s is not');
});

test('error share: a pod failing fast is backed off while its slower peers are still serving their first requests', () => {
  // The failing pod answers in a millisecond and looks idle; its peers have not finished a request yet.
  const [bad, p1, p2] = pool(3) as [Endpoint, Endpoint, Endpoint];
  const h = health([bad, p1, p2]);
  p1.acquire('m', 10);
  for (let i = 0; i < 7; i++) h.answered(bad, 404);
  assert.equal(bad.backoffUntil, 0, 'not judged before it has eight outcomes');
  h.answered(bad, 503);
  assert.ok(bad.backoffUntil > 1_000_000, 'backed off at its eighth failure: p-1 is serving what it was given');

  // Peers with nothing in flight and no outcomes are no evidence: all three failing alike backs off nobody.
  const idle = pool(3);
  const hi = health(idle);
  for (let i = 0; i < 20; i++) hi.answered(idle[0] as Endpoint, 400);
  assert.equal(idle[0]?.backoffUntil, 0, 'nothing to compare with');
  // A peer whose few outcomes failed as well is no evidence either, requests in flight or not.
  idle[1]?.acquire('m', 10);
  hi.answered(idle[1] as Endpoint, 400);
  hi.answered(idle[0] as Endpoint, 400);
  assert.equal(idle[0]?.backoffUntil, 0, 'its peer fails the same requests');
});

test('error share: a client whose bad requests land unevenly backs off no healthy pod; outliers set aside stay within the cap', () => {
  // A battery of malformed requests spread at random, most of them landing on p-0 by chance.
  const [p0, p1, p2] = pool(3) as [Endpoint, Endpoint, Endpoint];
  const h = health([p0, p1, p2]);
  for (let i = 0; i < 12; i++) {
    h.answered(p0, i % 3 === 0 ? 200 : 400);
    h.answered(p1, i % 4 === 0 ? 400 : 200);
    h.answered(p2, 200);
  }
  for (const e of [p0, p1, p2]) assert.equal(e.backoffUntil, 0, `${e.name} is not backed off for its clients' mistakes`);

  // Three of four pods failing everything: at most half the pool is set aside.
  const four = pool(4);
  const h4 = health(four);
  for (let i = 0; i < 20; i++) {
    for (const [j, e] of four.entries()) h4.answered(e, j === 3 ? 200 : 404);
  }
  const aside = four.filter((e) => e.backoffUntil > 1_000_000).length;
  assert.equal(aside, 2, 'half of four');
  assert.equal(four[3]?.backoffUntil, 0);
});
