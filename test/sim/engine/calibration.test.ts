import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CALIBRATION_POINTS, calibrationMarkdown, measureCalibration } from '../../../src/sim/engine/calibration.js';
import { distinctTokens, modelledRun } from '../../../src/sim/engine/modelled-run.js';
import { PROFILES } from '../../../src/sim/engine/profiles.js';

// The calibration table of docs/simulator.md, recomputed in modelled time (exact: no wall clock).
// A point outside its stated tolerance fails, naming the point and both values.
test('calibration: every published point is within its tolerance', async () => {
  const rows = await measureCalibration();
  assert.equal(rows.length, CALIBRATION_POINTS.length);
  for (const r of rows) {
    const [min, max] = r.point.tolerance;
    assert.ok(
      r.withinTolerance,
      `${r.point.id} (${r.point.quantity}): simulator ${r.simulated.toFixed(3)} vs published ${r.point.published} = ${r.ratio.toFixed(3)}, allowed ${min}–${max}`,
    );
  }
  const md = calibrationMarkdown(rows);
  assert.equal(md.trim().split('\n').length, rows.length + 2, 'one table row per point');
  assert.doesNotMatch(md, /\*\*out\*\*/);
});

test('calibration: the points cover what issue 11 asks for', () => {
  const ids = new Set(CALIBRATION_POINTS.map((p) => p.id));
  for (const id of ['8b-ttft-1k', '8b-ttft-10k', '8b-ttft-30k', '8b-ttft-100k', '8b-itl-b1-1k', '8b-itl-b1-33k', '8b-sharegpt-32qps-itl', '8b-batch64-tput', '8b-kv-tokens', '32b-kv-tokens', '32b-cached-contrast']) {
    assert.ok(ids.has(id), id);
  }
  for (const p of CALIBRATION_POINTS) assert.ok(p.tolerance[0] <= 1 && p.tolerance[1] >= 1 && p.tolerance[0] > 0, `${p.id}: a tolerance around 1`);
});

test('modelled runs are deterministic and independent of the wall clock', async () => {
  const workload = { count: 40, prompt: (i: number) => distinctTokens(300, i), outputTokens: 20, arrivals: { kind: 'poisson', rate: 50, seed: 3 } } as const;
  const a = await modelledRun(PROFILES['llama-3.1-8b-h100'], workload);
  const b = await modelledRun(PROFILES['llama-3.1-8b-h100'], workload);
  assert.deepEqual(a, b);
  assert.equal(a.ttftMs.length, 40);
  assert.equal(a.itlMs.length, 40 * 19);
  assert.ok(a.meanInFlight > 0 && a.steps > 20);
});
