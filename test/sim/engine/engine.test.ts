import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkErrorMessage, EngineRequestError } from '../../../src/sim/engine/request.js';
import { generateAnswer } from '../../../src/sim/engine/output.js';
import { renderChat, tokenize } from '../../../src/sim/engine/tokenizer.js';
import { Engine, type KvEvent } from '../../../src/sim/engine/engine.js';
import { PROFILES } from '../../../src/sim/engine/profiles.js';
import { commonPrefix, filler, inClock, later, run, tinyEngine, type Outcome } from './helpers.js';

/** Modelled times are sums of float durations from an arbitrary base: compare them to 1 ns. */
const round = (x: number | null): number | null => (x === null ? null : Math.round(x * 1e6) / 1e6);

const ids = (n: number, salt = 0): number[] => Array.from({ length: n }, (_, i) => (Math.imul(i + 1, 2654435761) ^ salt) >>> 0);

test('one request on an idle engine: modelled TTFT, ITL and e2e follow the profile exactly', async () => {
  const { clock, engine, done } = tinyEngine();
  try {
    // tiny: overhead 2 ms; 100 prompt tokens in one step = max(4, 100 × 0.05) = 5 ms; decode steps 4 ms.
    const { result } = await inClock(clock, () => run(engine, { model: 'tiny-model', promptTokens: ids(100), maxTokens: 5, ignoreEos: true }));
    assert.equal(result.ttftMs, 7);
    assert.equal(result.e2eMs, 7 + 4 * 4);
    assert.equal(result.queueMs, 0);
    assert.equal(result.completionTokens, 5);
    assert.equal(result.finishReason, 'length');
    const s = engine.stats();
    assert.equal(s.histograms.ttft.count, 1);
    assert.equal(s.histograms.interTokenLatency.count, 4);
    assert.ok(Math.abs(s.histograms.interTokenLatency.sum - 0.016) < 1e-9);
    assert.equal(s.promptTokensTotal, 100);
    assert.equal(s.generationTokensTotal, 5);
    assert.deepEqual(s.requestSuccessTotal, { stop: 0, length: 1, abort: 0 });
    assert.equal(s.stepsTotal, 5);
    assert.equal(s.running + s.waiting + s.arriving, 0);
  } finally {
    done();
  }
});

test('a second request sharing a long prefix hits the cache: lower TTFT, hits = shared full-block tokens', async () => {
  const { clock, engine, done } = tinyEngine();
  try {
    const system = { role: 'system', content: filler(450, 7) };
    const p1 = tokenize(renderChat([system, { role: 'user', content: 'first question about caching' }]));
    const p2 = tokenize(renderChat([system, { role: 'user', content: 'a different second question' }]));
    const shared = commonPrefix(p1, p2);
    assert.ok(shared > 300 && p1.length < 900, `shared ${shared} of ${p1.length}`);
    const a = (await inClock(clock, () => run(engine, { model: 'tiny-model', promptTokens: p1, maxTokens: 4 }))).result;
    const before = engine.stats();
    assert.equal(before.prefixHitsTokens, 0);
    assert.equal(before.prefixQueriesTokens, p1.length);
    const b = (await run(engine, { model: 'tiny-model', promptTokens: p2, maxTokens: 4 })).result;
    const after = engine.stats();
    const expectedHit = Math.floor(shared / 16) * 16;
    assert.equal(after.prefixHitsTokens - before.prefixHitsTokens, expectedHit);
    assert.equal(after.prefixQueriesTokens - before.prefixQueriesTokens, p2.length);
    assert.equal(b.cachedTokens, expectedHit);
    assert.equal(a.cachedTokens, 0);
    assert.ok(b.ttftMs !== null && a.ttftMs !== null && b.ttftMs < a.ttftMs / 2, `ttft ${a.ttftMs} -> ${b.ttftMs}`);
    // The same prompt again: everything but the last token is served from the cache.
    const c = (await run(engine, { model: 'tiny-model', promptTokens: p1, maxTokens: 4 })).result;
    assert.equal(c.cachedTokens, Math.floor((p1.length - 1) / 16) * 16);
  } finally {
    done();
  }
});

