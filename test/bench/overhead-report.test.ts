import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loopDelayBetween, parseLoopDelay } from '../../src/bench/suite/loop-delay.js';
import { overheadMarkdown, type OverheadRow } from '../../src/bench/suite/overhead.js';
import type { OverheadScenario } from '../../src/bench/suite/scenarios.js';

// The overhead report from rows alone (no processes): the event-loop delay column, the open-loop
// shape's heading, the latency added to TTFT, and each proxy row against its shape's goals.

const page = (counts: readonly number[]): string =>
  [
    '# TYPE infergate_event_loop_delay_seconds histogram',
    ...[0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, '+Inf'].map((le, i) => `infergate_event_loop_delay_seconds_bucket{le="${le}"} ${counts[Math.min(i, counts.length - 1)]}`),
    'infergate_event_loop_delay_seconds_count 0',
  ].join('\n');

test('loopDelayBetween: the run is the difference of two readings; p99 and max are bucket bounds, stalls the samples over 10 ms', () => {
  const before = parseLoopDelay(page([50, 60, 70, 80, 80, 80, 80, 80, 80, 80, 80, 80, 80, 80, 80]));
  // The run adds 1,000 samples: 990 within 1 ms, 6 in (10, 15] ms, 4 in (20, 30] ms.
  const after = parseLoopDelay(page([1_040, 1_050, 1_060, 1_070, 1_076, 1_076, 1_080, 1_080, 1_080, 1_080, 1_080, 1_080, 1_080, 1_080, 1_080]));
  assert.deepEqual(loopDelayBetween(before, after), { samples: 1_000, p99Ms: 1, maxMs: 30, over10Ms: 10 });
  assert.equal(loopDelayBetween(undefined, after), undefined);
  assert.equal(parseLoopDelay('infergate_requests_total 3\n'), undefined);
});

const scenario: OverheadScenario = {
  kind: 'overhead',
  name: 'overhead',
  title: 'Proxy overhead',
  why: 'test',
  fleet: { replicas: 1, profile: 'zero' },
  shapes: [
    { name: 'small-rate', title: 'small at 1,000 req/s', workload: { type: 'random', count: 10, inputTokens: 64, outputTokens: 16 }, rate: 1_000, concurrency: 256, seconds: 2, goals: { addedE2eP50Ms: 1, addedE2eP99Ms: 3 } },
    { name: 'large', title: '200 KB prompts', workload: { type: 'random', count: 10, inputTokens: 50_000, outputTokens: 16 }, concurrency: 20, seconds: 2, goals: { addedTtftP99Ms: 20, loopDelayMaxMs: 10 } },
  ],
  systems: ['direct', 'nginx', 'default'],
};

function row(shape: string, system: string, e2eP50Ms: number, e2eP99Ms: number, ttftP99Ms: number, extra: Partial<OverheadRow> = {}): OverheadRow {
  return { shape, system, requests: 100, failed: 0, requestsPerS: 1_000, outputTokensPerS: 16_000, ttftP50Ms: 1, ttftP99Ms, e2eP50Ms, e2eP99Ms, cpuSecondsPer1000: undefined, peakRssMiB: undefined, ...extra };
}

test('overheadMarkdown: loop delay p99 / max beside CPU and memory, added TTFT, and the goals per proxy', () => {
  const md = overheadMarkdown(scenario, {
    date: '2026-12-07',
    rows: [
      row('small-rate', 'direct (no proxy)', 2, 5, 1),
      row('small-rate', 'nginx round-robin', 2.4, 6, 1.2, { cpuSecondsPer1000: 0.1, peakRssMiB: 15 }),
      row('small-rate', 'gateway DEFAULT', 2.8, 9.5, 2, { cpuSecondsPer1000: 0.4, peakRssMiB: 90, loopDelay: { samples: 200, p99Ms: 2, maxMs: 5, over10Ms: 0 } }),
      row('large', 'direct (no proxy)', 20, 40, 30),
      row('large', 'nginx round-robin', 21, 45, 33),
      row('large', 'gateway DEFAULT', 25, 60, 45, { loopDelay: { samples: 200, p99Ms: 15, maxMs: 30, over10Ms: 4 } }),
    ],
  });
  assert.match(md, /\| system \| requests\/s \| output tok\/s \| TTFT p50 \| TTFT p99 \(added\) \| E2E p50 \(added\) \| E2E p99 \(added\) \| CPU s \/ 1k req \| peak RSS \| loop delay p99 \/ max \| failed \| goals \(issue 21\) \|/);
  assert.match(md, /\*\*small at 1,000 req\/s\*\*, 2 s\n/, 'an open-loop shape names no client count');
  assert.match(md, /\*\*200 KB prompts\*\*, 20 clients, 2 s\n/);
  assert.match(md, /\| gateway DEFAULT \| 1000 \| 16000 \| 1 ms \| 2 ms \(\+1 ms\) \| 2\.8 ms \(\+0\.8 ms\) \| 9\.5 ms \(\+4\.5 ms\) \| 0\.4 \| 90 MiB \| ≤ 2 ms \/ ≤ 5 ms \| 0 \| added E2E p50 0\.8 ms ✓ \(≤ 1 ms\); added E2E p99 4\.5 ms ✗ \(≤ 3 ms\) \|/);
  assert.match(md, /\| nginx round-robin \|[^\n]*\| – \| 0 \| – \|/, 'nginx has no loop delay and is no goal row');
  assert.match(md, /\| ≤ 15 ms \/ ≤ 30 ms \(4 over 10 ms\) \| 0 \| added TTFT p99 15 ms ✓ \(≤ 20 ms\); loop samples over 10 ms 4 ✗ \(none\) \|/);
});
