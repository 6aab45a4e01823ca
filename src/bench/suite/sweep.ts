import { closedLoopPoint, goodput, meetsSlo, plannedPerStage, SloWatch, sweepPoints, type Goodput, type StagePoint } from '../goodput.js';
import { prefixCacheDelta, scrapePrefixCacheStats } from '../prefix-cache.js';
import { runBench, type RequestRecord } from '../runner.js';
import type { PrefixCacheDelta } from '../summary.js';
import { keyedRandom } from '../workloads/text.js';
import { createWorkload, resolveWorkloadParams, type WorkloadParams } from '../workloads/index.js';
import type { OracleStats } from './oracle-router.js';
import { cpuSeconds } from './processes.js';
import { SYSTEM_NAMES, type SweepScenario, type SweepTopology, type SystemId } from './scenarios.js';
import { startFleet, startFronts, type Context, type Fleet, type Fronts } from './systems.js';
import { llama3TokenizerDir } from './tokenizer-dir.js';

/*
 * A goodput sweep through each system: a fresh pool of engines (cold caches) per system, load
 * raised in stages on the same pool (open loop: Poisson stages back to back; closed loop: one run
 * per level of concurrency), stopped once the system has missed the TTFT limit. The rising
 * first stages warm the caches, as real traffic would.
 */

/** One system's sweep. */
export interface SweepSystemResult {
  readonly system: SystemId;
  readonly name: string;
  readonly points: readonly StagePoint[];
  /** Goodput per SLO, in the scenario's SLO order. */
  readonly goodput: readonly Goodput[];
  /** The engines' prefix-cache activity over the whole sweep. */
  readonly prefixCache: PrefixCacheDelta | undefined;
  readonly records: readonly RequestRecord[];
  /** Stages planned but not run (the sweep stopped after missing the SLO). */
  readonly skippedStages: number;
  /** The oracle's own counters (its queries to the engines and decision time), for its row. */
  readonly oracle?: OracleStats;
  /** CPU seconds the front processes (every gateway replica, nginx, the oracle) used over the measured run; undefined off Linux. */
  readonly frontCpuS?: number;
}

/** A sweep scenario's results. */
export interface SweepResult {
  readonly scenario: SweepScenario;
  readonly params: WorkloadParams;
  readonly date: string;
  /** The tokenizer directory every system's engines used, when not the simulator's own. */
  readonly tokenizer?: string;
  readonly systems: readonly SweepSystemResult[];
}

/** Where a run's requests go: the front(s), and with a topology, which share goes where. */
interface Route {
  readonly baseUrl: string;
  /** Request n's destination and label (`gateway`, `gateway-<i>`, `bypass`); undefined: `baseUrl`. */
  readonly target?: (n: number) => { readonly url: string; readonly via: string };
}

/**
 * The measured runs' route: one front; N fronts taking turns; or a seeded share straight to the
 * pods (round-robin over them) and the rest through the front. Each call starts the split afresh.
 */
function measuredRoute(topology: SweepTopology | undefined, fronts: Fronts, fleet: Fleet, seed: number): () => Route {
  const first = fronts.urls[0] as string;
  if (topology === undefined) return () => ({ baseUrl: first });
  if (topology.kind === 'gateways') {
    return () => ({ baseUrl: first, target: (n) => ({ url: fronts.urls[n % fronts.urls.length] as string, via: `gateway-${n % fronts.urls.length}` }) });
  }
  return () => {
    const random = keyedRandom(seed, 'bypass');
    let bypassed = 0;
    return {
      baseUrl: first,
      target: () => (random() < topology.share ? { url: fleet.urls[bypassed++ % fleet.urls.length] as string, via: 'bypass' } : { url: first, via: 'gateway' }),
    };
  };
}

/**
 * Every group's first prompt (its system prompt and user 0's question) once, with one output token,
 * through the system under test: each policy places the groups its own way, so no system starts
 * the sweep with cold caches. Other workloads need none (a conversation starts fresh anyway).
 */
