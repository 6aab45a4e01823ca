import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { DecisionStats } from '../../src/core/decision-stats.js';
import { runBench } from '../../src/bench/runner.js';
import { warmUp } from '../../src/bench/suite/overhead.js';
import { benchContext, benchGatewayYaml } from '../support/bench-gateway.js';
import { summarize } from '../../src/bench/summary.js';
import { answers, cpuSeconds, startChild, type Child } from '../../src/bench/suite/processes.js';
import { freePort } from '../../src/bench/suite/ports.js';
import { startFleet } from '../../src/bench/suite/systems.js';
import { createWorkload, resolveWorkloadParams } from '../../src/bench/workloads/index.js';

/*
 * The endpoint picker's cost per request, A/B: `node dist/bench/epp/epp-ab.js ROOT ROOT [ROOT...]`
 * (each root a checkout with dist/ built; the first is "before"). For every round and shape it
 * runs the standalone gateway (`serve`, the first root's, DEFAULT policy: the reference the picker
 * is held to) and then each root's `infergate epp` (standalone mode, TLS with a self-signed
 * certificate, as upstream's Envoy config has it) behind one Envoy stand-in (STANDIN_ROOT, default
 * the first root, so every picker faces the same Envoy), all on one simulated zero-latency engine.
 * Each run sends a fixed number of requests after a 40-request warm-up and reads the process's
 * own CPU time from /proc: CPU seconds per 1,000 requests, not wall time, is what a shared machine
 * can compare. ROUNDS (default 3) rounds, the pickers' order reversed every other round; SHAPES
 * picks shapes (small, stream, large, large200, paced); one JSON line per run on stdout. With
 * PROF_DIR the pickers run under `--cpu-prof` and their profiles land there (one folder per run).
 * The engine is the zero-latency simulator (a 512-token answer reaches the proxy in a few reads);
 * FLEET_PROFILE and TIME_SCALE pick a timed one instead (e.g. llama-3.1-8b-h100 at 5× real time:
 * one read per token, as from a real server; the `paced` shape is meant for it).
 */

const roots = process.argv.slice(2);
if (roots.length < 1) {
  process.stderr.write('usage: node dist/bench/epp/epp-ab.js ROOT [ROOT...]  (the first is "before"; its gateway is the reference)\n');
  process.exit(2);
}
const builds = roots.map((root) => ({ name: basename(root), root }));
const reference = roots[0] as string;
const standinRoot = process.env['STANDIN_ROOT'] ?? reference;
const rounds = Number(process.env['ROUNDS'] ?? 3);
const profDir = process.env['PROF_DIR'] || undefined;
const skipGateway = process.env['NO_GATEWAY'] === '1';
/** The overhead scenario's shapes (src/bench/suite/scenarios.ts), a request count each. */
const shapes = [
  { name: 'small', workload: { type: 'random', count: 100_000, inputTokens: 64, outputTokens: 16 }, concurrency: 32, requests: 3000 },
  { name: 'stream', workload: { type: 'random', count: 100_000, inputTokens: 64, outputTokens: 512 }, concurrency: 16, requests: 600 },
  { name: 'large', workload: { type: 'random', count: 100_000, inputTokens: 50_000, outputTokens: 16 }, concurrency: 20, requests: 400 },
  { name: 'large200', workload: { type: 'random', count: 100_000, inputTokens: 50_000, outputTokens: 16 }, concurrency: 200, requests: 600 },
  // With a timed engine (FLEET_PROFILE, TIME_SCALE) its tokens arrive one by one, as from a real server.
  { name: 'paced', workload: { type: 'random', count: 100_000, inputTokens: 64, outputTokens: 128 }, concurrency: 16, requests: 300 },
].filter((s) => (process.env['SHAPES'] ?? 'small,stream,large').split(',').includes(s.name));

const work = join(tmpdir(), `infergate-epp-ab-${process.pid}`);
await mkdir(join(work, 'gateway'), { recursive: true });
await mkdir(join(work, 'epp'), { recursive: true });
const ctx = await benchContext(work);
const timeScale = process.env['TIME_SCALE'] === undefined ? undefined : Number(process.env['TIME_SCALE']);
const fleet = await startFleet({ replicas: 1, profile: process.env['FLEET_PROFILE'] ?? 'zero', ...(timeScale === undefined ? {} : { timeScale }) }, ctx);
await writeFile(join(work, 'epp', 'pods.yaml'), fleet.podsYaml);
await writeFile(join(work, 'gateway', 'config.yaml'), benchGatewayYaml(ctx, fleet));
const admin = `http://127.0.0.1:${ctx.adminPort}`;
/** Time a process gets to be ready: a picker makes its certificate and loads at start, slowly on a loaded machine. */
const START_MS = 180_000;

