import assert from 'node:assert/strict';
import { test } from 'node:test';
import { goodput, meetsSlo, plannedPerStage, SloWatch, sweepPoints, type StagePoint } from '../../src/bench/goodput.js';
import { goodputRate } from '../../src/bench/sweep-report.js';
import { record } from './records.js';

const SLO = { ttftP90Ms: 2000, itlP99Ms: 100 };

function point(rate: number, over: Partial<StagePoint> = {}): StagePoint {
  return { stage: 0, rate, requests: 100, ok: 100, ttftP50Ms: 200, ttftP90Ms: 500, itlP50Ms: 20, itlP99Ms: 50, outputTokensPerS: rate * 100, ...over };
}

test('a stage meets the SLO on TTFT p90, ITL p99 and completions, each at its limit', () => {
  assert.ok(meetsSlo(point(1), SLO));
  assert.ok(meetsSlo(point(1, { ttftP90Ms: 2000, itlP99Ms: 100, ok: 95 }), SLO), 'limits are inclusive');
  assert.ok(!meetsSlo(point(1, { ttftP90Ms: 2001 }), SLO));
  assert.ok(!meetsSlo(point(1, { itlP99Ms: 101 }), SLO));
  assert.ok(!meetsSlo(point(1, { ok: 94 }), SLO), 'fewer than 95 % completed');
  assert.ok(!meetsSlo(point(1, { ttftP90Ms: undefined, ok: 0 }), SLO));
});

test('goodput: the highest stage with every lower stage met; bounded only when a miss was seen', () => {
  assert.deepEqual(goodput([point(2), point(4), point(6, { ttftP90Ms: 9000 }), point(8)], SLO), { rate: 4, outputTokensPerS: 400, bounded: true }, 'a lucky stage above a miss does not count');
  assert.deepEqual(goodput([point(4), point(2)], SLO), { rate: 4, outputTokensPerS: 400, bounded: false });
  assert.deepEqual(goodput([point(2, { itlP99Ms: 150 }), point(4)], SLO), { rate: undefined, outputTokensPerS: undefined, bounded: true });
  assert.equal(goodputRate(goodput([point(4), point(2)], SLO)), '≥ 4 req/s');
  assert.equal(goodputRate(goodput([point(2), point(3, { ok: 10 })], SLO)), '2 req/s');
  assert.equal(goodputRate(goodput([point(2, { ok: 10 })], SLO)), 'none');
});

test('sweep points: records by arrival stage; planned but unsent requests count against completion', () => {
  const stages = [{ rate: 2, seconds: 10 }, { rate: 4, seconds: 10 }, { rate: 8, seconds: 10 }];
  const planned = plannedPerStage(stages, 1);
  assert.equal(planned.length, 3);
  assert.ok(planned[0]! > 5 && planned[1]! > planned[0]! && planned[2]! > planned[1]!, planned.join(','));
  assert.deepEqual(plannedPerStage(stages, 1), planned, 'the runner’s seeded schedule, recomputed');
  const records = [
    ...Array.from({ length: planned[0]! }, (_, i) => record({ seq: i, stage: 0, ttftMs: 100 + i, outputTokens: 10, itlMs: [20, 30] })),
    ...Array.from({ length: 3 }, (_, i) => record({ seq: 100 + i, stage: 1, ttftMs: 5000, outputTokens: 10 })),
  ];
  const points = sweepPoints(records, stages, planned);
  assert.equal(points.length, 2, 'stage 2 was never reached');
  assert.equal(points[0]!.rate, 2);
  assert.equal(points[0]!.requests, planned[0]);
  assert.equal(points[0]!.outputTokensPerS, (planned[0]! * 10) / 10);
  assert.equal(points[0]!.itlP99Ms, 30, 'p99 over every gap of the stage');
  assert.equal(points[0]!.itlP50Ms, 25, 'p50 too');
  assert.equal(points[1]!.requests, planned[1], 'unsent requests of a stopped stage are counted');
  assert.ok(!meetsSlo(points[1]!, SLO));
});

test('SLO watch: stops once a stage certainly missed (over 10 % late or over 5 % failed), once', () => {
  let stops = 0;
  const watch = new SloWatch([20, 20], SLO, 1, () => stops++);
  watch.add(record({ seq: 0, stage: 0, ttftMs: 3000 }));
  watch.add(record({ seq: 1, stage: 0, ttftMs: 3000 }));
  assert.equal(stops, 0, '2 of 20 late: p90 may still be in');
  watch.add(record({ seq: 2, stage: 1, ok: false }));
  assert.equal(stops, 0, '1 of 20 failed');
  watch.add(record({ seq: 3, stage: 0, ttftMs: 2500 }));
  assert.equal(stops, 1, '3 of 20 late');
  assert.equal(watch.missed, 1);
  for (let i = 0; i < 5; i++) watch.add(record({ seq: 10 + i, stage: 1, ok: false }));
  assert.equal(stops, 1, 'called once');
  assert.equal(watch.missed, 2);
});
