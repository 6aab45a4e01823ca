import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KvBlockIndex } from '../../src/kvevents/block-index.js';
import { blockKeys } from '../../src/kvevents/block-keys.js';
import type { BlockRemovedEvent, BlockStoredEvent, KvEvent, KvEventBatch, KvMedium } from '../../src/kvevents/events.js';

const BS = 16;
const A = '10.0.0.1:8000';
const B = '10.0.0.2:8000';

function tokens(n: number, from = 0): number[] {
  return Array.from({ length: n }, (_, i) => 1000 + from + i);
}

function stored(hashes: readonly bigint[], parent: bigint | null, tokenIds: readonly number[], o: { medium?: KvMedium; blockSize?: number; lora?: string | null; digest?: number | null } = {}): BlockStoredEvent {
  return { type: 'BlockStored', blockHashes: hashes, parentBlockHash: parent, tokenIds, blockSize: o.blockSize ?? BS, loraName: o.lora ?? null, medium: o.medium ?? 'GPU', extraKeysDigest: o.digest ?? null };
}

function removed(hashes: readonly bigint[], medium: KvMedium = 'GPU'): BlockRemovedEvent {
  return { type: 'BlockRemoved', blockHashes: hashes, medium };
}

function batch(...events: KvEvent[]): KvEventBatch {
  return { ts: 0, events, dataParallelRank: null };
}

function score(index: KvBlockIndex, keys: Float64Array, endpoints: string[], nowMs?: number): number[] {
  const out = new Float64Array(endpoints.length);
  index.match(keys, endpoints, out, nowMs);
  return [...out];
}

test('block keys: a request and the same tokens as chained events give the same keys; LoRA and extra keys separate', () => {
  const t = tokens(80); // 5 full blocks and a partial one
  const whole = blockKeys(t, BS, null);
  assert.equal(whole.length, 5);
  const first = blockKeys(t.slice(0, 32), BS, null);
  const rest = blockKeys(t.slice(32, 80), BS, null, { parent: first[1]! });
  assert.deepEqual([...first, ...rest], [...whole]);
  assert.deepEqual([...blockKeys(t, BS, null, { maxBlocks: 2 })], [...whole.slice(0, 2)]);
  const lora = blockKeys(t, BS, 'adapter-a');
  const digest = blockKeys(t, BS, null, { extraDigest: 42 });
  for (let i = 0; i < 5; i++) {
    assert.notEqual(lora[i], whole[i]);
    assert.notEqual(digest[i], whole[i]);
    assert.notEqual(lora[i], blockKeys(t, BS, 'adapter-b')[i]);
  }
  assert.ok(whole.every((k) => Number.isSafeInteger(k) && k >= 0));
});

test('a request matches blocks that arrived as several chained BlockStored events, whatever the engine hashes', () => {
  const index = new KvBlockIndex();
  const t = tokens(64);
  // Engine hashes are arbitrary 64-bit values (here near 2^64): only token ids make keys.
  index.apply(A, batch(stored([0xffffffffffffff01n, 0xffffffffffffff02n], null, t.slice(0, 32))), BS);
  index.apply(A, batch(stored([7n, 8n], 0xffffffffffffff02n, t.slice(32, 64))), BS);
  assert.deepEqual(score(index, blockKeys(t, BS, null), [A, B]), [4, 0]);
  // A request sharing the first 3 blocks only, then diverging.
  const other = [...t.slice(0, 48), ...tokens(32, 5000)];
  assert.deepEqual(score(index, blockKeys(other, BS, null), [A]), [3]);
  // A LoRA request with the same tokens matches nothing: adapters never share blocks.
  assert.deepEqual(score(index, blockKeys(t, BS, 'adapter-a'), [A]), [0]);
  const s = index.stats();
  assert.equal(s.lookups, 3);
  assert.equal(s.hitBlocks, 4 + 3);
  assert.equal(s.entries, 4);
});