test('a burst queues: waiting and KV usage rise, maxNumSeqs holds, everything drains back to 0', async () => {
  const { clock, engine, done } = tinyEngine();
  try {
    let maxWaiting = 0;
    let maxRunning = 0;
    let maxUsage = 0;
    const sample = (): void => {
      const s = engine.stats();
      maxWaiting = Math.max(maxWaiting, s.waiting);
      maxRunning = Math.max(maxRunning, s.running);
      maxUsage = Math.max(maxUsage, s.kvUsage);
    };
    const outs = await inClock(clock, () =>
      Array.from({ length: 30 }, (_, i) => run(engine, { model: 'tiny-model', promptTokens: ids(40, i), maxTokens: 12, ignoreEos: true }, sample)),
    );
    const results = await Promise.all(outs);
    assert.ok(maxWaiting >= 20, `max waiting ${maxWaiting}`);
    assert.equal(maxRunning, 8, 'maxNumSeqs of the tiny profile');
    assert.ok(maxUsage > 0.1, `max usage ${maxUsage}`);
    for (const r of results) assert.equal(r.result.completionTokens, 12);
    // FCFS: queue time grows with arrival order.
    const q = results.map((r) => r.result.queueMs ?? -1);
    assert.equal(q[0], 0);
    assert.ok(q[29]! > q[8]!, 'later requests queued longer');
    const s = engine.stats();
    assert.equal(s.waiting, 0);
    assert.equal(s.running, 0);
    assert.equal(s.kvUsage, 0);
    assert.equal(s.usedBlocks, 0);
    assert.equal(s.histograms.queueTime.count, 30);
    assert.equal(s.histograms.e2eLatency.count, 30);
  } finally {
    done();
  }
});

test('a KV cache too small preempts (recompute); every request still finishes with the right tokens', async () => {
  // 24 blocks = 384 tokens; 6 requests × (100 prompt + 150 output) need ~96 blocks.
  const { clock, engine, done } = tinyEngine({ overrides: { numGpuBlocks: 24, maxModelLen: 384 } });
  try {
    let maxUsage = 0;
    const prompts = Array.from({ length: 6 }, (_, i) => ids(100, 1000 + i));
    const outs = await inClock(clock, () =>
      prompts.map((p) =>
        run(engine, { model: 'tiny-model', promptTokens: p, maxTokens: 150, ignoreEos: true }, () => {
          maxUsage = Math.max(maxUsage, engine.stats().kvUsage);
        }),
      ),
    );
    const results: Outcome[] = await Promise.all(outs);
    const s = engine.stats();
    assert.ok(s.preemptionsTotal > 0, 'preempted');
    assert.ok(results.some((r) => r.result.preemptions > 0));
    assert.ok(maxUsage > 0.9, `usage peaked at ${maxUsage}`);
    results.forEach((r, i) => {
      assert.equal(r.result.finishReason, 'length');
      assert.equal(r.result.completionTokens, 150);
      assert.deepEqual(r.indexes, Array.from({ length: 150 }, (_, k) => k));
      assert.deepEqual(r.texts, generateAnswer(prompts[i]!, 'tiny-model', 150, true).texts);
    });
    assert.equal(s.usedBlocks, 0);
    assert.equal(s.waiting + s.running, 0);
  } finally {
    done();
  }
});

test('LoRA slots: with maxLoras 1, adapter b waits until adapter a has no running requests', async () => {
  const { clock, engine, done } = tinyEngine({ loras: ['a', 'b'], maxLoras: 1 });
  try {
    let sawBlockedB = false;
    const watch = (): void => {
      const l = engine.stats().lora;
      if (l.running.includes('a') && l.waiting.includes('b')) sawBlockedB = true;
      assert.ok(l.running.length <= 1);
    };
    const outs = await inClock(clock, () => [
      run(engine, { model: 'a', promptTokens: ids(30, 1), maxTokens: 20, ignoreEos: true }, watch),
      run(engine, { model: 'b', promptTokens: ids(30, 2), maxTokens: 20, ignoreEos: true }, watch),
      run(engine, { model: 'a', promptTokens: ids(30, 3), maxTokens: 30, ignoreEos: true }, watch),
      run(engine, { model: 'tiny-model', promptTokens: ids(30, 4), maxTokens: 5, ignoreEos: true }, watch),
    ]);
    const [a1, b, a2, base] = (await Promise.all(outs)).map((o) => o.result);
    assert.ok(sawBlockedB, 'waiting set showed b while a ran');
    const lastA = Math.max(a1!.finishMs, a2!.finishMs);
    const bScheduled = b!.arrivalMs + 2 /* API overhead */ + (b!.queueMs ?? 0);
    assert.ok(bScheduled >= lastA, `b scheduled at ${bScheduled}, a finished at ${lastA}`);
    assert.ok(base!.finishMs < lastA, 'base-model requests are not blocked by LoRA slots');
    // The first step prefilled a1, a2 and base (90 tokens) and loaded adapter a: 2 + max(4, 4.5) + 10.
    assert.equal(a1!.ttftMs, 16.5);
    assert.equal(base!.ttftMs, 16.5, 'the load stalls the whole batch, as in vLLM');
    const l = engine.stats().lora;
    assert.deepEqual(l, { maxLoras: 1, running: [], waiting: [], resident: ['b'], updatedAtSeconds: l.updatedAtSeconds });
    assert.ok(l.updatedAtSeconds > 1_700_000_000);
    // Adapters never share blocks with the base model or each other.
    const sameA = (await run(engine, { model: 'a', promptTokens: ids(30, 4), maxTokens: 1 })).result;
    assert.equal(sameA.cachedTokens, 0);
  } finally {
    done();
  }
});

