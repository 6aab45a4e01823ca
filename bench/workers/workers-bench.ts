import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prefixCacheDelta, scrapePrefixCacheStats } from '../../src/bench/prefix-cache.js';
import { runBench } from '../../src/bench/runner.js';
import { summarize } from '../../src/bench/summary.js';
import { answers, cpuSeconds, startInfergate, type Child } from '../../src/bench/suite/processes.js';
import { startFleet, type Fleet } from '../../src/bench/suite/systems.js';
import { benchContext, benchGatewayYaml } from '../support/bench-gateway.js';
import { createWorkload, resolveWorkloadParams } from '../../src/bench/workloads/index.js';

/*
 * `infergate serve --workers N` against one process, in one run: `node dist/bench/workers/workers-bench.js`
 * (after `npx tsc -p tsconfig.json`). Two scenarios, each gateway started afresh per run, the
 * worker counts alternating order every round (ROUNDS, default 3; WORKERS, default "1,2"):
 *
 * - throughput: small streamed requests (64 prompt, 16 output tokens; the overhead scenario's
 *   `small` shape) from 32 closed-loop clients to one zero-latency simulated engine, a fixed
 *   number of requests (REQUESTS, default 3000): requests per second, and the CPU seconds per
 *   1,000 requests of the whole gateway (primary and workers, read from /proc).
 * - prefix: a shared-prefix workload (96 groups x 4 users, 600-token system prompts, 20-token
 *   questions, 8 output tokens, 8 clients) through a PREFIX_CACHE pool of 4 zero-latency engines,
 *   started afresh per run so no run inherits another's cache: the engines' own prefix-cache hit
 *   rate (vllm:prefix_cache_hits_total over queries_total) and the gateway's index hit ratio. With
 *   each group on one engine the engines' rate is (U−1)·S / U·(S+Q) ≈ 0.73; a group spread over
 *   two engines loses a quarter of it.
 *
 * One JSON line per run on stdout, then the medians per worker count. Everything runs on loopback
 * and stops by itself. On a shared machine the requests per second are noise: rerun it quiet.
 */

const rounds = Number(process.env['ROUNDS'] ?? 3);
const counts = (process.env['WORKERS'] ?? '1,2').split(',').map(Number);
const requests = Number(process.env['REQUESTS'] ?? 3000);
const scenarios = (process.env['SCENARIOS'] ?? 'throughput,prefix').split(',');

const work = join(tmpdir(), `infergate-workers-bench-${process.pid}`);
await mkdir(join(work, 'gateway'), { recursive: true });
const ctx = await benchContext(work);
const admin = `http://127.0.0.1:${ctx.adminPort}`;

/** `serve --workers N` over `fleet`, ready once every worker has scraped every engine. */
async function startGateway(workers: number, fleet: Fleet, policy: string): Promise<Child> {
  await writeFile(join(work, 'gateway', 'config.yaml'), benchGatewayYaml(ctx, fleet, policy));
  return startInfergate(`gateway x${workers}`, ['serve', '-f', join(work, 'gateway'), '--no-watch', '--workers', String(workers), '--address', '127.0.0.1', '--admin-port', String(ctx.adminPort), '--log-level', 'warn'], async () => {
    if (!(await answers(`${admin}/readyz`))) return false;
    const view = (await (await fetch(`${admin}/debug/endpoints`)).json()) as { pools: Array<{ endpoints: Array<{ metrics: unknown }> }> };
    return view.pools.every((p) => p.endpoints.every((e) => e.metrics !== null));
  }, 60_000);
}

async function indexHitRatio(): Promise<number | undefined> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const m = /^infergate_prefix_index_hit_ratio (\S+)$/m.exec(text);
  return m === null ? undefined : Number(m[1]);
}

