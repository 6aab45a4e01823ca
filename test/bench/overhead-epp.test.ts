import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { overheadMarkdown, runOverhead } from '../../src/bench/suite/overhead.js';
import { freePort, freePortOnAll } from '../../src/bench/suite/ports.js';
import type { OverheadScenario } from '../../src/bench/suite/scenarios.js';
import { fleetHosts, type Context } from '../../src/bench/suite/systems.js';

// The overhead scenario's EPP system: `infergate epp` behind `infergate envoy-standin`, each its
// own process, serves every request and yields a row with the picker's CPU and the decision time
// the stand-in measured, beside the standalone gateway's. Numbers are checked for presence, never size.
test('overhead: Envoy stand-in + EPP serves every request and reports its CPU and decision time beside the gateway', async () => {
  const work = await mkdtemp(join(tmpdir(), 'infergate-overhead-epp-'));
  try {
    const ctx: Context = { work, log: () => undefined, nginx: undefined, seed: 1, frontPort: await freePort(), adminPort: await freePort(), simPort: await freePortOnAll(fleetHosts()), bootstrapPort: await freePortOnAll(fleetHosts()) };
    const scenario: OverheadScenario = {
      kind: 'overhead',
      name: 'overhead',
      title: 'EPP overhead test',
      why: 'test',
      fleet: { replicas: 1, profile: 'zero' },
      shapes: [{ name: 'large', title: '8k-token prompts', workload: { type: 'random', count: 1_000, inputTokens: 8_000, outputTokens: 4 }, concurrency: 4, seconds: 1 }],
      systems: ['default', 'epp'],
    };
    const result = await runOverhead(scenario, ctx);
    const epp = result.rows.find((r) => r.system === 'Envoy stand-in + EPP');
    assert.ok(epp !== undefined, `an EPP row (got ${result.rows.map((r) => r.system).join(', ')})`);
    assert.ok(epp.requests > 0 && epp.failed === 0, `every request served through the EPP (${epp.requests} requests, ${epp.failed} failed)`);
    assert.ok((epp.cpuSecondsPer1000 ?? -1) >= 0, 'the picker process CPU was read');
    assert.ok(epp.decision !== undefined && epp.decision.count >= epp.requests, `a decision timed per request (${JSON.stringify(epp.decision)})`);
    assert.ok(Number.isFinite(epp.decision.p50Ms) && Number.isFinite(epp.decision.p99Ms) && Number.isFinite(epp.decision.afterBodyP50Ms));
    const md = overheadMarkdown(scenario, result);
    assert.match(md, /\| Envoy stand-in \+ EPP \|/);
    assert.match(md, /EPP decision p50 \/ p99/);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