test('prefillOnly stops after prefill with one token; remotePrefill skips prefill compute', async () => {
  const { clock, engine, done } = tinyEngine();
  try {
    const prompt = ids(600, 9);
    const pre = (await inClock(clock, () => run(engine, { model: 'tiny-model', promptTokens: prompt, prefillOnly: true }))).result;
    assert.equal(pre.completionTokens, 1);
    assert.equal(pre.finishReason, 'length');
    // 600 tokens in 128-token chunks: 4 steps of 6.4 ms + one of 88 × 0.05 = 4.4 ms; + 2 ms overhead.
    assert.ok(Math.abs(pre.ttftMs! - (2 + 4 * 6.4 + 4.4)) < 1e-9, `${pre.ttftMs}`);

    const remote = (await later(clock, 1000, () => run(engine, { model: 'tiny-model', promptTokens: ids(600, 10), maxTokens: 3, ignoreEos: true, remotePrefill: true }))).result;
    assert.equal(remote.ttftMs, 2 + 4, 'first token at the first decode step');
    assert.equal(remote.completionTokens, 3);
    assert.equal(remote.cachedTokens, 0);
    // Its prompt blocks are in the cache afterwards (the KV arrived), so a local request hits them.
    const local = (await run(engine, { model: 'tiny-model', promptTokens: ids(600, 10), maxTokens: 1 })).result;
    assert.equal(local.cachedTokens, Math.floor(599 / 16) * 16);
  } finally {
    done();
  }
});

test('prefill compute is counted: a remotePrefill request computes none of its prompt, a local one all of it', async () => {
  const { clock, engine, done } = tinyEngine();
  try {
    await inClock(clock, () => run(engine, { model: 'tiny-model', promptTokens: ids(300, 21), maxTokens: 4, ignoreEos: true, remotePrefill: true }));
    let s = engine.stats();
    assert.equal(s.prefillTokensTotal, 0, 'the KV arrived: no prompt token ran through a prefill chunk');
    assert.equal(s.remotePrefillTokensTotal, 300);
    assert.equal(s.generationTokensTotal, 4);
    await run(engine, { model: 'tiny-model', promptTokens: ids(300, 22), maxTokens: 4, ignoreEos: true });
    s = engine.stats();
    assert.equal(s.prefillTokensTotal, 300, 'a request served alone computes its whole prompt');
    assert.equal(s.remotePrefillTokensTotal, 300);
  } finally {
    done();
  }
});

