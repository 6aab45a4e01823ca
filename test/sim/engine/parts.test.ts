import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { Deque } from '../../../src/sim/engine/deque.js';
import { Histogram, TTFT_BUCKETS_S } from '../../../src/sim/engine/histogram.js';
import { LoraSlots } from '../../../src/sim/engine/lora-slots.js';
import { chunkContextPairs, findProfile, PROFILES, resolveProfile, stepDurationMs, type StepWork } from '../../../src/sim/engine/profiles.js';

test('histogram: cumulative `le` buckets with +Inf, sum and count', () => {
  const h = new Histogram(TTFT_BUCKETS_S);
  for (const v of [0.001, 0.0011, 0.3, 5000]) h.observe(v);
  const s = h.snapshot();
  assert.equal(s.buckets.length, TTFT_BUCKETS_S.length + 1);
  assert.deepEqual(s.buckets[0], { le: 0.001, count: 1 }, 'a value on a bound falls in that bucket');
  assert.deepEqual(s.buckets[1], { le: 0.005, count: 2 });
  assert.equal(s.buckets.find((b) => b.le === 0.5)?.count, 3);
  assert.deepEqual(s.buckets.at(-2), { le: 2560, count: 3 });
  assert.deepEqual(s.buckets.at(-1), { le: Infinity, count: 4 });
  assert.equal(s.count, 4);
  assert.ok(Math.abs(s.sum - 5000.3021) < 1e-9);
});

test('deque: both ends, growth, iteration order', () => {
  const d = new Deque<number>();
  for (let i = 0; i < 40; i++) d.pushBack(i);
  for (let i = 1; i <= 5; i++) d.pushFront(-i);
  assert.equal(d.length, 45);
  assert.deepEqual([...d].slice(0, 7), [-5, -4, -3, -2, -1, 0, 1]);
  assert.equal(d.popFront(), -5);
  assert.equal(d.peekFront(), -4);
  while (d.length > 1) d.popFront();
  assert.equal(d.popFront(), 39);
  assert.equal(d.popFront(), undefined);
});

test('LoRA slots: pinned while running, idle adapters stay resident until evicted (LRU)', () => {
  const s = new LoraSlots(2);
  assert.equal(s.acquire('a'), 'loaded');
  assert.equal(s.acquire('a'), 'resident');
  assert.equal(s.acquire('b'), 'loaded');
  assert.equal(s.canAcquire('c'), false);
  assert.equal(s.acquire('c'), 'blocked');
  s.release('b');
  assert.deepEqual(s.running(), ['a']);
  assert.deepEqual(s.resident(), ['a', 'b'], 'b stays resident while idle');
  assert.equal(s.acquire('b'), 'resident', 'no reload');
  s.release('b');
  s.release('a');
  s.release('a');
  assert.equal(s.acquire('c'), 'loaded', 'evicts the least recently used idle adapter (a)');
  assert.deepEqual(s.resident().sort(), ['b', 'c']);
  assert.throws(() => s.release('a'), /released more often/);
});

test('profiles: the step-time model has its terms (floor, GEMM slope, attention, overheads)', () => {
  const work = (w: Partial<StepWork>): StepWork => ({ decodeTokens: 0, prefillTokens: 0, decodeContextTokens: 0, prefillContextPairs: 0, loraLoads: 0, ...w });
  const p8 = PROFILES['llama-3.1-8b-h100'];
  const floor = p8.stepOverheadMs + p8.decodeFloorMs;
  assert.ok(Math.abs(stepDurationMs(p8, work({ decodeTokens: 1 })) - 6.44) < 1e-9, 'ITL at batch 1, no context: 6.44 ms (§i.6)');
  assert.equal(stepDurationMs(p8, work({ decodeTokens: 60 })), floor, 'flat below the saturation batch');
  const big = stepDurationMs(p8, work({ decodeTokens: 256 }));
  assert.ok(Math.abs(big - (p8.stepOverheadMs + 256 * p8.decodePerTokenMs)) < 1e-9, 'linear above it');
  assert.ok(
    Math.abs(stepDurationMs(p8, work({ decodeTokens: 1, decodeContextTokens: 32_768 })) - (6.44 + 32_768 * 4.37e-5)) < 1e-9,
    'a decode step grows with the context it reads',
  );
  // Attention pairs of a prompt do not depend on how it is chunked: P²/2 in total.
  const chunks = [0, 2048, 4096].map((c) => chunkContextPairs(c, 2048)).reduce((a, b) => a + b, 0);
  assert.equal(chunks, chunkContextPairs(0, 6144));
  assert.equal(chunkContextPairs(0, 6144), (6144 * 6144) / 2);
  assert.ok(stepDurationMs(p8, work({ prefillTokens: 2048, prefillContextPairs: chunkContextPairs(8192, 2048) })) > stepDurationMs(p8, work({ prefillTokens: 2048, prefillContextPairs: chunkContextPairs(0, 2048) })), 'a later chunk costs more');
  assert.equal(p8.numGpuBlocks * p8.blockSize >= 420_000, true, '≈ 425k KV tokens');
  const p32 = PROFILES['qwen3-32b-2xh100'];
  assert.ok(stepDurationMs(p32, work({ decodeTokens: 1 })) > stepDurationMs(p8, work({ decodeTokens: 1 })), '32B TP 2 decodes slower than 8B');
  assert.ok(p32.numGpuBlocks * p32.blockSize >= 285_000 && p32.numGpuBlocks * p32.blockSize <= 295_000);
  assert.equal(stepDurationMs(PROFILES.zero, work({ decodeTokens: 500, prefillTokens: 5000, decodeContextTokens: 1e6, prefillContextPairs: 1e9, loraLoads: 3 })), 0);
  assert.equal(stepDurationMs(PROFILES.tiny, work({ decodeTokens: 1, loraLoads: 1 })), 4 + 10, 'a LoRA load adds to the step');
  assert.equal(stepDurationMs(PROFILES.tiny, work({ decodeTokens: 1, decodeContextTokens: 500 })), 4, 'tiny has no attention terms (hand-computable tests)');
  for (const p of Object.values(PROFILES)) assert.deepEqual(resolveProfile(p), p, `${p.name} is valid`);
  assert.equal(findProfile('tiny'), PROFILES.tiny);
  assert.equal(findProfile('toString'), undefined);
  assert.throws(() => resolveProfile(PROFILES.tiny, { maxModelLen: 1_000_000 }), /does not fit the KV cache/);
  assert.throws(() => resolveProfile(PROFILES.tiny, { maxNumSeqs: 0 }), /maxNumSeqs/);
  assert.equal(resolveProfile(PROFILES.tiny, { numGpuBlocks: undefined, maxNumSeqs: 3 }).maxNumSeqs, 3);
});

test('an idle clock with pending timers does not keep the process alive', () => {
  const clockUrl = new URL('../../../src/sim/engine/index.js', import.meta.url).href;
  const script = `
    import { SimClock, Engine, PROFILES } from ${JSON.stringify(clockUrl)};
    const clock = new SimClock({ timeScale: 1 });
    clock.setTimeout(() => console.log('fired'), 60_000);
    const engine = new Engine({ model: 'm', profile: PROFILES.tiny, clock });
    engine.submit({ model: 'm', prompt: 'hello', maxTokens: 1000 }, { onToken: () => {} });
    console.log('started');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000, cwd: fileURLToPath(new URL('.', import.meta.url)) });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'started');
});