test('the longest prefix per endpoint, weighted by medium (GPU 1.0, CPU 0.8, best of both)', () => {
  const index = new KvBlockIndex();
  const t = tokens(64);
  const keys = blockKeys(t, BS, null);
  index.apply(A, batch(stored([1n, 2n, 3n, 4n], null, t)), BS);
  index.apply(B, batch(stored([1n, 2n, 3n], null, t.slice(0, 48), { medium: 'CPU' })), BS);
  const [a, b] = score(index, keys, [A, B]);
  assert.equal(a, 4);
  assert.ok(Math.abs(b! - 3 * 0.8) < 1e-9, `B scored ${b}`);
  // B's first block also on GPU: it counts 1.0 (max across tiers).
  index.apply(B, batch(stored([1n], null, t.slice(0, 16))), BS);
  assert.ok(Math.abs(score(index, keys, [B])[0]! - (1 + 2 * 0.8)) < 1e-9);
});

test('removal is reference-counted: GPU and CPU copies, and two engine hashes with the same tokens', () => {
  const index = new KvBlockIndex();
  const t = tokens(32);
  const keys = blockKeys(t, BS, null);
  index.apply(A, batch(stored([1n, 2n], null, t), stored([1n, 2n], null, t, { medium: 'CPU' })), BS);
  index.apply(A, batch(removed([1n, 2n], 'GPU')), BS);
  assert.ok(Math.abs(score(index, keys, [A])[0]! - 1.6) < 1e-9, 'the CPU copies remain');
  index.apply(A, batch(removed([1n, 2n], 'CPU')), BS);
  assert.deepEqual(score(index, keys, [A]), [0]);
  // Two engine hash chains for the same tokens (e.g. two hash seeds): one block key, two refs.
  index.apply(A, batch(stored([10n, 11n], null, t), stored([20n, 21n], null, t)), BS);
  index.apply(A, batch(removed([10n, 11n])), BS);
  assert.deepEqual(score(index, keys, [A]), [2]);
  index.apply(A, batch(removed([20n])), BS);
  assert.deepEqual(score(index, keys, [A]), [0], 'the first block is gone, so no prefix matches');
  // A removal of a hash never seen (stored before we listened) changes nothing.
  index.apply(A, batch(removed([999n])), BS);
  assert.equal(index.entriesOf(A), 1);
});

test('AllBlocksCleared drops the endpoint’s blocks and nobody else’s', () => {
  const index = new KvBlockIndex();
  const t = tokens(32);
  const keys = blockKeys(t, BS, null);
  index.apply(A, batch(stored([1n, 2n], null, t)), BS);
  index.apply(B, batch(stored([1n, 2n], null, t)), BS);
  index.apply(A, batch({ type: 'AllBlocksCleared' }), BS);
  assert.deepEqual(score(index, keys, [A, B]), [0, 2]);
  assert.equal(index.stats().entries, 2);
  // And it rebuilds from what follows.
  index.apply(A, batch(stored([5n], null, t.slice(0, 16))), BS);
  assert.deepEqual(score(index, keys, [A]), [1]);
});

test('a block whose parent the index does not know is an orphan: counted and skipped', () => {
  const index = new KvBlockIndex();
  const t = tokens(32);
  const problems = index.apply(A, batch(stored([2n], 1n, t.slice(16, 32)), stored([3n], null, t.slice(0, 16))), BS);
  assert.deepEqual([...problems], [['orphan_block', 1]]);
  assert.equal(index.entriesOf(A), 1, 'the rest of the batch applies');
  assert.equal(index.stats().problems.get('orphan_block'), 1);
});

