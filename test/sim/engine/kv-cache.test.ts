import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hashFullBlocks } from '../../../src/sim/engine/block-hash.js';
import { KvCache } from '../../../src/sim/engine/kv-cache.js';

const seqTokens = (n: number, offset = 0): number[] => Array.from({ length: n }, (_, i) => (i + offset) * 2654435761 >>> 0);

test('only full blocks are hashed; hashes chain over the prefix', () => {
  const t = seqTokens(40);
  const h = hashFullBlocks(t, 16);
  assert.equal(h.length, 2);
  assert.deepEqual(hashFullBlocks(t.slice(0, 32), 16), h);
  assert.deepEqual(hashFullBlocks(t.slice(0, 31), 16), h.slice(0, 1));
  const changedLate = [...t];
  changedLate[20] = 7;
  assert.equal(hashFullBlocks(changedLate, 16)[0], h[0]);
  assert.notEqual(hashFullBlocks(changedLate, 16)[1], h[1]);
  const changedEarly = [...t];
  changedEarly[3] = 7;
  const he = hashFullBlocks(changedEarly, 16);
  assert.notEqual(he[0], h[0]);
  assert.notEqual(he[1], h[1], 'a later block hash depends on the whole prefix');
  for (const x of h) assert.ok(Number.isSafeInteger(x) && x >= 0);
});

test('LoRA name and cache salt are extra keys: no sharing across adapters or salts', () => {
  const t = seqTokens(48);
  const base = hashFullBlocks(t, 16);
  const a = hashFullBlocks(t, 16, 'adapter-a');
  const b = hashFullBlocks(t, 16, 'adapter-b');
  const salted = hashFullBlocks(t, 16, null, 'tenant-1');
  for (let i = 0; i < 3; i++) {
    assert.equal(new Set([base[i], a[i], b[i], salted[i]]).size, 4, `block ${i}`);
  }
  assert.deepEqual(hashFullBlocks(t, 16, 'adapter-a'), a);
});

test('freed blocks stay hits until allocation evicts them, tail of the sequence first', () => {
  const kv = new KvCache(8, 4);
  const t = seqTokens(12);
  const hashes = hashFullBlocks(t, 4);
  const blocks: number[] = [];
  assert.ok(kv.allocate(3, blocks));
  blocks.forEach((b, i) => assert.ok(kv.cacheBlock(b, hashes[i]!)));
  assert.equal(kv.numUsed, 3);
  kv.release(blocks);
  assert.equal(kv.numUsed, 0);
  assert.equal(kv.matchPrefix(hashes, 3), 3, 'still cached after release');
  // Free queue: the 5 never-used blocks, then the released ones in reverse order.
  assert.deepEqual(kv.freeQueue(), [3, 4, 5, 6, 7, blocks[2], blocks[1], blocks[0]]);
  const other: number[] = [];
  assert.ok(kv.allocate(5, other)); // takes the never-used blocks
  assert.equal(kv.matchPrefix(hashes, 3), 3);
  assert.ok(kv.allocate(1, other)); // evicts the sequence's LAST block first
  assert.equal(kv.matchPrefix(hashes, 3), 2);
  assert.equal(kv.hashOf(blocks[2]!), null);
  assert.ok(kv.allocate(1, other));
  assert.equal(kv.matchPrefix(hashes, 3), 1);
});

test('hits on free blocks take them out of the free queue; usage and ref counts are exact', () => {
  const kv = new KvCache(6, 4);
  const hashes = hashFullBlocks(seqTokens(8), 4);
  const first: number[] = [];
  kv.allocate(2, first);
  kv.cacheBlock(first[0]!, hashes[0]!);
  kv.cacheBlock(first[1]!, hashes[1]!);
  // A second request shares both blocks while the first still runs.
  assert.equal(kv.countFreeHits(hashes, 2), 0);
  const second: number[] = [];
  kv.acquireHits(hashes, 2, second);
  assert.deepEqual(second, first);
  assert.equal(kv.refCount(first[0]!), 2);
  assert.equal(kv.numUsed, 2);
  kv.release(first);
  assert.equal(kv.numUsed, 2, 'still held by the second request');
  kv.release(second);
  assert.equal(kv.numUsed, 0);
  assert.equal(kv.usage, 0);
  // A third request hits the now-free blocks: they leave the free queue.
  assert.equal(kv.countFreeHits(hashes, 2), 2);
  const third: number[] = [];
  kv.acquireHits(hashes, 2, third);
  assert.equal(kv.numFree, 4);
  assert.equal(kv.usage, 2 / 6);
  assert.ok(!kv.freeQueue().includes(first[0]!));
  // Allocation beyond the free count fails and changes nothing.
  const none: number[] = [];
  assert.equal(kv.allocate(5, none), false);
  assert.deepEqual(none, []);
  assert.equal(kv.numFree, 4);
  // A duplicate hash keeps the first cached copy.
  const dup: number[] = [];
  kv.allocate(1, dup);
  assert.equal(kv.cacheBlock(dup[0]!, hashes[0]!), false);
  assert.throws(() => kv.release([dup[0]!, dup[0]!]), /not referenced/);
});

test('clearCache drops hashes of free blocks only', () => {
  const kv = new KvCache(4, 2);
  const hashes = hashFullBlocks(seqTokens(4), 2);
  const held: number[] = [];
  kv.allocate(2, held);
  kv.cacheBlock(held[0]!, hashes[0]!);
  kv.cacheBlock(held[1]!, hashes[1]!);
  kv.release([held[1]!]);
  assert.equal(kv.clearCache(), 1);
  assert.ok(kv.isCached(hashes[0]!));
  assert.ok(!kv.isCached(hashes[1]!));
});