test('awaitKv: blocks allocated at admission, onKvAllocated, no step until kvArrived, then one decode step to the first token', async () => {
  const { clock, engine, done } = tinyEngine();
  try {
    const prompt = ids(100, 25); // 7 blocks
    let allocatedAt = -1;
    let handle: ReturnType<Engine['submit']> | undefined;
    const finished = new Promise<Outcome['result']>((resolve) => {
      void inClock(clock, () => {
        handle = engine.submit(
          { model: 'tiny-model', promptTokens: prompt, maxTokens: 2, ignoreEos: true, remotePrefill: true, awaitKv: true },
          { onKvAllocated: () => (allocatedAt = clock.now()), onFinish: (r) => resolve(r) },
        );
      });
    });
    await later(clock, 50, () => undefined);
    const start = allocatedAt - 2; // after the 2 ms request overhead
    assert.ok(allocatedAt > 0, 'the blocks were allocated');
    let s = engine.stats();
    assert.deepEqual([s.awaitingKv, s.usedBlocks, s.running, s.waiting, s.stepsTotal], [1, 7, 0, 0, 0], 'holding 7 blocks, not running, no step');
    const arrivedAt = await later(clock, 0, () => {
      (handle as NonNullable<typeof handle>).kvArrived();
      return clock.now();
    });
    const r = await finished;
    assert.equal(round(r.ttftMs), round(arrivedAt - start + 4), 'first token one 4 ms decode step after the KV arrived');
    s = engine.stats();
    assert.deepEqual([s.awaitingKv, s.usedBlocks, s.prefillTokensTotal, s.remotePrefillTokensTotal], [0, 0, 0, 100]);

    // KV that arrives before the request is admitted: no wait at all.
    const early = await later(clock, 10, () =>
      new Promise<Outcome['result']>((resolve) => {
        const h = engine.submit({ model: 'tiny-model', promptTokens: ids(100, 26), maxTokens: 1, remotePrefill: true, awaitKv: true }, { onFinish: resolve });
        h.kvArrived();
      }),
    );
    assert.equal(early.ttftMs, 2 + 4);
    // Aborted while it waits: its blocks are freed.
    const aborted = await later(clock, 10, () =>
      new Promise<Outcome['result']>((resolve) => {
        const h = engine.submit({ model: 'tiny-model', promptTokens: ids(100, 27), maxTokens: 1, remotePrefill: true, awaitKv: true }, { onKvAllocated: () => h.abort(), onFinish: resolve });
      }),
    );
    assert.equal(aborted.finishReason, 'abort');
    assert.deepEqual([engine.stats().awaitingKv, engine.stats().usedBlocks], [0, 0]);
    assert.equal(engine.check({ model: 'tiny-model', prompt: 'x', awaitKv: true }).ok, false, 'awaitKv needs remotePrefill');
  } finally {
    done();
  }
});

test('holdKv keeps a finished request\'s blocks (used, still hits) until releaseKv; an idle engine then admits what waited for them', async () => {
  const { clock, engine, done } = tinyEngine({ overrides: { numGpuBlocks: 100 } });
  try {
    const prompt = ids(1000, 23); // 63 blocks of 100
    let handle: ReturnType<Engine['submit']> | undefined;
    const finished = new Promise<void>((resolve) => {
      void inClock(clock, () => {
        handle = engine.submit({ model: 'tiny-model', promptTokens: prompt, prefillOnly: true, holdKv: true }, { onFinish: () => resolve() });
        assert.equal(handle.heldKvBlocks, null, 'nothing held before it finishes');
      });
    });
    await finished;
    const h = handle as NonNullable<typeof handle>;
    assert.equal(h.heldKvBlocks?.length, Math.ceil(1000 / 16));
    assert.equal(engine.stats().usedBlocks, 63);
    assert.equal(engine.stats().heldKvBlocks, 63);
    // A second 1000-token prompt hits the held blocks (they are cached and referenced).
    const hit = (await run(engine, { model: 'tiny-model', promptTokens: prompt, maxTokens: 1 })).result;
    assert.equal(hit.cachedTokens, Math.floor(999 / 16) * 16);
    // A different 1010-token prompt needs 64 blocks; with 63 held only 37 are free, so it waits
    // (head of line) until the held blocks go.
    let admitted = false;
    const big = run(engine, { model: 'tiny-model', promptTokens: ids(1010, 24), maxTokens: 1 }).then((o) => {
      admitted = true;
      return o;
    });
    await later(clock, 200, () => undefined);
    assert.equal(admitted, false, 'the request waits for the held blocks');
    assert.equal(engine.stats().waiting, 1);
    h.releaseKv();
    h.releaseKv(); // the second time is a no-op
    assert.equal(h.heldKvBlocks, null);
    assert.equal((await big).result.completionTokens, 1, 'admitted once the blocks were released');
    assert.equal(engine.stats().heldKvBlocks, 0);
    assert.equal(engine.stats().usedBlocks, 0);
  } finally {
    done();
  }
});