async function warmUp(params: WorkloadParams, urls: readonly string[], ctx: Context, scale: number, replicas: number, label: string): Promise<void> {
  if (params.type !== 'shared-prefix') return;
  const firsts = { ...params, usersPerGroup: 1, outputTokens: 1, ordered: true };
  await runBench({
    baseUrl: urls[0] as string,
    // Gateway replicas in turn, each learning only what it placed.
    baseUrls: urls,
    workload: createWorkload(firsts, ctx.seed, 'mymodel'),
    arrivals: { kind: 'closed', concurrency: 2 * replicas },
    maxRequests: params.groups,
    seed: ctx.seed,
    ignoreEos: true,
    timeScale: scale,
    progress: { label: `${label} warm-up` },
  });
}

async function openLoopSweep(scenario: SweepScenario, params: WorkloadParams, route: Route, ctx: Context, label: string): Promise<{ points: StagePoint[]; records: RequestRecord[]; skipped: number }> {
  if (scenario.load.kind !== 'rates') throw new Error('openLoopSweep needs rate stages');
  const { stages, drainSeconds } = scenario.load;
  const scale = scenario.fleet.timeScale ?? 1;
  const planned = plannedPerStage(stages, ctx.seed);
  const stop = new AbortController();
  const first = scenario.slos[0];
  if (first === undefined) throw new Error(`${scenario.name}: no SLO`);
  const watch = new SloWatch(planned, first, scenario.stopAfterMissed, () => stop.abort());
  // The last stage's requests get `drainSeconds` to finish; what is still running then is aborted.
  const totalMs = (stages.reduce((sum, s) => sum + s.seconds, 0) + drainSeconds) * 1000;
  const drain = setTimeout(() => stop.abort(), totalMs / scale);
  try {
    const run = await runBench({
      ...route,
      workload: createWorkload(params, ctx.seed, 'mymodel'),
      arrivals: { kind: 'sweep', stages },
      seed: ctx.seed,
      ignoreEos: true,
      endpointHeader: 'x-sim-pod',
      timeScale: scale,
      signal: stop.signal,
      onRecord: (r) => watch.add(r),
      progress: { label },
    });
    const points = sweepPoints(run.records, stages, planned);
    return { points, records: run.records, skipped: stages.length - points.length };
  } finally {
    clearTimeout(drain);
  }
}

async function closedLoopSweep(scenario: SweepScenario, params: WorkloadParams, route: () => Route, ctx: Context, label: string): Promise<{ points: StagePoint[]; records: RequestRecord[]; skipped: number }> {
  if (scenario.load.kind !== 'concurrency') throw new Error('closedLoopSweep needs concurrency levels');
  const { levels, seconds } = scenario.load;
  const first = scenario.slos[0];
  if (first === undefined) throw new Error(`${scenario.name}: no SLO`);
  const points: StagePoint[] = [];
  const records: RequestRecord[] = [];
  let missed = 0;
  for (const [stage, concurrency] of levels.entries()) {
    // Each level is its own set of conversations (another seed), on the same warm pool.
    const levelParams = params.type === 'multi-turn' ? { ...params, activeConversations: concurrency } : params;
    const run = await runBench({
      ...route(),
      workload: createWorkload(levelParams, ctx.seed + stage, 'mymodel'),
      arrivals: { kind: 'closed', concurrency },
      durationSeconds: seconds,
      seed: ctx.seed,
      ignoreEos: true,
      endpointHeader: 'x-sim-pod',
      timeScale: scenario.fleet.timeScale ?? 1,
      progress: { label: `${label} ${concurrency} clients` },
    });
    const own = run.records.map((r) => ({ ...r, stage }));
    records.push(...own);
    const point = closedLoopPoint(own, stage, concurrency);
    points.push(point);
    if (!meetsSlo(point, { ...first, itlP99Ms: Number.POSITIVE_INFINITY }) && ++missed >= scenario.stopAfterMissed) break;
  }
  return { points, records, skipped: levels.length - points.length };
}

