import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runBenchCommand } from '../../src/bench/bench-command.js';
import { machineInfo, writeReport } from '../../src/bench/report.js';
import { runBench } from '../../src/bench/runner.js';
import { summarize } from '../../src/bench/summary.js';
import { createWorkload, resolveWorkloadParams, type RequestSpec, type Workload } from '../../src/bench/workloads/index.js';
import { startSimServer, type RunningSimServer } from '../../src/sim/index.js';
import { freePort } from '../support/ports.js';

let server: RunningSimServer;
let dir: string;

before(async () => {
  server = await startSimServer({ host: '127.0.0.1', port: 0, name: 'pod-a', profile: 'tiny', timeScale: 10 });
  dir = await mkdtemp(join(tmpdir(), 'infergate-bench-'));
});

after(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

const sharedPrefix = resolveWorkloadParams({ type: 'shared-prefix', groups: 2, usersPerGroup: 5, systemTokens: 16, questionTokens: 8, outputTokens: 6 });

test('closed loop against a simulated server: 20 requests recorded, measured and reported', async () => {
  const run = await runBench({
    baseUrl: server.url,
    workload: createWorkload(sharedPrefix, 1, 'mymodel'),
    arrivals: { kind: 'closed', concurrency: 4 },
    maxRequests: 20,
    progress: false,
  });
  assert.equal(run.stoppedBy, 'requests');
  assert.equal(run.records.length, 20);
  assert.deepEqual(run.records.map((r) => r.seq), Array.from({ length: 20 }, (_, i) => i));
  for (const r of run.records) {
    assert.equal(r.status, 200, `request ${r.seq}: ${r.errorKind} ${r.errorMessage}`);
    assert.equal(r.ok, true);
    assert.ok(r.ttftMs !== undefined && r.ttftMs >= 0 && r.ttftMs <= r.e2eMs, `TTFT ${r.ttftMs} vs E2E ${r.e2eMs}`);
    assert.equal(r.outputTokens, 6);
    assert.equal(r.outputTokensSource, 'usage');
    assert.equal(r.itlMs.length, 5, 'six content chunks, five gaps');
    assert.equal(r.endpoint, 'pod-a');
    assert.match(r.text, /^ mymodel:/, 'the simulator names the model that answered');
    assert.ok(r.startMs >= 0 && r.endMs >= r.startMs);
  }
  const summary = summarize(run.records);
  assert.equal(summary.ok, 20);
  assert.equal(summary.outputTokens, 120);
  assert.ok(summary.outputTokensPerS > 0 && summary.requestsPerS > 0);
  assert.equal(summary.endpoints.reduce((a, e) => a + e.share, 0), 1);
  assert.equal(summary.ttftMs?.count, 20);

  const written = await writeReport(
    {
      title: 'e2e',
      date: run.startedAt,
      command: 'test',
      machine: machineInfo(),
      workload: { description: 'shared-prefix', arrivals: run.arrivals, params: {} },
      baseline: 'echo',
      systems: [{ name: 'echo', summary, records: run.records }],
    },
    join(dir, 'report'),
  );
  const md = await readFile(written.markdown, 'utf8');
  assert.match(md, /\| echo \| 20 \| 0 \|/);
  for (const file of Object.values(written.charts)) assert.match(await readFile(file, 'utf8'), /^<svg[^>]*>[\s\S]*<\/svg>\n$/);
  assert.deepEqual((await readdir(join(dir, 'report'))).sort(), ['bench-endpoints.svg', 'bench-throughput.svg', 'bench-ttft.svg', 'bench.json', 'bench.md']);
});

test('multi-turn through a real stream: the next turn carries the answer the server gave', async () => {
  const inner = createWorkload(resolveWorkloadParams({ type: 'multi-turn', conversations: 3, turns: 3, activeConversations: 2, systemTokens: 8, userTokens: 4, outputTokens: 4 }), 2, 'mymodel');
  const specs: RequestSpec[] = [];
  const spy: Workload = {
    kind: inner.kind,
    size: inner.size,
    finite: inner.finite,
    get done() {
      return inner.done;
    },
    next: () => {
      const s = inner.next();
      if (s !== undefined) specs.push(s);
      return s;
    },
    complete: (spec, outcome) => inner.complete(spec, outcome),
  };
  const run = await runBench({ baseUrl: server.url, workload: spy, arrivals: { kind: 'closed', concurrency: 8 }, progress: false });
  assert.equal(run.stoppedBy, 'workload');
  assert.equal(run.records.length, 9);
  assert.ok(run.records.every((r) => r.ok));
  for (const s of specs.filter((x) => (x.turn ?? 0) > 0)) {
    const prev = run.records.find((r) => r.conversationId === s.conversationId && r.turn === (s.turn as number) - 1);
    assert.equal(s.messages.at(-2)?.role, 'assistant');
    assert.equal(s.messages.at(-2)?.content, prev?.text);
    assert.match(prev?.text ?? '', /^ mymodel:/);
  }
});

test('open loop, and failures recorded by kind: HTTP error, connection refused, timeout', async () => {
  const random = resolveWorkloadParams({ type: 'random', inputTokens: 4, outputTokens: 3 });
  const poisson = await runBench({ baseUrl: server.url, workload: createWorkload(random, 1, 'mymodel'), arrivals: { kind: 'poisson', rate: 500 }, maxRequests: 10, maxConcurrency: 3, api: 'completions', progress: false });
  assert.equal(poisson.records.length, 10);
  assert.ok(poisson.records.every((r) => r.ok && r.outputTokens === 3));

  const notFound = await runBench({ baseUrl: server.url, workload: createWorkload(random, 1, 'no-such-model'), arrivals: { kind: 'closed', concurrency: 2 }, maxRequests: 3, progress: false });
  assert.ok(notFound.records.every((r) => !r.ok && r.status === 404 && r.errorKind === 'http' && r.errorCode === '404' && r.endpoint === 'pod-a'));
  assert.match(notFound.records[0]?.errorMessage ?? '', /does not exist/);

  const refused = await runBench({ baseUrl: `http://127.0.0.1:${await freePort()}`, workload: createWorkload(random, 1, 'mymodel'), arrivals: { kind: 'closed', concurrency: 2 }, maxRequests: 3, progress: false });
  assert.ok(refused.records.every((r) => !r.ok && r.status === 0 && r.errorKind === 'connection'), JSON.stringify(refused.records[0]));
  assert.deepEqual(summarize(refused.records).errorsByKind, { connection: 3 });

  const slow = await runBench({ baseUrl: server.url, workload: createWorkload(random, 1, 'mymodel'), arrivals: { kind: 'closed', concurrency: 2 }, maxRequests: 2, timeoutMs: 50, headers: { 'x-sim-first-token-delay-ms': '5000' }, progress: false });
  assert.ok(slow.records.every((r) => !r.ok && r.errorKind === 'timeout'));

  const reset = await runBench({ baseUrl: server.url, workload: createWorkload(random, 1, 'mymodel'), arrivals: { kind: 'closed', concurrency: 1 }, maxRequests: 1, headers: { 'x-sim-reset': 'mid-stream' }, progress: false });
  assert.equal(reset.records[0]?.errorKind, 'connection');
  assert.ok((reset.records[0]?.text ?? '') !== '', 'the partial answer is kept');
});

test('a duration bound and a stop signal end the run by themselves', async () => {
  const random = resolveWorkloadParams({ type: 'random', inputTokens: 4, outputTokens: 2 });
  const timed = await runBench({ baseUrl: server.url, workload: createWorkload(random, 1, 'mymodel'), arrivals: { kind: 'closed', concurrency: 2 }, durationSeconds: 0.15, progress: false });
  assert.equal(timed.stoppedBy, 'duration');
  assert.ok(timed.records.length > 0);
  assert.ok(timed.records.every((r) => r.ok), 'requests in flight at the deadline still complete');

  const abort = new AbortController();
  setTimeout(() => abort.abort(), 100);
  const stopped = await runBench({ baseUrl: server.url, workload: createWorkload(random, 1, 'mymodel'), arrivals: { kind: 'closed', concurrency: 2 }, durationSeconds: 60, headers: { 'x-sim-first-token-delay-ms': '5000' }, signal: abort.signal, progress: false });
  assert.equal(stopped.stoppedBy, 'signal');
  assert.ok(stopped.records.length >= 2 && stopped.records.every((r) => r.errorKind === 'aborted'));
});

test('progress goes to the given stream as plain lines when it is not a terminal', async () => {
  const lines: string[] = [];
  const random = resolveWorkloadParams({ type: 'random', inputTokens: 4, outputTokens: 2 });
  await runBench({ baseUrl: server.url, workload: createWorkload(random, 1, 'mymodel'), arrivals: { kind: 'closed', concurrency: 2 }, maxRequests: 4, progress: { stream: { write: (t: string) => lines.push(t) }, label: 'p' } });
  const last = lines.at(-1) ?? '';
  assert.match(last, /^\[p\] 4\/4 done · .* req\/s · 0 errors · p50 TTFT \d+ ms · 0 in flight/);
  assert.ok(!last.includes('\r'));
});

test('infergate bench: flags to summary, results JSON and report', async () => {
  const out: string[] = [];
  const err: string[] = [];
  const io = { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) } };
  const json = join(dir, 'cmd', 'results.json');
  const code = await runBenchCommand(
    ['--url', server.url, '--workload', 'lora', '--adapters', 'mymodel', '--input-tokens', '4', '--output-tokens', '2', '--requests', '6', '--concurrency', '3', '--quiet', '--out', json, '--report-dir', join(dir, 'cmd')],
    io,
  );
  assert.equal(code, 0, err.join(''));
  assert.match(out.join(''), /target: 6 requests, 6 ok, 0 failed/);
  assert.match(out.join(''), /TTFT/);
  const results = JSON.parse(await readFile(json, 'utf8')) as { command: string; systems: Array<{ summary: { ok: number } }> };
  assert.equal(results.systems[0]?.summary.ok, 6);
  assert.match(results.command, /^infergate bench --url http/);
  assert.match(await readFile(join(dir, 'cmd', 'bench.md'), 'utf8'), /## lora workload/);

  const bad: string[] = [];
  assert.equal(await runBenchCommand(['--url', server.url, '--workload', 'random', '--rate=-1'], { stdout: io.stdout, stderr: { write: (t: string) => bad.push(t) } }), 2);
  assert.match(bad.join(''), /load\.rate \(--rate\)/);
  const help: string[] = [];
  assert.equal(await runBenchCommand(['--help'], { stdout: { write: (t: string) => help.push(t) }, stderr: io.stderr }), 0);
  assert.match(help.join(''), /infergate bench/);
});

test('infergate bench --config: a YAML file validated, flags on top', async () => {
  const file = join(dir, 'bench.yaml');
  await writeFile(
    file,
    [`url: ${server.url}`, 'name: echo', 'api: completions', 'workload:', '  type: shared-prefix', '  groups: 2', '  usersPerGroup: 2', '  systemTokens: 8', '  questionTokens: 4', '  outputTokens: 3', 'load:', '  concurrency: 2', ''].join('\n'),
  );
  const out: string[] = [];
  const err: string[] = [];
  const io = { stdout: { write: (t: string) => out.push(t) }, stderr: { write: (t: string) => err.push(t) } };
  assert.equal(await runBenchCommand(['--config', file, '--quiet'], io), 0, err.join(''));
  assert.match(out.join(''), /echo: 4 requests, 4 ok/);

  await writeFile(file, `url: ${server.url}\nworkload:\n  type: multi-turn\n  turns: zero\n`);
  assert.equal(await runBenchCommand(['--config', file, '--quiet'], io), 2);
  assert.match(err.join(''), /workload\.turns \(in .*bench\.yaml\): expected a number, got the string "zero"/);
});