test('abort frees blocks at once and finishes with "abort" (running, waiting, arriving)', async () => {
  const { clock, engine, done } = tinyEngine({ overrides: { maxNumSeqs: 1 } });
  try {
    const results = await inClock(clock, () => {
      const finished: Promise<Outcome>[] = [];
      let handle: ReturnType<typeof engine.submit> | undefined;
      finished.push(
        new Promise((resolve) => {
          const texts: string[] = [];
          const indexes: number[] = [];
          handle = engine.submit(
            { model: 'tiny-model', promptTokens: ids(200), maxTokens: 500, ignoreEos: true },
            {
              onToken(text, index) {
                texts.push(text);
                indexes.push(index);
                if (index === 5) {
                  handle?.abort();
                  assert.equal(engine.stats().usedBlocks, 0, 'blocks freed at once');
                }
              },
              onFinish: (result) => resolve({ result, texts, indexes }),
            },
          );
        }),
      );
      const waiting = engine.submit({ model: 'tiny-model', promptTokens: ids(50, 2), maxTokens: 5 }, {});
      finished.push(
        new Promise((resolve) => {
          const h = engine.submit({ model: 'tiny-model', promptTokens: ids(50, 3), maxTokens: 5 }, { onFinish: (result) => resolve({ result, texts: [], indexes: [] }) });
          h.abort(); // still in the API-server overhead
          assert.ok(h.finished);
        }),
      );
      clock.setTimeout(() => {
        assert.equal(engine.stats().waiting, 1);
        waiting.abort(); // waiting behind the long request (maxNumSeqs 1)
        assert.equal(engine.stats().waiting, 0);
      }, 10);
      return Promise.all(finished);
    });
    const [long, early] = results;
    assert.equal(long!.result.finishReason, 'abort');
    assert.equal(long!.result.completionTokens, 6);
    assert.equal(early!.result.finishReason, 'abort');
    assert.equal(early!.result.ttftMs, null);
    assert.equal(early!.result.queueMs, null);
    await clock.sleep(50);
    const s = engine.stats();
    assert.equal(s.requestSuccessTotal.abort, 3);
    assert.equal(s.usedBlocks + s.running + s.waiting + s.arriving, 0);
  } finally {
    done();
  }
});

test('multi-turn: turn 2 (turn 1 prompt + answer + new question) hits the answer blocks too', async () => {
  const { clock, engine, done } = tinyEngine();
  try {
    const turn1 = [
      { role: 'system', content: 'You are a helpful travel assistant.' },
      { role: 'user', content: filler(60, 3) },
    ];
    const p1 = tokenize(renderChat(turn1));
    const first = (await inClock(clock, () => run(engine, { model: 'tiny-model', prompt: renderChat(turn1), maxTokens: 100 }))).result;
    const answer = (await run(engine, { model: 'tiny-model', promptTokens: p1, maxTokens: 100 })).texts.join('');
    assert.ok(answer.startsWith(' tiny-model:'));
    const turn2 = renderChat([...turn1, { role: 'assistant', content: answer }, { role: 'user', content: 'And tomorrow?' }]);
    const before = engine.stats().prefixHitsTokens;
    const second = (await run(engine, { model: 'tiny-model', prompt: turn2, maxTokens: 10 })).result;
    const a1 = first.completionTokens;
    // Turn 1 computed P1 + A1 − 1 tokens (the last answer token is never computed).
    const expected = Math.floor((p1.length + a1 - 1) / 16) * 16;
    assert.ok(expected > Math.floor(p1.length / 16) * 16, 'answer blocks count');
    assert.equal(second.cachedTokens, expected);
    assert.equal(engine.stats().prefixHitsTokens - before, expected);
  } finally {
    done();
  }
});

test('time scale: the same scenario gives the same modelled results at scale 1 and 50', async () => {
  const scenario = async (scale: number): Promise<unknown[]> => {
    const { clock, engine, done } = tinyEngine({}, scale);
    try {
      const shared = ids(70, 5);
      // One callback fixes the base time; the others are relative to it.
      const outs = await inClock(clock, () => [
        run(engine, { model: 'tiny-model', promptTokens: shared, maxTokens: 8 }),
        later(clock, 3, () => run(engine, { model: 'tiny-model', promptTokens: [...shared, ...ids(20, 6)], maxTokens: 6, ignoreEos: true })),
        later(clock, 3.5, () => run(engine, { model: 'tiny-model', promptTokens: ids(150, 7), maxTokens: 5, ignoreEos: true })),
        later(clock, 21, () => run(engine, { model: 'tiny-model', promptTokens: shared, maxTokens: 4, ignoreEos: true })),
      ]);
      const results = await Promise.all(outs);
      return results.map(({ result: r }) => [round(r.ttftMs), round(r.e2eMs), round(r.queueMs), r.cachedTokens, r.completionTokens]);
    } finally {
      done();
    }
  };
  const slow = await scenario(1);
  const fast = await scenario(50);
  assert.deepEqual(fast, slow);
});