/** CPU seconds of every front process so far (their process trees); undefined when one cannot be read. */
function frontCpu(fronts: Fronts): number | undefined {
  let total = 0;
  for (const f of fronts.fronts) {
    if (f.child === undefined) return undefined;
    const s = cpuSeconds(f.child.pid);
    if (s === undefined) return undefined;
    total += s;
  }
  return total;
}

/** The oracle's counters, read before it stops; undefined for other systems or when it does not answer. */
async function oracleStats(system: SystemId, fronts: Fronts): Promise<OracleStats | undefined> {
  if (system !== 'oracle') return undefined;
  try {
    const all = await Promise.all(fronts.urls.map(async (u) => (await (await fetch(`${u}/oracle/stats`)).json()) as OracleStats));
    // Several oracles (one per "replica"): their counters summed, the decision time weighted by requests.
    const requests = all.reduce((n, o) => n + o.requests, 0);
    return {
      requests,
      queries: all.reduce((n, o) => n + o.queries, 0),
      failedQueries: all.reduce((n, o) => n + o.failedQueries, 0),
      meanDecisionMs: requests === 0 ? 0 : all.reduce((n, o) => n + o.meanDecisionMs * o.requests, 0) / requests,
      perPod: all.reduce<number[]>((sum, o) => o.perPod.map((v, i) => v + (sum[i] ?? 0)), []),
    };
  } catch {
    return undefined;
  }
}

/**
 * Runs the sweep through every system of the scenario. When the precise system is among them,
 * every system's engines tokenise with Llama 3's tokenizer (the one the precise gateway loads),
 * so that all rows count the same tokens.
 */
export async function runSweep(scenario: SweepScenario, ctx: Context): Promise<SweepResult> {
  const systems = scenario.systems.filter((s) => s !== 'nginx' || ctx.nginx !== undefined);
  const params = resolveWorkloadParams(scenario.workload);
  const tokenizer = systems.includes('precise') ? llama3TokenizerDir() : undefined;
  const fleetSpec = tokenizer === undefined ? scenario.fleet : { ...scenario.fleet, tokenizer };
  const copies = scenario.topology?.kind === 'gateways' ? scenario.topology.replicas : 1;
  const results: SweepSystemResult[] = [];
  for (const system of systems) {
    const name = SYSTEM_NAMES[system];
    const roles = system === 'pd' && scenario.fleet.pd !== undefined ? ` (${scenario.fleet.pd.prefill} prefill + ${scenario.fleet.pd.decode} decode)` : '';
    ctx.log(`${scenario.name}: ${name}: starting ${scenario.fleet.replicas} engines${roles} (cold caches, real KV capacity unless stated)`);
    const fleet = await startFleet(fleetSpec, ctx, system);
    try {
      const fronts = await startFronts(system, fleet, ctx, copies);
      try {
        const label = `${scenario.name} ${name}`;
        await warmUp(params, fronts.urls, ctx, scenario.fleet.timeScale ?? 1, scenario.fleet.replicas, label);
        const route = measuredRoute(scenario.topology, fronts, fleet, ctx.seed);
        const before = await scrapePrefixCacheStats(fleet.urls);
        const cpuBefore = frontCpu(fronts);
        const run = scenario.load.kind === 'rates' ? await openLoopSweep(scenario, params, route(), ctx, label) : await closedLoopSweep(scenario, params, route, ctx, label);
        const cpuAfter = frontCpu(fronts);
        const after = await scrapePrefixCacheStats(fleet.urls);
        const oracle = await oracleStats(system, fronts);
        results.push({
          system,
          name,
          points: run.points,
          goodput: scenario.slos.map((slo) => goodput(run.points, slo)),
          prefixCache: prefixCacheDelta(before, after),
          records: run.records,
          skippedStages: run.skipped,
          ...(oracle === undefined ? {} : { oracle }),
          ...(cpuBefore === undefined || cpuAfter === undefined ? {} : { frontCpuS: cpuAfter - cpuBefore }),
        });
      } finally {
        await fronts.stop();
      }
    } finally {
      await fleet.child.stop();
    }
  }
  return { scenario, params, date: new Date().toISOString(), systems: results, ...(tokenizer === undefined ? {} : { tokenizer }) };
}
