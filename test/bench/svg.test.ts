import assert from 'node:assert/strict';
import { test } from 'node:test';
import { machineInfo, ratio, renderCharts, renderMarkdown, resultsJson, type BenchReport } from '../../src/bench/report.js';
import { summarize } from '../../src/bench/summary.js';
import { barChart, cdfChart, lineChart, logTicks, niceTicks, shareChart } from '../../src/bench/svg.js';
import { record } from './records.js';

/** Tags balance and attributes are quoted: enough to know a browser will parse it. */
function assertWellFormed(svg: string): void {
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)((?:\s+[a-zA-Z0-9:-]+="[^"<]*")*)\s*(\/?)>/g)) {
    const [, close, name, , self] = m;
    if (self === '/') continue;
    if (close === '/') assert.equal(stack.pop(), name, `closing </${name}>`);
    else stack.push(name as string);
  }
  assert.deepEqual(stack, []);
  const stripped = svg.replace(/<(\/?)([a-zA-Z]+)((?:\s+[a-zA-Z0-9:-]+="[^"<]*")*)\s*(\/?)>/g, '');
  assert.ok(!stripped.includes('<') && !/&(?!amp;|lt;|gt;|quot;|apos;)/.test(stripped), 'text is escaped');
}

const SYSTEMS = ['nginx round-robin', 'gateway <PREFIX_CACHE> & co', 'gateway DEFAULT'];

test('TTFT CDF: one series per system, axis labels, log axis for wide ranges', () => {
  const svg = cdfChart(SYSTEMS.map((name, i) => ({ name, valuesMs: Array.from({ length: 50 }, (_, k) => (k + 1) * 10 ** (i + 1)) })));
  assertWellFormed(svg);
  assert.equal(svg.match(/class="series"/g)?.length, 3);
  assert.match(svg, /data-system="gateway &lt;PREFIX_CACHE&gt; &amp; co"/);
  assert.match(svg, /time to first token \(log scale\)/);
  assert.match(svg, /share of requests ≤ x/);
  assert.match(svg, /font-family="system-ui/);
  const linear = cdfChart([{ name: 'a', valuesMs: [100, 110, 120] }]);
  assertWellFormed(linear);
  assert.doesNotMatch(linear, /log scale/);
  assertWellFormed(cdfChart([{ name: 'empty', valuesMs: [] }]));
});

test('bars and shares: one series per system, labels, legend of endpoints', () => {
  const bars = barChart(SYSTEMS.map((name, i) => ({ name, value: 1000 * (i + 1), note: `${i + 1}.00×` })), { title: 'Output tokens/s', yLabel: 'output tokens / s' });
  assertWellFormed(bars);
  assert.equal(bars.match(/class="series"/g)?.length, 3);
  assert.match(bars, /output tokens \/ s/);
  const shares = shareChart(
    SYSTEMS.map((name) => ({ name, shares: [{ endpoint: 'pod-0', share: 0.7 }, { endpoint: 'pod-1', share: 0.3 }] })),
  );
  assertWellFormed(shares);
  assert.equal(shares.match(/class="series"/g)?.length, 3);
  assert.match(shares, /class="legend"/);
  assert.match(shares, />pod-1</);
  assert.match(shares, /share of requests/);
});

test('ticks are round numbers covering the range', () => {
  assert.deepEqual(niceTicks(0, 9.3), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(logTicks(10, 1000), [10, 20, 50, 100, 200, 500, 1000]);
  assert.deepEqual(logTicks(1, 1e6), [1, 10, 100, 1000, 10000, 100000, 1000000]);
});

test('the Markdown report: tables, ratios against the baseline, endpoint shares, errors, chart links', () => {
  const mk = (ttft: number, tokens: number, endpoint: string, fail = false) =>
    Array.from({ length: 10 }, (_, i) =>
      record({ seq: i, startMs: i * 100, endMs: i * 100 + 1000, ttftMs: ttft, outputTokens: tokens, endpoint: i % 2 === 0 ? endpoint : 'pod-1', ...(fail && i === 0 ? { ok: false, status: 503, errorKind: 'http' as const } : {}) }),
    );
  const systems = [
    { name: 'nginx round-robin', records: mk(400, 100, 'pod-0') },
    { name: 'gateway PREFIX_CACHE', records: mk(100, 150, 'pod-2', true) },
  ].map((s) => ({ ...s, summary: summarize(s.records, { prefixCache: { hits: 10, queries: 100, hitRate: 0.1, servers: 2 } }) }));
  const report: BenchReport = {
    title: 'shared-prefix',
    date: '2026-01-01T00:00:00.000Z',
    command: 'infergate bench --url http://x --workload shared-prefix',
    machine: machineInfo(),
    workload: { description: 'shared-prefix 2 × 5', arrivals: 'closed loop, 4 clients', params: {} },
    baseline: 'nginx round-robin',
    systems,
  };
  const md = renderMarkdown(report, { ttft: 'a-ttft.svg', throughput: 'a-tp.svg', endpoints: 'a-ep.svg' });
  assert.match(md, /^## shared-prefix/);
  assert.match(md, /### Compared with nginx round-robin/);
  assert.match(md, /\| gateway PREFIX_CACHE \| 0\.25× \(100 ms\) \| 0\.25× \(100 ms\) \| 1\.35× /);
  assert.match(md, /\| nginx round-robin \| 1\.00× /);
  assert.match(md, /### Requests per endpoint/);
  assert.match(md, /\| System \| pod-0 \| pod-1 \| pod-2 \|/);
  assert.match(md, /gateway PREFIX_CACHE: 1 of 10 failed \(http 503: 1\)/);
  assert.match(md, /!\[TTFT distribution per system\]\(a-ttft\.svg\)/);
  assert.match(md, /```sh\ninfergate bench --url http:\/\/x --workload shared-prefix\n```/);
  const charts = renderCharts(report);
  for (const svg of Object.values(charts)) {
    assertWellFormed(svg);
    assert.equal(svg.match(/class="series"/g)?.length, 2);
  }
  const json = JSON.parse(resultsJson(report)) as { format: string; machine: { cpus: number }; systems: Array<{ records: Array<Record<string, unknown>> }> };
  assert.equal(json.format, 'infergate-bench/v1');
  assert.ok(json.machine.cpus >= 1);
  assert.equal(json.systems[0]?.records.length, 10);
  assert.ok(!('text' in (json.systems[0]?.records[0] ?? {})) && !('itlMs' in (json.systems[0]?.records[0] ?? {})));
  assert.equal(ratio(1, 0), '–');
  assert.equal(ratio(3, 2), '1.50×');
});

test('line chart: one path and its markers per system, a dashed threshold, log axis for wide ranges', () => {
  const svg = lineChart(
    SYSTEMS.map((name, i) => ({ name, points: [4, 2, 6].map((x) => ({ x, y: x * 100 * 10 ** i })) })),
    { title: 'TTFT p90 against load', xLabel: 'offered load (requests / s)', yLabel: 'TTFT p90', threshold: { y: 2000, label: 'SLO 2 s' } },
  );
  assertWellFormed(svg);
  assert.equal(svg.match(/class="series"/g)?.length, 3);
  assert.equal(svg.match(/<circle /g)?.length, 9);
  assert.match(svg, /class="threshold"/);
  assert.match(svg, /TTFT p90 \(log scale\)/);
  const first = /data-system="nginx round-robin" d="M([\d.]+),/.exec(svg);
  const xs = [...(svg.match(/data-system="nginx round-robin" d="([^"]+)"/)?.[1] ?? '').matchAll(/[ML]([\d.]+),/g)].map((m) => Number(m[1]));
  assert.ok(first !== null && xs.length === 3 && xs[0]! < xs[1]! && xs[1]! < xs[2]!, 'points drawn in x order');
  assertWellFormed(lineChart([], { title: 'empty', xLabel: 'x', yLabel: 'y' }));
});