test('check(): unknown model, context length with vLLM wording, default maxTokens; submit throws', () => {
  const { engine, done } = tinyEngine({ loras: ['a'] });
  try {
    assert.deepEqual(engine.check({ model: 'nope', prompt: 'hi' }), { ok: false, error: { kind: 'unknown_model', model: 'nope' } });
    const long = engine.check({ model: 'a', promptTokens: ids(1000), maxTokens: 100 });
    assert.equal(long.ok, false);
    if (!long.ok) {
      assert.deepEqual(long.error, { kind: 'context_length', maxModelLen: 1024, requestedTokens: 1100, promptTokens: 1000, completionTokens: 100 });
      assert.equal(
        checkErrorMessage(long.error),
        "This model's maximum context length is 1024 tokens. However, you requested 1100 tokens (1000 in the messages, 100 in the completion). Please reduce the length of the messages or completion.",
      );
    }
    const noRoom = engine.check({ model: 'tiny-model', promptTokens: ids(1024) });
    assert.ok(!noRoom.ok && noRoom.error.kind === 'context_length' && noRoom.error.completionTokens === null);
    assert.match(checkErrorMessage(noRoom.error), /you requested 1024 tokens in the messages/);
    const ok = engine.check({ model: 'a', promptTokens: ids(1000) });
    assert.ok(ok.ok && ok.request.maxTokens === 24 && ok.request.adapter === 'a');
    assert.equal(engine.check({ model: 'tiny-model', prompt: '' }).ok, false);
    assert.equal(engine.check({ model: 'tiny-model', prompt: 'x', maxTokens: 0 }).ok, false);
    assert.throws(
      () => engine.submit({ model: 'nope', prompt: 'hi' }),
      (e: unknown) => e instanceof EngineRequestError && e.status === 404 && e.message === 'The model `nope` does not exist.',
    );
    assert.ok(engine.loadLora('c'));
    assert.equal(engine.check({ model: 'c', prompt: 'hi' }).ok, true);
    assert.ok(engine.unloadLora('c'));
    assert.equal(engine.check({ model: 'c', prompt: 'hi' }).ok, false);
  } finally {
    done();
  }
});

test('KV events: BlockStored for computed full blocks (prompt and answer), BlockRemoved on eviction', async () => {
  const events: KvEvent[] = [];
  const { clock, engine, done } = tinyEngine({ onKvEvent: (e) => events.push(e), overrides: { numGpuBlocks: 64, maxModelLen: 1024 } });
  try {
    const prompt = ids(40);
    const r = (await inClock(clock, () => run(engine, { model: 'tiny-model', promptTokens: prompt, maxTokens: 30, ignoreEos: true }))).result;
    const stored = events.filter((e) => e.type === 'BlockStored');
    // 40 + 30 tokens, the last never computed: 69 computed ⇒ 4 full blocks.
    assert.equal(stored.length, Math.floor((40 + r.completionTokens - 1) / 16));
    assert.equal(stored[0]!.type === 'BlockStored' && stored[0]!.parentBlockHash, null);
    if (stored[1]!.type === 'BlockStored') {
      assert.deepEqual(stored[1]!.tokenIds, prompt.slice(16, 32));
      assert.equal(stored[1]!.parentBlockHash, stored[0]!.blockHashes[0]);
    }
    // Fill the cache with other requests until the first one's blocks are evicted.
    const outs = await later(clock, 500, () => Array.from({ length: 6 }, (_, i) => run(engine, { model: 'tiny-model', promptTokens: ids(200, 50 + i), maxTokens: 40, ignoreEos: true })));
    await Promise.all(outs);
    const removed = new Set(events.filter((e) => e.type === 'BlockRemoved').map((e) => e.blockHashes[0]));
    assert.ok(stored.some((e) => removed.has(e.blockHashes[0])), 'old blocks evicted');
  } finally {
    done();
  }
});

