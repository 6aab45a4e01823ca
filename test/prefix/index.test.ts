import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Endpoint } from '../../src/core/endpoint.js';
import { blockHashes } from '../../src/prefix/block-hash.js';
import { MAX_BLOCKS_PER_ENDPOINT, MAX_INDEX_ENTRIES, PrefixIndex } from '../../src/prefix/index.js';
import { promptText, renderMessages, withAnswer } from '../../src/prefix/prompt-text.js';
import { endpoints } from '../scheduling/support.js';

test('block hashes: full blocks only, chained (a hash stands for its whole prefix), seeded by the model', () => {
  const a = blockHashes('a'.repeat(64 * 3 + 10), 'm');
  assert.equal(a.length, 3, 'the trailing partial block is not hashed');
  const b = blockHashes(`${'a'.repeat(64)}${'b'.repeat(64)}${'a'.repeat(64)}`, 'm');
  assert.equal(a[0], b[0]);
  assert.notEqual(a[2], b[2], 'same third block, different prefix: different hash');
  assert.notEqual(blockHashes('a'.repeat(64), 'lora-1')[0], blockHashes('a'.repeat(64), 'lora-2')[0], 'adapters never share entries');
  assert.equal(blockHashes('a'.repeat(64 * 10), 'm', 64, 4).length, 4, 'capped at maxBlocks');
});

test('prompt text: a conversation plus its answer is a prefix of the next turn', () => {
  const turn1 = [{ role: 'user', content: 'Hello there, how are you?' }];
  const turn2 = [...turn1, { role: 'assistant', content: 'Fine, thanks.' }, { role: 'user', content: [{ type: 'text', text: 'And now?' }] }];
  const recorded = withAnswer({ messages: turn1 }, 'Fine, thanks.');
  assert.ok(recorded !== undefined && renderMessages(turn2).startsWith(recorded));
  assert.equal(promptText({ prompt: ['a', 'b'] }), 'a\nb');
  assert.equal(withAnswer({ prompt: 'Q: ' }, 'A'), 'Q: A');
  // The Responses API's input is a prompt too (issue 9): instructions as a system turn, then input.
  assert.equal(promptText({ input: 'x' }), 'user\nx\n\n');
  assert.equal(promptText({ instructions: 'Be brief.', input: [{ role: 'user', content: [{ type: 'input_text', text: 'Hi' }] }] }), 'system\nBe brief.\n\nuser\nHi\n\n');
  const responsesTurn2 = { input: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }, { role: 'user', content: 'z' }] };
  assert.ok(promptText(responsesTurn2)?.startsWith(withAnswer({ input: 'x' }, 'y') ?? '-'), 'a Responses conversation is a prefix of its next turn too');
  assert.equal(promptText({ input: ['a', 'b'] }), 'a\nb', 'embeddings input');
});

test('index: matches leading blocks per endpoint, LRU-evicts beyond the capacity the server reports, forgets removed endpoints', () => {
  const index = new PrefixIndex({ defaultCapacity: 1000 });
  const [a, b] = endpoints([{}, {}]) as [Endpoint, Endpoint];
  const h = blockHashes('p'.repeat(64 * 10), 'm');
  index.record(a, h);
  index.record(b, h.subarray(0, 3));
  const out = new Int32Array(2);
  index.match(h, [a, b], out);
  assert.deepEqual([...out], [10, 3]);

  // KV capacity from the server: 4 blocks of 16 tokens = 4 index blocks.
  a.metrics = { waitingRequests: 0, runningRequests: 0, kvCacheUsage: 0, blockSize: 16, numGpuBlocks: 4 };
  assert.equal(index.capacityOf(a), 4);
  const other = blockHashes('q'.repeat(64 * 2), 'm');
  index.record(a, other);
  assert.equal(index.entriesOf(a), 4, 'bounded by the capacity');
  index.match(other, [a], out);
  assert.equal(out[0], 2, 'the newest entries survive');
  index.match(h, [a], out);
  assert.equal(out[0], 0, 'the oldest (the head of the old prompt) were evicted first');

  index.retainOnly(new Set([b]));
  assert.equal(index.entriesOf(a), 0);
  assert.equal(index.size, 3);
});