interface Line {
  readonly scenario: string;
  readonly workers: number;
  readonly [k: string]: unknown;
}
const lines: Line[] = [];
function emit(line: Line): void {
  lines.push(line);
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

const common = { ignoreEos: true, endpointHeader: 'x-sim-pod', progress: false } as const;

async function throughput(round: number, workers: number, fleet: Fleet): Promise<void> {
  const gateway = await startGateway(workers, fleet, 'DEFAULT');
  try {
    const params = resolveWorkloadParams({ type: 'random', count: 100_000, inputTokens: 64, outputTokens: 16 });
    const baseUrl = `http://127.0.0.1:${ctx.frontPort}`;
    // Warm-up (connections, JIT in every worker), not measured.
    await runBench({ ...common, baseUrl, seed: 1, workload: createWorkload(params, 2, 'mymodel'), arrivals: { kind: 'closed', concurrency: 32 }, maxRequests: 400 });
    const cpuBefore = cpuSeconds(gateway.pid) ?? Number.NaN;
    const primaryBefore = ownCpuSeconds(gateway.pid);
    const started = performance.now();
    const run = await runBench({ ...common, baseUrl, seed: 1, workload: createWorkload(params, 1, 'mymodel'), arrivals: { kind: 'closed', concurrency: 32 }, maxRequests: requests });
    const seconds = (performance.now() - started) / 1000;
    const cpu = (cpuSeconds(gateway.pid) ?? Number.NaN) - cpuBefore;
    const primary = ownCpuSeconds(gateway.pid) - primaryBefore;
    const s = summarize(run.records);
    emit({
      scenario: 'throughput',
      round,
      workers,
      ok: s.ok,
      failed: s.failed,
      requestsPerS: Math.round((s.ok / seconds) * 10) / 10,
      cpuSecondsPer1000: Math.round((cpu / s.ok) * 1e6) / 1e3,
      // The primary's part (with N workers it accepts connections, relays, forwards log lines; with 1 it is the gateway).
      primaryCpuSecondsPer1000: Math.round((primary / s.ok) * 1e6) / 1e3,
      gatewayCores: Math.round((cpu / seconds) * 100) / 100,
    });
  } finally {
    await gateway.stop();
  }
}

async function prefix(round: number, workers: number): Promise<void> {
  const fleet = await startFleet({ replicas: 4, profile: 'zero' }, ctx);
  try {
    const gateway = await startGateway(workers, fleet, 'PREFIX_CACHE');
    try {
      const params = resolveWorkloadParams({ type: 'shared-prefix', groups: 96, usersPerGroup: 4, systemTokens: 600, questionTokens: 20, outputTokens: 8 });
      const before = await scrapePrefixCacheStats(fleet.urls);
      const started = performance.now();
      const run = await runBench({ ...common, baseUrl: `http://127.0.0.1:${ctx.frontPort}`, seed: round, workload: createWorkload(params, round, 'mymodel'), arrivals: { kind: 'closed', concurrency: 8 }, maxRequests: 96 * 4 });
      const seconds = (performance.now() - started) / 1000;
      const delta = prefixCacheDelta(before, await scrapePrefixCacheStats(fleet.urls));
      const s = summarize(run.records);
      // Engines per group: 1.00 when every group stayed on one engine.
      const enginesOf = new Map<number, Set<string>>();
      for (const r of run.records) if (r.group !== undefined && r.endpoint !== undefined) (enginesOf.get(r.group) ?? enginesOf.set(r.group, new Set()).get(r.group))?.add(r.endpoint);
      const spread = [...enginesOf.values()].reduce((n, e) => n + e.size, 0) / Math.max(1, enginesOf.size);
      emit({ scenario: 'prefix', round, workers, ok: s.ok, failed: s.failed, requestsPerS: Math.round((s.ok / seconds) * 10) / 10, engineHitRate: delta.hitRate === undefined ? null : Math.round(delta.hitRate * 1e4) / 1e4, indexHitRatio: await indexHitRatio(), enginesPerGroup: Math.round(spread * 1000) / 1000 });
    } finally {
      await gateway.stop();
    }
  } finally {
    await fleet.child.stop();
  }
}

/** CPU seconds of `pid` alone (utime + stime, /proc/PID/stat fields 14 and 15, at 100 ticks a second). */
function ownCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

try {
  const zero = scenarios.includes('throughput') ? await startFleet({ replicas: 1, profile: 'zero' }, ctx) : undefined;
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const workers of round % 2 === 1 ? counts : [...counts].reverse()) {
        if (zero !== undefined) await throughput(round, workers, zero);
      }
    }
  } finally {
    await zero?.child.stop();
  }
  if (scenarios.includes('prefix')) {
    for (let round = 1; round <= rounds; round++) {
      for (const workers of round % 2 === 1 ? counts : [...counts].reverse()) await prefix(round, workers);
    }
  }
  for (const scenario of scenarios) {
    for (const workers of counts) {
      const runs = lines.filter((l) => l.scenario === scenario && l.workers === workers);
      if (runs.length === 0) continue;
      const keys = Object.keys(runs[0] as Line).filter((k) => !['scenario', 'round', 'workers', 'ok', 'failed'].includes(k));
      const summary: Record<string, unknown> = { summary: scenario, workers, runs: runs.length };
      for (const k of keys) {
        const values = runs.map((r) => Number(r[k])).filter(Number.isFinite);
        summary[k] = { median: median(values), min: Math.min(...values), max: Math.max(...values) };
      }
      process.stdout.write(`${JSON.stringify(summary)}\n`);
    }
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
