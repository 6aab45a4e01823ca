import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBench } from '../../src/bench/runner.js';
import { warmUp } from '../../src/bench/suite/overhead.js';
import { summarize } from '../../src/bench/summary.js';
import { answers, startChild } from '../../src/bench/suite/processes.js';
import { startFleet } from '../../src/bench/suite/systems.js';
import { benchContext, benchGatewayYaml } from '../support/bench-gateway.js';
import { createWorkload, resolveWorkloadParams } from '../../src/bench/workloads/index.js';

/*
 * Resident memory of `infergate serve` in front of 8 simulated engines (a zero-latency profile),
 * for two or more builds in one session: `node dist/bench/memory/rss-ab.js ROOT ROOT [ROOT...]`
 * (each root a checkout with dist/ built; the first is "before"). Per build and shape a fresh
 * gateway process: `idle` is its RSS 3 s after every endpoint has been scraped; each load shape
 * is its peak RSS (VmHWM, /proc) over a warm-up and the load. The gateway runs with this
 * checkout's dist/bench/memory/probe.js, which samples process.memoryUsage() every 20 ms, so
 * the peak heap used and total, external and array buffers are printed beside it (MiB). ROUNDS
 * (default 3) rounds, the order reversed every other round; SHAPES picks shapes; GATEWAY_ARGS
 * adds flags to `serve` (e.g. `--workers 1`); NODE_FLAGS adds node flags (before bin/infergate.js);
 * HEAP_DIR takes a heap snapshot (SIGUSR2) at the end of each load into that folder. One JSON line
 * per run on stdout.
 */

const roots = process.argv.slice(2);
if (roots.length < 1) {
  process.stderr.write('usage: node dist/bench/memory/rss-ab.js ROOT [ROOT...]  (the first is "before")\n');
  process.exit(2);
}
const builds = roots.map((root) => ({ name: basename(root), root }));
const rounds = Number(process.env['ROUNDS'] ?? 3);
const heapDir = process.env['HEAP_DIR'] || undefined;
const gatewayArgs = (process.env['GATEWAY_ARGS'] ?? '').split(' ').filter((a) => a !== '');
const nodeFlags = (process.env['NODE_FLAGS'] ?? '').split(' ').filter((a) => a !== '');
const ENGINES = 8;
const probe = fileURLToPath(new URL('./probe.js', import.meta.url));

interface Shape {
  readonly name: string;
  readonly workload?: Parameters<typeof resolveWorkloadParams>[0];
  readonly concurrency?: number;
  readonly requests?: number;
}
/** The overhead scenario's shapes (src/bench/suite/scenarios.ts) with a request count each. */
const shapes: Shape[] = [
  { name: 'idle' },
  { name: 'small', workload: { type: 'random', count: 100_000, inputTokens: 64, outputTokens: 16 }, concurrency: 32, requests: 3000 },
  { name: 'large', workload: { type: 'random', count: 100_000, inputTokens: 50_000, outputTokens: 16 }, concurrency: 20, requests: 400 },
  { name: 'large-200', workload: { type: 'random', count: 100_000, inputTokens: 50_000, outputTokens: 16 }, concurrency: 200, requests: 600 },
].filter((s) => (process.env['SHAPES'] ?? 'idle,small,large,large-200').split(',').includes(s.name));

function status(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of readFileSync(`/proc/${pid}/status`, 'utf8').matchAll(/^(VmHWM|VmRSS|RssAnon|RssFile):\s+(\d+) kB/gm)) out[m[1]!] = Number(m[2]) / 1024;
  return out;
}

/** Waits until the folder's snapshot stops growing (written on the gateway's main thread, seconds). */
async function snapshotWritten(dir: string): Promise<void> {
  let last = -1;
  let still = 0;
  for (const deadline = Date.now() + 120_000; Date.now() < deadline && still < 3; ) {
    await new Promise((r) => setTimeout(r, 1000));
    const files = await readdir(dir);
    const size = files.length === 0 ? -1 : (await stat(join(dir, files[0]!))).size;
    still = size > 0 && size === last ? still + 1 : 0;
    last = size;
  }
}

const mib = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10;