test('prompt text is built only as far as it is hashed, its length counted whole: a huge body is not copied', async () => {
  const { promptOf, MAX_PREFIX_CHARS } = await import('../../src/prefix/prompt-text.js');
  const big = 'x'.repeat(4 * 1024 * 1024);
  const bodies: Array<[Record<string, unknown>, number]> = [
    [{ prompt: big }, big.length],
    [{ prompt: [big, big] }, 2 * big.length + 1],
    [{ messages: [{ role: 'user', content: big }, { role: 'user', content: [{ type: 'text', text: big }] }] }, 2 * (4 + 1 + big.length + 2)],
    [{ input: big }, 4 + 1 + big.length + 2],
    [{ prompt: Array.from({ length: 500_000 }, () => 12345) }, 500_000 * 5 + 499_999],
    [{ prompt: [Array.from({ length: 500_000 }, () => 7)] }, 500_000 * 2 - 1],
  ];
  for (const [body, chars] of bodies) {
    const p = promptOf(body);
    assert.ok(p !== undefined);
    assert.equal(p.text.length, MAX_PREFIX_CHARS);
    assert.equal(p.chars, chars);
    assert.equal(promptText(body)?.length, MAX_PREFIX_CHARS);
    assert.equal(withAnswer(body, 'more')?.length, MAX_PREFIX_CHARS);
  }
  // Short prompts are whole, and the answer still extends them.
  assert.equal(withAnswer({ messages: [{ role: 'user', content: 'hi' }] }, 'yo'), 'user\nhi\n\nassistant\nyo\n\n');
});

test('index: a server reporting an absurd KV size (2^53 − 1 blocks, Infinity, NaN) cannot grow the index past its caps', () => {
  const index = new PrefixIndex({ maxCapacity: 100, maxEntries: 250 });
  const [a, b, c] = endpoints([{}, {}, {}]) as [Endpoint, Endpoint, Endpoint];
  const huge = { waitingRequests: 0, runningRequests: 0, kvCacheUsage: 0, blockSize: 16 };
  a.metrics = { ...huge, numGpuBlocks: Number.MAX_SAFE_INTEGER };
  b.metrics = { ...huge, numGpuBlocks: Number.POSITIVE_INFINITY };
  c.metrics = { ...huge, numGpuBlocks: Number.NaN };
  assert.equal(index.capacityOf(a), 100, 'clamped to the per-endpoint cap');
  assert.equal(index.capacityOf(b), 100);
  assert.ok(index.capacityOf(c) >= 1 && index.capacityOf(c) <= 100, 'NaN falls back to a bounded default');
  for (let turn = 0; turn < 5; turn++) {
    for (const e of [a, b, c]) {
      const h = blockHashes(`${turn}${e.name}`.padEnd(64 * 400, 'x'), 'm');
      assert.doesNotThrow(() => index.record(e, h));
      assert.ok(index.entriesOf(e) <= 100, `endpoint ${e.name} holds ${index.entriesOf(e)}`);
    }
    assert.ok(index.size <= 250, `the whole index holds ${index.size}`);
  }
  let n = 0;
  for (const e of [a, b, c]) n += index.entriesOf(e);
  assert.equal(index.size, n, 'size is the sum of what endpoints hold');
  const out = new Int32Array(1);
  const last = blockHashes(`4${a.name}`.padEnd(64 * 400, 'x'), 'm');
  index.match(last.subarray(last.length - 1), [a], out);
  assert.equal(out[0], 1, 'the newest block survives');
});

test('index: the default caps bound one endpoint reporting 2^53 − 1 blocks', () => {
  const index = new PrefixIndex();
  const [a] = endpoints([{ metrics: { blockSize: 16, numGpuBlocks: Number.MAX_SAFE_INTEGER } }]) as [Endpoint];
  assert.equal(index.capacityOf(a), MAX_BLOCKS_PER_ENDPOINT);
  assert.ok(MAX_BLOCKS_PER_ENDPOINT <= MAX_INDEX_ENTRIES);
});

test('index: what clients send cannot grow it past its bounds: a chain longer than the capacity keeps its newest blocks, endpoints share maxEntries', () => {
  const index = new PrefixIndex({ maxCapacity: 64, defaultCapacity: 64, maxEntries: 200 });
  const all = endpoints(Array.from({ length: 10 }, () => ({})));
  let seed = 1;
  for (let i = 0; i < 300; i++) {
    const e = all[i % all.length] as Endpoint;
    // Chains of every length up to 5× the whole index: one huge prompt, many short ones.
    const h = blockHashes(`${seed++}`.padEnd(64 * ((i * 37) % 1000 + 1), 'x'), 'm');
    index.record(e, h);
    assert.ok(index.entriesOf(e) <= 64, `an endpoint holds ${index.entriesOf(e)}`);
    assert.ok(index.size <= 200, `the whole index holds ${index.size}`);
    let sum = 0;
    for (const x of all) sum += index.entriesOf(x);
    assert.equal(index.size, sum, 'size is the sum of what endpoints hold');
    // The newest block of the newest chain is always held.
    const out = new Int32Array(1);
    index.match(h.subarray(h.length - 1), [e], out);
    assert.equal(out[0], 1);
  }
});
