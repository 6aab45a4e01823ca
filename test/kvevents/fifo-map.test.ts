import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FifoMap } from '../../src/kvevents/fifo-map.js';

test('FifoMap gives the oldest live entry through deletes, moves and clear', () => {
  const m = new FifoMap<string>();
  assert.equal(m.oldest(), undefined);
  for (let i = 1; i <= 5; i++) m.set(i, `v${i}`);
  assert.deepEqual(m.oldest(), [1, 'v1']);
  m.delete(1); // the peeked head
  m.set(2, 'v2b'); // moved to the end: young again
  assert.deepEqual(m.shift(), [3, 'v3']);
  assert.deepEqual(m.shift(), [4, 'v4']);
  assert.deepEqual(m.shift(), [5, 'v5']);
  assert.deepEqual(m.shift(), [2, 'v2b']);
  assert.equal(m.shift(), undefined);
  m.set(9, 'a'); // after the cursor ran dry
  assert.deepEqual(m.oldest(), [9, 'a']);
  m.clear();
  m.set(7, 'b');
  assert.deepEqual(m.shift(), [7, 'b']);
  assert.equal(m.size, 0);
});

test('FifoMap evicts from the front in amortised O(1): a million evictions at 50,000 entries finish', () => {
  // A plain Map's keys().next() rescans deleted slots: this loop took about a minute that way.
  const m = new FifoMap<number>();
  for (let i = 0; i < 1_000_000; i++) {
    m.set(i * 2 + 2 ** 40, i);
    if (i % 3 === 0) m.delete((i - 3) * 2 + 2 ** 40); // removals in the middle, as BlockRemoved does
    if (m.size > 50_000) m.shift();
  }
  assert.equal(m.size, 50_000);
  assert.equal(m.oldest()![1] > 900_000, true);
});
