import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimClock } from '../../../src/sim/engine/clock.js';
import { keepAlive } from './helpers.js';

test('timers run in modelled-time order, even sub-millisecond apart at a high scale', async () => {
  const release = keepAlive();
  const clock = new SimClock({ timeScale: 500 });
  try {
    const seen: [string, number][] = [];
    const base = clock.now() + 10_000; // 20 ms of real time ahead
    // Created out of order; 0.3 modelled ms apart = 0.6 µs of real time.
    for (const [name, dt] of [['c', 0.9], ['a', 0.3], ['d', 1.2], ['b', 0.6]] as const) {
      clock.at(base + dt, () => seen.push([name, clock.now()]));
    }
    clock.at(base + 0.6, () => seen.push(['b2', clock.now()])); // same time as b: creation order
    await clock.sleep(10_100);
    assert.deepEqual(seen.map((s) => s[0]), ['a', 'b', 'b2', 'c', 'd']);
    // Inside a callback, now() is exactly the due time.
    assert.deepEqual(seen.map((s) => s[1]), [base + 0.3, base + 0.6, base + 0.6, base + 0.9, base + 1.2]);
  } finally {
    clock.close();
    release();
  }
});

test('a chain of steps advances by modelled durations only (no drift at scale 1000)', async () => {
  const release = keepAlive();
  const clock = new SimClock({ timeScale: 1000 });
  try {
    await clock.sleep(1);
    const start = clock.now(); // pinned to the instant the sleep ended
    const end = await new Promise<number>((resolve) => {
      let n = 0;
      const step = (): void => {
        if (++n === 200) resolve(clock.now());
        else clock.setTimeout(step, 0.7); // 0.7 µs of real time each
      };
      clock.setTimeout(step, 0.7);
    });
    assert.ok(Math.abs(end - start - 200 * 0.7) < 1e-6, `advanced ${end - start}`);
  } finally {
    clock.close();
    release();
  }
});

test('now() outside callbacks is monotonic and never passes a pending timer', async () => {
  const release = keepAlive();
  const clock = new SimClock({ timeScale: 10 });
  try {
    let prev = clock.now();
    for (let i = 0; i < 1000; i++) {
      const t = clock.now();
      assert.ok(t >= prev);
      prev = t;
    }
    const timer = clock.at(clock.now() + 1e-9, () => {}); // due "now"
    const due = timer.dueMs; // the clock must not report a later time before it runs
    const spin = performance.now();
    while (performance.now() - spin < 2); // busy 2 ms real = 20 ms modelled
    assert.ok(clock.now() <= due);
    await clock.sleep(1);
    assert.ok(clock.now() > due);
    // After an await, "now" is exactly the modelled time the sleep ended.
    const before = clock.now();
    await clock.sleep(7);
    assert.equal(clock.now(), before + 7);
  } finally {
    clock.close();
    release();
  }
});

test('cancel and close stop timers; epoch mapping', async () => {
  const release = keepAlive();
  const clock = new SimClock({ timeScale: 100, epochMs: 1_000_000 });
  try {
    let ran = 0;
    const t = clock.setTimeout(() => ran++, 5);
    t.cancel();
    clock.setTimeout(() => ran++, 10);
    assert.equal(clock.pendingTimers, 1);
    await clock.sleep(20);
    assert.equal(ran, 1);
    clock.setTimeout(() => ran++, 1);
    clock.close();
    assert.equal(clock.pendingTimers, 0);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(ran, 1);
    assert.equal(clock.toEpochMs(250), 1_000_250);
    assert.throws(() => new SimClock({ timeScale: 0 }), RangeError);
  } finally {
    release();
  }
});

test('virtual clock: time stands still between timers and jumps to each exactly, without the wall clock', async () => {
  const release = keepAlive();
  const clock = new SimClock({ virtual: true });
  try {
    assert.equal(clock.now(), 0);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(clock.now(), 0, 'wall time does not move it');
    const seen: number[] = [];
    clock.setTimeout(() => seen.push(clock.now()), 3_600_000);
    clock.setTimeout(() => seen.push(clock.now()), 0.1);
    await clock.sleep(7_200_000);
    assert.deepEqual(seen, [0.1, 3_600_000]);
    assert.equal(clock.now(), 7_200_000);
    assert.equal(clock.timeScale, Number.POSITIVE_INFINITY);
  } finally {
    clock.close();
    release();
  }
});
