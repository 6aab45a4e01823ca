import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HEALTH_REPORTS_PER_MINUTE, HealthReports } from '../../src/endpoints/health-reports.js';

test('an outage and its recovery are reported at once; a flapping endpoint is held to a few reports a minute', () => {
  const r = new HealthReports();
  // Scrapes that change nothing say nothing.
  assert.equal(r.observe(false, 0), undefined);
  // A real outage: down, then up a minute later: both reported at once, nothing held.
  assert.equal(r.observe(true, 1_000), 0);
  assert.equal(r.observe(false, 1_050), undefined);
  assert.equal(r.observe(true, 61_000), 0);
  // Flapping every scrape from t = 120 s: the window's room goes, then the changes are counted.
  const reported: Array<number> = [];
  let t = 120_000;
  for (let i = 0; i < 200; i++, t += 50) {
    const said = r.observe(true, t);
    if (said !== undefined) reported.push(said);
  }
  // Two reports were still in the window from before (t = 1 s and 61 s are over a minute back by
  // 120 s only for the first), so at most the limit in the first minute of flapping.
  assert.ok(reported.length <= HEALTH_REPORTS_PER_MINUTE, `reports: ${reported.length}`);
  const held = r.held;
  assert.equal(reported.length + reported.reduce((a, b) => a + b, 0) + held, 200, 'every change is reported, or counted in a report, or held');
  assert.ok(held > 150, `most changes held: ${held}`);
  // Quiet again: the first scrape once the minute has room reports the state then, with the count.
  assert.equal(r.observe(false, t + 1_000), undefined, 'the window is still full');
  const flushed = r.observe(false, t + 60_000);
  assert.equal(flushed, held, 'the held changes are said with the next report');
  assert.equal(r.held, 0);
  assert.equal(r.observe(false, t + 60_050), undefined, 'said once');
});
