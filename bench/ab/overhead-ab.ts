import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { runBench } from '../../src/bench/runner.js';
import { warmUp } from '../../src/bench/suite/overhead.js';
import { summarize } from '../../src/bench/summary.js';
import { answers, cpuSeconds, startChild } from '../../src/bench/suite/processes.js';
import { startFleet } from '../../src/bench/suite/systems.js';
import { loopDelayBetween, readLoopDelay } from '../../src/bench/suite/loop-delay.js';
import { benchContext, benchGatewayYaml } from '../support/bench-gateway.js';
import { createWorkload, resolveWorkloadParams } from '../../src/bench/workloads/index.js';

/*
 * The overhead scenario's shapes through two or more builds of the gateway in one session, in
 * turn: `node dist/bench/ab/overhead-ab.js ROOT ROOT [ROOT...]` (each root a checkout with dist/
 * built, e.g. `git worktree add /tmp/before 7700a27` then `npx tsc` there). Each run sends a
 * fixed number of requests (not a fixed time: a gateway slowed by the machine's other load then
 * still does the same work) and reads the gateway's own CPU time from /proc, so it is CPU seconds
 * per 1,000 requests, not wall time, that is compared. All builds share one simulated engine
 * (this checkout's). ROUNDS (default 3) rounds, the order reversed every other round; one JSON
 * line per run on stdout, with the gateway's event-loop delay over the run as its `/metrics`
 * buckets bound it (samples over 10 ms, p99 and worst). `--cpu-prof` profiles land in PROF_DIR
 * when it is set; NODE_ARGS adds flags to each gateway's `node` (e.g. `--max-semi-space-size=8`);
 * LOOP_PROBE_OUT preloads bench/profile/loop-probe.ts (1 ms loop delay, GC pauses, counted from
 * the end of the warm-up).
 */

// One gateway process per build (a build with `serve --workers` would otherwise fork one per
// core, and the CPU read from /proc would be its primary's alone): bench/workers/ measures workers.
process.env['INFERGATE_WORKERS'] ??= '1';

const roots = process.argv.slice(2);
if (roots.length < 2) {
  process.stderr.write('usage: node dist/bench/ab/overhead-ab.js ROOT ROOT [ROOT...]  (the first is "before")\n');
  process.exit(2);
}
/** Each build is named by its root's last path segment. */
const builds = roots.map((root) => ({ name: basename(root), root }));
const rounds = Number(process.env['ROUNDS'] ?? 3);
const profDir = process.env['PROF_DIR'] || undefined;
const nodeArgs = (process.env['NODE_ARGS'] ?? '').split(' ').filter((a) => a !== '');
const probe = process.env['LOOP_PROBE_OUT'] ? ['--import', new URL('../profile/loop-probe.js', import.meta.url).pathname] : [];
/** The overhead scenario's shapes (src/bench/suite/scenarios.ts), with a request count each. */
const shapes = [
  { name: 'small', workload: { type: 'random', count: 100_000, inputTokens: 64, outputTokens: 16 }, concurrency: 32, requests: 3000 },
  { name: 'stream', workload: { type: 'random', count: 100_000, inputTokens: 64, outputTokens: 512 }, concurrency: 16, requests: 600 },
  { name: 'large', workload: { type: 'random', count: 100_000, inputTokens: 50_000, outputTokens: 16 }, concurrency: 20, requests: 400 },
  { name: 'large200', workload: { type: 'random', count: 100_000, inputTokens: 50_000, outputTokens: 16 }, concurrency: 200, requests: 600 },
].filter((s) => (process.env['SHAPES'] ?? 'small,stream,large').split(',').includes(s.name));

const work = join(tmpdir(), `infergate-ab-${process.pid}`);
await mkdir(join(work, 'gateway'), { recursive: true });
const ctx = await benchContext(work);
const fleet = await startFleet({ replicas: 1, profile: 'zero' }, ctx);
await writeFile(join(work, 'gateway', 'config.yaml'), benchGatewayYaml(ctx, fleet));
const admin = `http://127.0.0.1:${ctx.adminPort}`;
try {
  for (let round = 1; round <= rounds; round++) {
    for (const shape of shapes) {
      const params = resolveWorkloadParams(shape.workload);
      for (const build of round % 2 === 1 ? builds : [...builds].reverse()) {
        const prof = profDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(profDir, `${build.name}-${shape.name}-${round}`)];
        const args = [...nodeArgs, ...probe, ...prof, join(build.root, 'bin/infergate.js'), 'serve', '-f', join(work, 'gateway'), '--no-watch', '--address', '127.0.0.1', '--admin-port', String(ctx.adminPort)];
        const gateway = await startChild(build.name, process.execPath, args, async () => {
          if (!(await answers(`${admin}/readyz`))) return false;
          const view = (await (await fetch(`${admin}/debug/endpoints`)).json()) as { pools: Array<{ endpoints: Array<{ metrics: unknown }> }> };
          return view.pools.every((p) => p.endpoints.every((e) => e.metrics !== null));
        });
        try {
          const common = { baseUrl: `http://127.0.0.1:${ctx.frontPort}`, ignoreEos: true, endpointHeader: 'x-sim-pod', seed: 1 } as const;
          // Warm-up (connection pools, JIT), not measured.
          await warmUp({ ...common, workload: createWorkload(params, 2, 'mymodel') }, shape.concurrency);
          if (probe.length > 0) process.kill(gateway.pid, 'SIGUSR2');
          const loopBefore = await readLoopDelay(`${admin}/metrics`);
          const cpuBefore = cpuSeconds(gateway.pid) ?? Number.NaN;
          const started = performance.now();
          const run = await runBench({ ...common, workload: createWorkload(params, 1, 'mymodel'), arrivals: { kind: 'closed', concurrency: shape.concurrency }, maxRequests: shape.requests, progress: false });
          const seconds = (performance.now() - started) / 1000;
          const cpu = (cpuSeconds(gateway.pid) ?? Number.NaN) - cpuBefore;
          const loop = loopDelayBetween(loopBefore, await readLoopDelay(`${admin}/metrics`));
          const s = summarize(run.records);
          const line = { round, shape: shape.name, build: build.name, ok: s.ok, failed: s.failed, cpuSecondsPer1000: Math.round((cpu / s.ok) * 1e6) / 1e3, requestsPerS: Math.round((s.ok / seconds) * 10) / 10, ttftP99Ms: s.ttftMs === undefined ? undefined : Math.round(s.ttftMs.p99 * 10) / 10, loopOver10Ms: loop?.over10Ms, loopP99Ms: loop?.p99Ms, loopMaxMs: loop?.maxMs };
          process.stdout.write(`${JSON.stringify(line)}\n`);
        } finally {
          await gateway.stop();
        }
      }
    }
  }
} finally {
  await fleet.child.stop();
}