/** Ready once the admin port says ready and the engine has been scraped (the core routes on real load). */
async function coreReady(): Promise<boolean> {
  if (!(await answers(`${admin}/readyz`))) return false;
  const view = (await (await fetch(`${admin}/debug/endpoints`)).json()) as { pools: Array<{ endpoints: Array<{ metrics: unknown }> }> };
  return view.pools.length > 0 && view.pools.every((p) => p.endpoints.length > 0 && p.endpoints.every((e) => e.metrics !== null));
}

interface System {
  readonly measured: Child;
  readonly decisions?: () => Promise<DecisionStats>;
  readonly resetDecisions?: () => Promise<void>;
  stop(): Promise<void>;
}

async function startGateway(): Promise<System> {
  const args = [join(reference, 'bin/infergate.js'), 'serve', '-f', join(work, 'gateway'), '--no-watch', '--address', '127.0.0.1', '--admin-port', String(ctx.adminPort)];
  const gateway = await startChild('gateway', process.execPath, args, coreReady, START_MS);
  return { measured: gateway, stop: () => gateway.stop() };
}

async function startPicker(root: string, prof: readonly string[]): Promise<System> {
  const [grpc, health, stats] = [await freePort(), await freePort(), await freePort()];
  const args = [...prof, join(root, 'bin/infergate.js'), 'epp', '--exit-with-parent', '-f', join(work, 'epp'), '--endpoint-selector', 'app=bench', '--endpoint-target-ports', String(fleet.simPort), '--address', '127.0.0.1', '--grpc-port', String(grpc), '--grpc-health-port', String(health), '--metrics-port', String(ctx.adminPort)];
  const epp = await startChild('epp', process.execPath, args, coreReady, START_MS);
  const statsUrl = `http://127.0.0.1:${stats}/decisions`;
  let standin: Child;
  try {
    const standinArgs = [join(standinRoot, 'bin/infergate.js'), 'envoy-standin', '--exit-with-parent', '--ext-proc', `127.0.0.1:${grpc}`, '--port', String(ctx.frontPort), '--stats-port', String(stats)];
    standin = await startChild('envoy-standin', process.execPath, standinArgs, () => answers(`http://127.0.0.1:${stats}/healthz`), START_MS);
  } catch (err) {
    await epp.stop();
    throw err;
  }
  return {
    measured: epp,
    decisions: async () => (await (await fetch(statsUrl)).json()) as DecisionStats,
    resetDecisions: async () => void (await (await fetch(statsUrl, { method: 'DELETE' })).arrayBuffer()),
    stop: async () => {
      await standin.stop();
      await epp.stop();
    },
  };
}

const round1 = (x: number | undefined): number | undefined => (x === undefined ? undefined : Math.round(x * 10) / 10);

try {
  for (let round = 1; round <= rounds; round++) {
    for (const shape of shapes) {
      const params = resolveWorkloadParams(shape.workload);
      const order = round % 2 === 1 ? builds : [...builds].reverse();
      const runs = [...(skipGateway ? [] : [{ name: 'gateway', start: () => startGateway() }]), ...order.map((b) => ({ name: `epp:${b.name}`, start: () => startPicker(b.root, profDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(profDir, `${b.name}-${shape.name}-${round}`)]) }))];
      for (const r of runs) {
        const system = await r.start();
        try {
          const common = { baseUrl: `http://127.0.0.1:${ctx.frontPort}`, ignoreEos: true, endpointHeader: 'x-sim-pod', seed: 1 } as const;
          // Warm-up (connections, JIT), not measured.
          await warmUp({ ...common, workload: createWorkload(params, 2, 'mymodel') }, shape.concurrency);
          await system.resetDecisions?.();
          const cpuBefore = cpuSeconds(system.measured.pid) ?? Number.NaN;
          const started = performance.now();
          const run = await runBench({ ...common, workload: createWorkload(params, 1, 'mymodel'), arrivals: { kind: 'closed', concurrency: shape.concurrency }, maxRequests: shape.requests, progress: false });
          const seconds = (performance.now() - started) / 1000;
          const cpu = (cpuSeconds(system.measured.pid) ?? Number.NaN) - cpuBefore;
          const s = summarize(run.records);
          const d = await system.decisions?.();
          const line = {
            round,
            shape: shape.name,
            system: r.name,
            ok: s.ok,
            failed: s.failed,
            cpuSecondsPer1000: Math.round((cpu / s.ok) * 1e6) / 1e3,
            requestsPerS: Math.round((s.ok / seconds) * 10) / 10,
            ...(d === undefined ? {} : { decisionP50Ms: round1(d.fromBodyEndMs.p50), decisionP99Ms: round1(d.fromBodyEndMs.p99), standinLagP99Ms: round1(d.loopDelayMs.p99) }),
          };
          process.stdout.write(`${JSON.stringify(line)}\n`);
        } finally {
          await system.stop();
        }
      }
    }
  }
} finally {
  await fleet.child.stop();
}