test('KV events on resetPrefixCache: one AllBlocksCleared when nothing is left; BlockRemoved per dropped block while blocks are in use', async () => {
  const events: KvEvent[] = [];
  const { clock, engine, done } = tinyEngine({ onKvEvent: (e) => events.push(e), overrides: { numGpuBlocks: 64, maxModelLen: 1024 } });
  try {
    await inClock(clock, () => run(engine, { model: 'tiny-model', promptTokens: ids(48), maxTokens: 1 }));
    const finished = events.filter((e) => e.type === 'BlockStored').map((e) => e.blockHashes[0]);
    assert.equal(finished.length, 3);
    // A long request keeps its blocks while the cache is reset: only the finished one's go.
    events.length = 0;
    const long = inClock(clock, () => run(engine, { model: 'tiny-model', promptTokens: ids(40, 99), maxTokens: 200, ignoreEos: true }));
    await later(clock, 50, () => {
      const held = events.filter((e) => e.type === 'BlockStored').map((e) => e.blockHashes[0]);
      assert.ok(held.length > 0, 'the long request stored blocks');
      events.length = 0;
      assert.equal(engine.resetPrefixCache(), finished.length);
      assert.deepEqual(events.map((e) => e.type === 'BlockRemoved' && e.blockHashes[0]), finished);
    });
    await long;
    events.length = 0;
    engine.resetPrefixCache();
    assert.deepEqual(events.map((e) => e.type), ['AllBlocksCleared']);
    assert.equal(engine.stats().cachedBlocks, 0);
  } finally {
    done();
  }
});

test('llama-3.1-8b-h100: a 550-token prompt alone is one prefill step, then batch-1 decode steps that read a growing context', async () => {
  const { clock, engine, done } = tinyEngine({ profile: PROFILES['llama-3.1-8b-h100'] }, 1000);
  try {
    const p = engine.profile;
    const { result } = await inClock(clock, () => run(engine, { model: 'tiny-model', promptTokens: ids(550), maxTokens: 11, ignoreEos: true }));
    const prefill = p.stepOverheadMs + 550 * p.prefillPerTokenMs + ((550 * 550) / 2) * p.prefillContextMsPerPair;
    assert.ok(Math.abs(result.ttftMs! - (p.requestOverheadMs + prefill)) < 1e-9, `${result.ttftMs}`);
    // Decode step k reads the 550 + k tokens already in the KV.
    let decode = 0;
    for (let k = 0; k < 10; k++) decode += p.stepOverheadMs + p.decodeFloorMs + (550 + k) * p.decodeContextMsPerToken;
    assert.ok(Math.abs(result.e2eMs - (result.ttftMs! + decode)) < 1e-9, `${result.e2eMs}`);
    const s = engine.stats();
    assert.equal(s.numGpuBlocks, 26_562);
    assert.equal(s.usedBlocks, 0);
    assert.ok(s.cachedBlocks >= 34, 'prompt and answer blocks stay cached');
  } finally {
    done();
  }
});

test('a cached prefix saves its GEMMs but its attention is still paid', async () => {
  const { clock, engine, done } = tinyEngine({ profile: PROFILES['llama-3.1-8b-h100'] }, 'virtual');
  try {
    const p = engine.profile;
    const prompt = ids(4096);
    const first = (await inClock(clock, () => run(engine, { model: 'tiny-model', promptTokens: prompt, maxTokens: 1 }))).result;
    const second = (await inClock(clock, () => run(engine, { model: 'tiny-model', promptTokens: prompt, maxTokens: 1 }))).result;
    assert.equal(second.cachedTokens, 4080, 'all full blocks but the one holding the last token');
    // The second computes 16 tokens after 4,080 cached ones: one step with their attention pairs.
    const step = p.stepOverheadMs + Math.max(p.decodeFloorMs, 16 * p.prefillPerTokenMs) + 16 * (4080 + 8) * p.prefillContextMsPerPair;
    assert.ok(Math.abs(second.ttftMs! - (p.requestOverheadMs + step)) < 1e-9, `${second.ttftMs}`);
    assert.ok(first.ttftMs! > 10 * second.ttftMs!, `${first.ttftMs} vs ${second.ttftMs}`);
  } finally {
    done();
  }
});

test('an idle engine holds no timer; a request submitted mid-step joins at the next step', async () => {
  const { clock, engine, done } = tinyEngine({ overrides: { requestOverheadMs: 0 } });
  try {
    assert.equal(clock.pendingTimers, 0);
    const outs = await inClock(clock, () => [
      run(engine, { model: 'tiny-model', promptTokens: ids(100), maxTokens: 3, ignoreEos: true }),
      // The first step runs 0..5 ms (100 prefill tokens); this arrives at 1 ms.
      later(clock, 1, () => run(engine, { model: 'tiny-model', promptTokens: ids(10, 3), maxTokens: 1 })),
    ]);
    const [first, second] = await Promise.all(outs);
    assert.equal(first!.result.ttftMs, 5);
    assert.equal(second!.result.queueMs, 4, 'waited for the step in flight');
    assert.equal(second!.result.ttftMs, 4 + 4, 'then one step with the other request decoding');
    await clock.sleep(1);
    assert.equal(clock.pendingTimers, 0, 'idle again: no timers');
  } finally {
    done();
  }
});

