import assert from 'node:assert/strict';
import { createHistogram } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { EventLoopDelay, LOOP_DELAY_BUCKETS_S, ranksAtOrBelow } from '../../src/core/event-loop-delay.js';
import { Gateway } from '../../src/gateway/index.js';
import { gatewayAndRoute } from '../support/config.js';
import { memoryLogger, MemorySource } from '../support/memory-source.js';

test('ranksAtOrBelow: counts the samples at or below a bound from the histogram percentiles alone', () => {
  const h = createHistogram();
  const values = [5, 7, 7, 10, 12, 40, 40, 40, 90, 1_000].map((ms) => ms * 1e6);
  for (const v of values) h.record(v);
  // Bounds away from the values: Node's histogram keeps 3 significant digits, so a sample within
  // 0.1 % of a bound may count above it.
  for (const boundMs of [1, 4.9, 5.1, 6, 7.1, 9.9, 10.1, 11, 39, 40.1, 89, 90.1, 999, 1_001, 5_000]) {
    const expected = values.filter((v) => v <= boundMs * 1e6).length;
    assert.equal(ranksAtOrBelow(h, h.count, boundMs * 1e6), expected, `≤ ${boundMs} ms`);
  }
  assert.equal(ranksAtOrBelow(h, h.count, 50e6, 5), 8, 'a known lower bound is only a starting point');
});

test('EventLoopDelay: a 50 ms synchronous task shows in the recent max and in the buckets above 30 ms', async () => {
  const delay = new EventLoopDelay();
  try {
    await sleep(30);
    const until = performance.now() + 50;
    while (performance.now() < until);
    await sleep(25); // the late tick is recorded when it fires
    assert.ok(delay.recentMaxMs() >= 40, `recent max ${delay.recentMaxMs()} ms`);
    const t = delay.totals();
    const at30 = t.cumulative[LOOP_DELAY_BUCKETS_S.indexOf(0.03)] as number;
    assert.ok(t.count - at30 >= 1, `a sample over 30 ms (${JSON.stringify(t)})`);
    assert.ok(t.sumS >= 0.04, `the sum holds the stall (${t.sumS} s)`);
    for (let i = 1; i < t.cumulative.length; i++) assert.ok((t.cumulative[i] as number) >= (t.cumulative[i - 1] as number), 'cumulative');
    // Folded samples are not counted twice.
    assert.equal(delay.totals().count - t.count <= 5, true);
  } finally {
    delay.close();
  }
});

test('/metrics: infergate_event_loop_delay_seconds is a histogram with sane buckets, and a 50 ms stall reaches it', async () => {
  const { logger } = memoryLogger();
  const gateway = await Gateway.start({ sources: [new MemorySource(gatewayAndRoute(8080, ['  - backendRefs: []']))], logger, scrapeIntervalMs: 0 });
  try {
    await sleep(30);
    const until = performance.now() + 50;
    while (performance.now() < until);
    await sleep(25);
    const text = await gateway.metrics.registry.metrics();
    assert.match(text, /^# TYPE infergate_event_loop_delay_seconds histogram$/m);
    const series = new Map<string, number>();
    for (const m of text.matchAll(/^infergate_event_loop_delay_seconds_(bucket\{le="([^"]+)"\}|sum|count) (\S+)$/gm)) series.set(m[2] ?? (m[1] as string), Number(m[3]));
    const count = series.get('count') ?? 0;
    assert.equal(series.get('+Inf'), count);
    let previous = 0;
    for (const le of LOOP_DELAY_BUCKETS_S) {
      const v = series.get(String(le));
      assert.ok(v !== undefined && v >= previous && v <= count, `bucket le=${le}: ${v}`);
      previous = v;
    }
    assert.ok(count - (series.get('0.03') ?? count) >= 1, `the stall is in a bucket above 30 ms:\n${text.match(/^infergate_event_loop_delay.*$/gm)?.join('\n')}`);
    assert.ok((series.get('sum') ?? 0) >= 0.04);
  } finally {
    await gateway.close();
  }
});
