/**
 * Routing quality with 1, 2 and 3 active gateway replicas (not a test; docs/benchmarks.md,
 * "Replicas: routing quality with 1, 2 and 3 gateways"). For each N, one fresh pool of simulated
 * engines (cold caches) and N `infergate serve` processes with the same PREFIX_CACHE pool over
 * them, as N replicas of one Deployment would run; the load generator sends request n to replica
 * n mod N (a round-robin load balancer in front). Each replica's estimate-mode prefix index sees
 * only its own traffic, so it places a group's prompts without knowing where the other replicas
 * put them. Reported per N: the engines' own prefix-cache hit rate (cached prompt tokens they
 * count), TTFT p50/p90, output tokens/s, failures, and how many engines served each prompt group
 * (1 is perfect affinity).
 *
 *   npx tsc -p tsconfig.json
 *   node dist/bench/k8s/replicas.js [--replicas 1,2,3] [--engines 4] [--rate 5] [--seconds 90] [--output 200] [--time-scale 2] [--home-bonus B] [--json FILE]
 *
 * `--home-bonus` sets the prefix scorer's `homeBonus` on the pool (0 = no prefix home, the
 * behaviour before it existed); unset, the scorer's default.
 *
 * The workload is the suite's shared-prefix shape at real KV capacity (llm-d's 73 %-capacity
 * design: 6,000-token system prompts, 5 users per group asking their own 1,200-token question,
 * enough groups to fill 73 % of the engines' KV), with shorter answers so a run of the three
 * stays within a few minutes. Every process (engines, replicas, this client) shares the
 * machine's cores.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { prefixCacheDelta, scrapePrefixCacheStats } from '../../src/bench/prefix-cache.js';
import { runBench, type RequestRecord } from '../../src/bench/runner.js';
import { summarize, type BenchSummary } from '../../src/bench/summary.js';
import { createWorkload, resolveWorkloadParams, type WorkloadParams } from '../../src/bench/workloads/index.js';
import { freePort, freePortOnAll } from '../../src/bench/suite/ports.js';
import { cpuSeconds } from '../../src/bench/suite/processes.js';
import { fleetHosts, startFleet, startFronts, type Context, type Fronts } from '../../src/bench/suite/systems.js';

const { values } = parseArgs({
  options: {
    replicas: { type: 'string', default: '1,2,3' },
    engines: { type: 'string', default: '4' },
    rate: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '90' },
    output: { type: 'string', default: '200' },
    'time-scale': { type: 'string', default: '2' },
    seed: { type: 'string', default: '1' },
    'home-bonus': { type: 'string' },
    json: { type: 'string' },
  },
});
const REPLICAS = (values.replicas ?? '1,2,3').split(',').map(Number);
const ENGINES = Number(values.engines);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const TIME_SCALE = Number(values['time-scale']);
const SEED = Number(values.seed);

/** Qwen3-32B on 2× H100 (TP 2): KV tokens per engine at the profile's real capacity (as the suite's scenarios.ts). */
const KV_TOKENS = 290_000;
const USERS = 5;
const SYSTEM = 6_000;
const QUESTION = 1_200;
const GROUPS = Math.floor((0.73 * ENGINES * KV_TOKENS) / (SYSTEM + USERS * QUESTION));
const params: WorkloadParams = resolveWorkloadParams({ type: 'shared-prefix', groups: GROUPS, usersPerGroup: USERS, systemTokens: SYSTEM, questionTokens: QUESTION, outputTokens: Number(values.output) });

const log = (line: string): void => void process.stderr.write(`${line}\n`);

interface Row {
  readonly replicas: number;
  readonly summary: BenchSummary;
  /** Mean and most engines that served one group's prompts (1 = every group stayed on one engine). */
  readonly enginesPerGroup: { readonly mean: number; readonly max: number };
  /** Requests each replica routed. */
  readonly perReplica: readonly number[];
  /** CPU seconds of all replicas together over the measured run. */
  readonly gatewayCpuS: number | undefined;
}

function enginesPerGroup(records: readonly RequestRecord[]): { mean: number; max: number } {
  const byGroup = new Map<number, Set<string>>();
  for (const r of records) {
    if (!r.ok || r.group === undefined || r.endpoint === undefined) continue;
    let set = byGroup.get(r.group);
    if (set === undefined) {
      set = new Set();
      byGroup.set(r.group, set);
    }
    set.add(r.endpoint);
  }
  const sizes = [...byGroup.values()].map((s) => s.size);
  return { mean: sizes.reduce((a, b) => a + b, 0) / Math.max(1, sizes.length), max: Math.max(0, ...sizes) };
}