test('jitter is seeded: same seed, same modelled results; default is jitter-free', async () => {
  const scenario = async (jitter: number, seed: number): Promise<number[]> => {
    const { clock, engine, done } = tinyEngine({ overrides: { jitter }, seed });
    try {
      const outs = await inClock(clock, () => Array.from({ length: 5 }, (_, i) => run(engine, { model: 'tiny-model', promptTokens: ids(50, i), maxTokens: 10, ignoreEos: true })));
      return (await Promise.all(outs)).map((o) => round(o.result.e2eMs) ?? -1);
    } finally {
      done();
    }
  };
  assert.deepEqual(await scenario(0.2, 7), await scenario(0.2, 7));
  assert.notDeepEqual(await scenario(0.2, 7), await scenario(0.2, 8));
  assert.notDeepEqual(await scenario(0.2, 7), await scenario(0, 7));
});

test('several engines share one clock and stay independent', async () => {
  const { clock, engine, done } = tinyEngine();
  const other = new Engine({ model: 'other', profile: PROFILES.tiny, clock });
  try {
    const outs = await inClock(clock, () => [
      run(engine, { model: 'tiny-model', promptTokens: ids(100), maxTokens: 4, ignoreEos: true }),
      run(other, { model: 'other', promptTokens: ids(100), maxTokens: 4, ignoreEos: true }),
    ]);
    const [a, b] = await Promise.all(outs);
    assert.equal(a!.result.ttftMs, b!.result.ttftMs);
    assert.equal(engine.stats().generationTokensTotal, 4);
    assert.equal(other.stats().generationTokensTotal, 4);
    assert.throws(() => other.submit({ model: 'tiny-model', prompt: 'x' }), EngineRequestError);
  } finally {
    other.close();
    done();
  }
});

test('close() aborts unfinished requests and stops the loop', async () => {
  const { clock, engine, done } = tinyEngine();
  try {
    const finished = await inClock(clock, () => {
      const p = run(engine, { model: 'tiny-model', promptTokens: ids(30), maxTokens: 100, ignoreEos: true });
      clock.setTimeout(() => engine.close(), 20);
      return p;
    });
    assert.equal(finished.result.finishReason, 'abort');
    assert.ok(finished.result.completionTokens > 0 && finished.result.completionTokens < 100);
    assert.throws(() => engine.submit({ model: 'tiny-model', prompt: 'x' }), /closed/);
  } finally {
    done();
  }
});

test('zero profile: prompts are counted, not tokenised; nothing is cached; the answers still come', async () => {
  const { clock, engine, done } = tinyEngine({ profile: PROFILES.zero }, 1);
  try {
    const prompt = renderChat([{ role: 'user', content: filler(2_000, 3) }]);
    const a = (await inClock(clock, () => run(engine, { model: 'tiny-model', prompt, maxTokens: 8, ignoreEos: true }))).result;
    assert.equal(a.promptTokens, Math.ceil(prompt.length / 4), '⌈characters / 4⌉');
    assert.equal(a.completionTokens, 8);
    const b = await run(engine, { model: 'tiny-model', prompt, maxTokens: 8, ignoreEos: true });
    assert.equal(b.result.cachedTokens, 0, 'the same prompt again: no prefix cache');
    assert.equal(b.texts.join(''), (await run(engine, { model: 'tiny-model', prompt, maxTokens: 8, ignoreEos: true })).texts.join(''), 'the same prompt, the same answer');
    const s = engine.stats();
    assert.equal(s.cachedBlocks, 0);
    assert.equal(s.usedBlocks, 0, 'every block freed');
    // Ids given by the client are counted too.
    assert.equal((await run(engine, { model: 'tiny-model', promptTokens: ids(300), maxTokens: 1 })).result.promptTokens, 300);
    assert.deepEqual(engine.prefixHitTokens({ model: 'tiny-model', prompt, maxTokens: 1 }), { ok: true, promptTokens: a.promptTokens, cachedTokens: 0 });
  } finally {
    done();
  }
});