test('an engine block size that is a multiple splits into sub-blocks (removed together); any other is a mismatch', () => {
  const index = new KvBlockIndex();
  const t = tokens(128);
  const keys = blockKeys(t, BS, null);
  // Engine blocks of 64 tokens, pool blocks of 16: 2 engine blocks = 8 pool blocks.
  assert.equal(index.apply(A, batch(stored([1n, 2n], null, t, { blockSize: 64 })), BS).size, 0);
  assert.deepEqual(score(index, keys, [A]), [8]);
  // A request that only shares 40 tokens matches 2 full pool blocks.
  assert.deepEqual(score(index, blockKeys([...t.slice(0, 40), ...tokens(40, 9000)], BS, null), [A]), [2]);
  // The child of a split block chains on its last sub-block.
  const more = tokens(64, 128);
  index.apply(A, batch(stored([3n], 2n, more, { blockSize: 64 })), BS);
  assert.deepEqual(score(index, blockKeys([...t, ...more], BS, null), [A]), [12]);
  index.apply(A, batch(removed([2n])), BS);
  assert.deepEqual(score(index, keys, [A]), [4], 'all four sub-blocks of engine block 2 are gone');
  // 24-token engine blocks cannot be cut into 16-token blocks.
  const p = index.apply(B, batch(stored([1n], null, tokens(24), { blockSize: 24 })), BS);
  assert.deepEqual([...p], [['block_size_mismatch', 1]]);
  assert.equal(index.entriesOf(B), 0);
  // Token count that does not match blocks × block size.
  assert.deepEqual([...index.apply(B, batch(stored([1n, 2n], null, tokens(16))), BS)], [['malformed_event', 1]]);
});

test('memory bounds hold under a flood of 10^6 distinct blocks (per endpoint and global)', () => {
  const index = new KvBlockIndex({ maxBlocksPerEndpoint: 50_000, maxBlocks: 80_000 });
  const per = 1000; // blocks per event
  let h = 1n;
  for (let e = 0; e < 1000; e++) {
    const hashes: bigint[] = [];
    for (let i = 0; i < per; i++) hashes.push(h++);
    const t = tokens(per * BS, e * per * BS);
    // Alternate endpoints A and B; each event starts a new sequence.
    index.apply(e % 2 === 0 ? A : B, batch(stored(hashes, null, t)), BS);
  }
  const s = index.stats();
  assert.ok(index.entriesOf(A) <= 50_000 && index.entriesOf(B) <= 50_000);
  assert.ok(s.entries <= 80_000, `entries ${s.entries}`);
  assert.equal(s.entries, index.entriesOf(A) + index.entriesOf(B));
  assert.equal(s.evicted, 1_000_000 - s.entries);
  // The newest blocks survive: the last event's sequence (on B) matches in full.
  const last = tokens(per * BS, 999 * per * BS);
  assert.deepEqual(score(index, blockKeys(last, BS, null), [B]), [per]);
});

test('speculative blocks count until their BlockStored arrives or the TTL passes', () => {
  let now = 1_000;
  const index = new KvBlockIndex({ speculativeTtlMs: 2_000, now: () => now });
  const t = tokens(48);
  const keys = blockKeys(t, BS, null);
  index.speculate(A, keys);
  assert.deepEqual(score(index, keys, [A, B]), [3, 0]);
  now = 2_500;
  assert.deepEqual(score(index, keys, [A]), [3], 'still within the TTL');
  // The real events confirm two of the blocks; those stay after the TTL.
  index.apply(A, batch(stored([1n, 2n], null, t.slice(0, 32))), BS);
  now = 3_001;
  assert.deepEqual(score(index, keys, [A]), [2]);
  assert.equal(index.stats().speculative, 0, 'expired and confirmed entries are gone');
  // Bounded: only the newest maxSpeculativePerEndpoint blocks are kept.
  const small = new KvBlockIndex({ maxSpeculativePerEndpoint: 10, now: () => now });
  small.speculate(B, blockKeys(tokens(100 * BS), BS, null));
  assert.equal(small.stats().speculative, 10);
});

test('dropEndpoint forgets one endpoint entirely', () => {
  const index = new KvBlockIndex();
  const t = tokens(32);
  const keys = blockKeys(t, BS, null);
  index.apply(A, batch(stored([1n, 2n], null, t)), BS);
  index.apply(B, batch(stored([1n, 2n], null, t)), BS);
  index.speculate(A, blockKeys(tokens(64, 7000), BS, null));
  index.dropEndpoint(A);
  assert.equal(index.has(A), false);
  assert.deepEqual(score(index, keys, [A, B]), [0, 2]);
  const s = index.stats();
  assert.equal(s.entries, 2);
  assert.equal(s.endpoints, 1);
  assert.equal(s.speculative, 0);
});
