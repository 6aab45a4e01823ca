import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { Deque } from '../../../src/sim/engine/deque.js';
import { Histogram, TTFT_BUCKETS_S } from '../../../src/sim/engine/histogram.js';
import { LoraSlots } from '../../../src/sim/engine/lora-slots.js';
import { findProfile, PROFILES, resolveProfile, stepDurationMs } from '../../../src/sim/engine/profiles.js';

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

test('profiles: step-time model and the calibration points from PROTOCOLS §i', () => {
  const p8 = PROFILES['llama-3.1-8b-h100'];
  assert.equal(stepDurationMs(p8, 1, 0), 12, 'ITL at low batch ≈ 12–13 ms');
  assert.equal(stepDurationMs(p8, 100, 0), 12, 'flat below the saturation batch');
  assert.ok(Math.abs(stepDurationMs(p8, 256, 0) - 25.6) < 1e-9, 'linear above it');
  const loaded = stepDurationMs(p8, 160, p8.maxNumBatchedTokens - 160);
  assert.ok(loaded >= 60 && loaded <= 100, `160 running + a prefill chunk: ${loaded} ms (SGLang sample ~75–100)`);
  assert.equal(p8.numGpuBlocks * p8.blockSize >= 420_000, true, '≈ 425k KV tokens');
  const p32 = PROFILES['qwen3-32b-2xh100'];
  assert.equal(stepDurationMs(p32, 1, 0), 25);
  assert.ok(p32.numGpuBlocks * p32.blockSize >= 285_000 && p32.numGpuBlocks * p32.blockSize <= 295_000);
  assert.equal(stepDurationMs(PROFILES.zero, 500, 5000, 3), 0);
  assert.equal(stepDurationMs(PROFILES.tiny, 1, 0, 1), 4 + 10, 'a LoRA load adds to the step');
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
