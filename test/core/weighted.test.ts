import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom, WeightedTable } from '../../src/core/weighted.js';
import { binomialZ } from '../support/stats.js';

test('weighted draws follow the weights (90/10, 1:2:7, large weights; 20k draws, within 4.5 sigma)', () => {
  const random = seededRandom(42);
  const cases = [
    { weights: [90, 10], n: 20_000 },
    { weights: [1, 2, 7], n: 20_000 },
    { weights: [250_000, 750_000], n: 20_000 },
  ];
  for (const { weights, n } of cases) {
    const table = new WeightedTable(weights.map((w, i) => ({ item: i, weight: w })));
    const counts = new Array<number>(weights.length).fill(0);
    for (let i = 0; i < n; i++) counts[table.pick(random) as number]! += 1;
    const total = weights.reduce((a, b) => a + b, 0);
    weights.forEach((w, i) => {
      const z = binomialZ(counts[i] ?? 0, n, w / total);
      assert.ok(Math.abs(z) < 4.5, `weights ${weights}: item ${i} drawn ${counts[i]} times, z=${z.toFixed(2)}`);
    });
  }
});

test('zero weights are never drawn; an all-zero table is empty', () => {
  const random = seededRandom(7);
  const table = new WeightedTable([
    { item: 'a', weight: 0 },
    { item: 'b', weight: 3 },
  ]);
  for (let i = 0; i < 1000; i++) assert.equal(table.pick(random), 'b');
  assert.equal(new WeightedTable([{ item: 'a', weight: 0 }]).pick(random), undefined);
  assert.equal(new WeightedTable<string>([]).size, 0);
});

test('seededRandom repeats for a seed and stays in [0, 1)', () => {
  const a = seededRandom(1);
  const b = seededRandom(1);
  for (let i = 0; i < 1000; i++) {
    const x = a();
    assert.equal(x, b());
    assert.ok(x >= 0 && x < 1);
  }
});

test('pickWhere draws among a subset by its weights renormalised; none kept is undefined', () => {
  const random = seededRandom(11);
  const table = new WeightedTable([
    { item: 'a', weight: 60 },
    { item: 'b', weight: 10 },
    { item: 'c', weight: 30 },
  ]);
  const n = 20_000;
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const x = table.pickWhere(random, (item) => item !== 'b') as string;
    counts.set(x, (counts.get(x) ?? 0) + 1);
  }
  assert.equal(counts.get('b'), undefined);
  assert.ok(Math.abs(binomialZ(counts.get('a') ?? 0, n, 60 / 90)) < 4.5, `a drawn ${counts.get('a')} of ${n}`);
  assert.equal(table.pickWhere(random, (_, i) => i === 1), 'b');
  assert.equal(table.pickWhere(random, () => false), undefined);
});
