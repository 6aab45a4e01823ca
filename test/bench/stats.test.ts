import assert from 'node:assert/strict';
import { test } from 'node:test';
import { distribution, ecdf, histogram, mean, percentile, sortedAscending } from '../../src/bench/stats.js';

const close = (a: number | undefined, b: number, msg?: string): void => {
  assert.ok(a !== undefined && Math.abs(a - b) < 1e-9, `${msg ?? ''} expected ${b}, got ${a}`);
};

test('percentile: linear interpolation between closest ranks (numpy default)', () => {
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  const cases: Array<{ data: number[]; p: number; want: number }> = [
    { data: [1, 2, 3, 4], p: 50, want: 2.5 },
    { data: [1, 2, 3, 4], p: 90, want: 3.7 },
    { data: [1, 2, 3, 4], p: 99, want: 3.97 },
    { data: [1, 2, 3, 4], p: 0, want: 1 },
    { data: [1, 2, 3, 4], p: 100, want: 4 },
    { data: [7], p: 99, want: 7 },
    { data: hundred, p: 50, want: 50.5 },
    { data: hundred, p: 90, want: 90.1 },
    { data: hundred, p: 99, want: 99.01 },
    { data: [10, 10, 10, 20], p: 50, want: 10 },
  ];
  for (const { data, p, want } of cases) close(percentile(data, p), want, `p${p} of ${data.length} samples:`);
  assert.equal(percentile([], 50), undefined);
  assert.throws(() => percentile([1], 101), RangeError);
  assert.throws(() => percentile([1], -1), RangeError);
});

test('sortedAscending drops non-finite values; mean and distribution', () => {
  assert.deepEqual(sortedAscending([3, Number.NaN, 1, Number.POSITIVE_INFINITY, 2]), [1, 2, 3]);
  close(mean([1, 2, 3, 6]), 3);
  assert.equal(mean([]), undefined);
  const d = distribution([5, 1, 4, 2, 3]);
  assert.deepEqual(d, { count: 5, mean: 3, min: 1, max: 5, p50: 3, p90: 4.6, p99: 4.96 });
  assert.equal(distribution([]), undefined);
});

test('histogram: equal-width bins, last bin closed, every sample counted once', () => {
  const cases: Array<{ data: number[]; bins: number; min?: number; max?: number; counts: number[]; edges?: number[] }> = [
    { data: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], bins: 5, counts: [2, 2, 2, 2, 3], edges: [0, 2, 4, 6, 8, 10] },
    { data: [1, 1, 1], bins: 2, counts: [0, 3] },
    { data: [-5, 0, 5, 50], bins: 2, min: 0, max: 10, counts: [1, 1] },
    { data: [], bins: 3, counts: [0, 0, 0] },
  ];
  for (const c of cases) {
    const h = histogram(c.data, { bins: c.bins, ...(c.min === undefined ? {} : { min: c.min }), ...(c.max === undefined ? {} : { max: c.max }) });
    assert.deepEqual(h.counts, c.counts, `counts of ${JSON.stringify(c.data)}`);
    assert.equal(h.edges.length, c.bins + 1);
    if (c.edges !== undefined) assert.deepEqual(h.edges, c.edges);
  }
  assert.throws(() => histogram([1], { bins: 0 }), RangeError);
  assert.throws(() => histogram([1], { min: 5, max: 1 }), RangeError);
});

test('ecdf: steps at distinct values, ends at 1, thinned to maxPoints', () => {
  assert.deepEqual(ecdf([1, 2, 2, 4]), [
    { x: 1, y: 0.25 },
    { x: 2, y: 0.75 },
    { x: 4, y: 1 },
  ]);
  const big = ecdf(Array.from({ length: 10_000 }, (_, i) => i), 100);
  assert.ok(big.length <= 101, `kept ${big.length} points`);
  assert.deepEqual(big.at(-1), { x: 9999, y: 1 });
  assert.deepEqual(ecdf([]), []);
});