async function runOne(n: number, base: Context): Promise<Row> {
  const ctx: Context = { ...base, work: join(base.work, `n${n}`) };
  await mkdir(ctx.work, { recursive: true });
  log(`${n} replica(s): starting ${ENGINES} engines (cold caches)`);
  const fleet = await startFleet({ replicas: ENGINES, profile: 'qwen3-32b-2xh100', timeScale: TIME_SCALE }, ctx);
  // Each replica: its own listener and admin port, the same configuration (PREFIX_CACHE pool over the same engines).
  let started: Fronts | undefined;
  try {
    started = await startFronts('prefix', fleet, ctx, n);
    const { fronts } = started;
    const urls = fronts.map((f) => f.url);
    // As the suite's sweeps do: every group's first prompt once (1 output token), through the
    // replicas in turn, so no N starts cold and each replica learns only what it placed.
    await runBench({
      baseUrl: urls[0] as string,
      baseUrls: urls,
      workload: createWorkload({ ...params, usersPerGroup: 1, outputTokens: 1, ordered: true } as WorkloadParams, SEED, 'mymodel'),
      arrivals: { kind: 'closed', concurrency: 2 * ENGINES },
      maxRequests: GROUPS,
      seed: SEED,
      ignoreEos: true,
      timeScale: TIME_SCALE,
      progress: { label: `${n} replica(s) warm-up` },
    });
    const before = await scrapePrefixCacheStats(fleet.urls);
    const cpuBefore = fronts.map((f) => (f.child === undefined ? undefined : cpuSeconds(f.child.pid)));
    const run = await runBench({
      baseUrl: urls[0] as string,
      baseUrls: urls,
      workload: createWorkload(params, SEED, 'mymodel'),
      arrivals: { kind: 'poisson', rate: RATE },
      durationSeconds: SECONDS,
      seed: SEED,
      ignoreEos: true,
      endpointHeader: 'x-sim-pod',
      timeScale: TIME_SCALE,
      progress: { label: `${n} replica(s)` },
    });
    const after = await scrapePrefixCacheStats(fleet.urls);
    const cpuAfter = fronts.map((f) => (f.child === undefined ? undefined : cpuSeconds(f.child.pid)));
    const cpu = cpuAfter.every((c, i) => c !== undefined && cpuBefore[i] !== undefined) ? cpuAfter.reduce((sum: number, c, i) => sum + (c as number) - (cpuBefore[i] as number), 0) : undefined;
    const perReplica = urls.map(() => 0);
    run.records.forEach((r) => (perReplica[r.seq % urls.length] = (perReplica[r.seq % urls.length] ?? 0) + 1));
    return { replicas: n, summary: summarize(run.records, { prefixCache: prefixCacheDelta(before, after) }), enginesPerGroup: enginesPerGroup(run.records), perReplica, gatewayCpuS: cpu };
  } finally {
    await started?.stop();
    await fleet.child.stop();
  }
}

const work = await mkdtemp(join(tmpdir(), 'infergate-replicas-'));
const routing = values['home-bonus'] === undefined ? undefined : `prefix: {homeBonus: ${Number(values['home-bonus'])}}`;
const ctx: Context = { work, log, nginx: undefined, seed: SEED, frontPort: await freePort(), adminPort: await freePort(), simPort: await freePortOnAll(fleetHosts()), bootstrapPort: await freePortOnAll(fleetHosts()), ...(routing === undefined ? {} : { routing }) };
const rows: Row[] = [];
const started = Date.now();
try {
  for (const n of REPLICAS) rows.push(await runOne(n, ctx));
} finally {
  await rm(work, { recursive: true, force: true });
}

const pct = (v: number | undefined): string => (v === undefined ? '–' : `${(v * 100).toFixed(1)} %`);
const ms = (v: number | undefined): string => (v === undefined ? '–' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`);
const one = rows[0];
const lines = [
  `${routing === undefined ? '' : `(${routing}) `}${ENGINES} engines (Qwen3-32B profile, real KV), ${GROUPS} groups × ${USERS} users, ${SYSTEM.toLocaleString('en-US')}-token system prompts, ${QUESTION.toLocaleString('en-US')}-token questions, ${values.output}-token answers; Poisson ${RATE} req/s for ${SECONDS} s (modelled; engines at ${TIME_SCALE}× real time), after one warm-up prompt per group. ${cpus().length} cores, Node ${process.version}, ${Math.round((Date.now() - started) / 1000)} s in all.`,
  '',
  '| gateway replicas | prefix hit rate (engines) | TTFT p50 | TTFT p90 | TTFT p90 vs 1 replica | output tok/s | engines per group (mean / max) | failed |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows.map((r) => {
    const p90 = r.summary.ttftMs?.p90;
    const ratio = one?.summary.ttftMs?.p90 === undefined || p90 === undefined ? '–' : `${(p90 / one.summary.ttftMs.p90).toFixed(2)}×`;
    return `| ${r.replicas} | ${pct(r.summary.prefixCache?.hitRate)} | ${ms(r.summary.ttftMs?.p50)} | ${ms(p90)} | ${ratio} | ${Math.round(r.summary.outputTokensPerS).toLocaleString('en-US')} | ${r.enginesPerGroup.mean.toFixed(2)} / ${r.enginesPerGroup.max} | ${r.summary.failed} of ${r.summary.requests} |`;
  }),
];
process.stdout.write(`${lines.join('\n')}\n`);
if (values.json !== undefined) {
  await writeFile(
    values.json,
    `${JSON.stringify({ homeBonus: values['home-bonus'] === undefined ? 'default' : Number(values['home-bonus']), engines: ENGINES, groups: GROUPS, rate: RATE, seconds: SECONDS, timeScale: TIME_SCALE, rows: rows.map((r) => ({ replicas: r.replicas, perReplica: r.perReplica, gatewayCpuS: r.gatewayCpuS, enginesPerGroup: r.enginesPerGroup, summary: { ...r.summary, endpoints: r.summary.endpoints } })) }, null, 2)}\n`,
  );
}
