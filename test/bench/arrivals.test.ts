import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeArrivals, exponentialGap, poissonArrivals, seededRandom, sweepArrivals, sweepSeconds } from '../../src/bench/arrivals.js';
import { binomialZ } from '../support/stats.js';

test('exponential gaps: the sample mean is within 4.5 standard errors of 1/rate', () => {
  for (const rate of [0.5, 4, 250]) {
    const random = seededRandom(11);
    const n = 20_000;
    let sum = 0;
    let belowMean = 0;
    for (let i = 0; i < n; i++) {
      const g = exponentialGap(random, rate);
      assert.ok(g >= 0 && Number.isFinite(g));
      sum += g;
      if (g < 1 / rate) belowMean++;
    }
    const m = sum / n;
    // An exponential's standard deviation equals its mean, so the standard error is (1/rate)/√n.
    const z = (m - 1 / rate) / (1 / rate / Math.sqrt(n));
    assert.ok(Math.abs(z) < 4.5, `rate ${rate}: mean gap ${m}, z=${z.toFixed(2)}`);
    // Shape, not only the mean: P(gap < mean) = 1 − e⁻¹ for an exponential (uniform gaps would give 0.5).
    const zShape = binomialZ(belowMean, n, 1 - Math.exp(-1));
    assert.ok(Math.abs(zShape) < 4.5, `rate ${rate}: ${belowMean} of ${n} gaps below the mean, z=${zShape.toFixed(2)}`);
  }
  assert.throws(() => exponentialGap(seededRandom(1), 0), RangeError);
});

test('poisson arrivals increase, repeat under a seed and differ between seeds', () => {
  const take = (seed: number, n: number): number[] => {
    const out: number[] = [];
    for (const a of poissonArrivals(10, seededRandom(seed))) {
      out.push(a.atMs);
      if (out.length === n) break;
    }
    return out;
  };
  const a = take(3, 200);
  assert.deepEqual(take(3, 200), a);
  assert.notDeepEqual(take(4, 200), a);
  for (let i = 1; i < a.length; i++) assert.ok((a[i] as number) > (a[i - 1] as number));
});

test('a sweep: each stage stays in its window and its count is Poisson(rate × seconds) within 4.5 sigma', () => {
  const stages = [
    { rate: 20, seconds: 50 },
    { rate: 80, seconds: 50 },
    { rate: 5, seconds: 100 },
  ];
  const counts = [0, 0, 0];
  let last = -1;
  let start = 0;
  const bounds = stages.map((s) => {
    const b = { from: start, to: start + s.seconds * 1000 };
    start = b.to;
    return b;
  });
  for (const a of sweepArrivals(stages, seededRandom(5))) {
    assert.ok(a.atMs > last, 'arrivals increase');
    last = a.atMs;
    const b = bounds[a.stage];
    assert.ok(b !== undefined && a.atMs >= b.from && a.atMs < b.to, `arrival at ${a.atMs} outside stage ${a.stage}`);
    counts[a.stage]! += 1;
  }
  stages.forEach((s, i) => {
    const lambda = s.rate * s.seconds;
    const z = ((counts[i] as number) - lambda) / Math.sqrt(lambda);
    assert.ok(Math.abs(z) < 4.5, `stage ${i}: ${counts[i]} arrivals for λ=${lambda}, z=${z.toFixed(2)}`);
  });
  assert.equal(sweepSeconds(stages), 200);
  assert.equal(describeArrivals({ kind: 'sweep', stages: [{ rate: 2, seconds: 30 }, { rate: 4, seconds: 30 }] }), 'sweep 2,4 req/s × 30 s');
  assert.equal(describeArrivals({ kind: 'closed', concurrency: 1 }), 'closed loop, 1 client');
});