const work = join(tmpdir(), `infergate-mem-${process.pid}`);
await mkdir(join(work, 'gateway'), { recursive: true });
const ctx = await benchContext(work);
const fleet = await startFleet({ replicas: ENGINES, profile: 'zero' }, ctx);
await writeFile(join(work, 'gateway', 'config.yaml'), benchGatewayYaml(ctx, fleet));
const admin = `http://127.0.0.1:${ctx.adminPort}`;
try {
  for (let round = 1; round <= rounds; round++) {
    for (const shape of shapes) {
      for (const build of round % 2 === 1 ? builds : [...builds].reverse()) {
        const probeOut = join(work, `probe-${build.name}.json`);
        await rm(probeOut, { force: true });
        process.env['MEM_PROBE_OUT'] = probeOut;
        const snap = heapDir === undefined ? [] : ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${join(heapDir, `${build.name}-${shape.name}-${round}`)}`];
        if (heapDir !== undefined) await mkdir(join(heapDir, `${build.name}-${shape.name}-${round}`), { recursive: true });
        const args = [...nodeFlags, ...snap, '--import', probe, join(build.root, 'bin/infergate.js'), 'serve', '-f', join(work, 'gateway'), '--no-watch', '--address', '127.0.0.1', '--admin-port', String(ctx.adminPort), ...gatewayArgs];
        const gateway = await startChild(build.name, process.execPath, args, async () => {
          if (!(await answers(`${admin}/readyz`))) return false;
          const view = (await (await fetch(`${admin}/debug/endpoints`)).json()) as { pools: Array<{ endpoints: Array<{ metrics: unknown }> }> };
          return view.pools.every((p) => p.endpoints.length === ENGINES && p.endpoints.every((e) => e.metrics !== null));
        });
        try {
          let ok: number | undefined;
          if (shape.workload === undefined) {
            await new Promise((r) => setTimeout(r, 3000));
          } else {
            const params = resolveWorkloadParams(shape.workload);
            const common = { baseUrl: `http://127.0.0.1:${ctx.frontPort}`, ignoreEos: true, endpointHeader: 'x-sim-pod', seed: 1 } as const;
            await warmUp({ ...common, workload: createWorkload(params, 2, 'mymodel') }, shape.concurrency ?? 1);
            const run = await runBench({ ...common, workload: createWorkload(params, 1, 'mymodel'), arrivals: { kind: 'closed', concurrency: shape.concurrency ?? 1 }, maxRequests: shape.requests ?? 100, progress: false });
            ok = summarize(run.records).ok;
          }
          await new Promise((r) => setTimeout(r, 300)); // the probe writes every 200 ms
          const proc = status(gateway.pid);
          const sampled = JSON.parse(await readFile(probeOut, 'utf8').catch(() => '{}')) as { peak?: Record<string, number>; now?: Record<string, number>; spaces?: Record<string, [number, number]> };
          if (heapDir !== undefined) {
            // After the reading: writing a snapshot takes memory of its own.
            process.kill(gateway.pid, 'SIGUSR2');
            await snapshotWritten(join(heapDir, `${build.name}-${shape.name}-${round}`));
          }
          const p = sampled.peak ?? {};
          const n = sampled.now ?? {};
          const line = {
            round,
            shape: shape.name,
            build: build.name,
            ok,
            failed: shape.workload === undefined ? undefined : (shape.requests ?? 100) - (ok ?? 0),
            rssMiB: Math.round(proc['VmRSS']! * 10) / 10,
            peakRssMiB: Math.round(proc['VmHWM']! * 10) / 10,
            anonMiB: Math.round(proc['RssAnon']! * 10) / 10,
            fileMiB: Math.round(proc['RssFile']! * 10) / 10,
            peak: { heapUsed: mib(p['heapUsed'] ?? 0), heapTotal: mib(p['heapTotal'] ?? 0), external: mib(p['external'] ?? 0), arrayBuffers: mib(p['arrayBuffers'] ?? 0) },
            spacesAtPeak: process.env['SPACES'] === undefined ? undefined : sampled.spaces,
            now: { heapUsed: mib(n['heapUsed'] ?? 0), heapTotal: mib(n['heapTotal'] ?? 0), external: mib(n['external'] ?? 0), arrayBuffers: mib(n['arrayBuffers'] ?? 0) },
          };
          process.stdout.write(`${JSON.stringify(line)}\n`);
        } finally {
          await gateway.stop();
        }
      }
    }
  }
} finally {
  await fleet.child.stop();
  await rm(work, { recursive: true, force: true });
}
