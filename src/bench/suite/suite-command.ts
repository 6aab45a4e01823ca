import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { describeArrivals } from '../arrivals.js';
import { prefixCacheDelta, scrapePrefixCacheStats } from '../prefix-cache.js';
import { machineInfo, writeReport, type BenchReport, type SystemResult } from '../report.js';
import { runBench } from '../runner.js';
import { summarize } from '../summary.js';
import { createWorkload, resolveWorkloadParams } from '../workloads/index.js';
import { ensureNginx } from './nginx.js';
import { overheadMarkdown, runOverhead, type OverheadResult } from './overhead.js';
import { prefixGoals } from '../prefix-report.js';
import { goodputTable, prefixSection, writeSweepReport } from '../sweep-report.js';
import { optionalScenarios, scenarios, SYSTEM_NAMES, type RoutingScenario, type Scenario, type SystemId } from './scenarios.js';
import { runSweep } from './sweep.js';
import { freePort, freePortOnAll } from './ports.js';
import { fleetHosts, startFleet, startFront, type Context, type Front } from './systems.js';

export const SUITE_HELP = `infergate bench-suite: the benchmark scenarios of docs/benchmarks.md (what \`npm run bench\` runs)

Each scenario starts a fresh pool of simulated engines at their profile's real KV capacity and
runs one seeded workload through nginx round-robin and the gateway's policies, one after the
other. The shared-prefix, multi-turn and pd (prefill/decode disaggregation) scenarios are goodput
sweeps: load rises in stages until a system misses its SLO (TTFT p90 <= 2 s with ITL p99 <= 100 ms,
and with ITL p99 <= 200 ms), and the report gives each system's highest sustained rate under each
against nginx's. The overhead scenario compares a direct connection, nginx and the gateway against
a zero-latency engine. Results (JSON, Markdown, SVG charts) go to bench/results/<quick|full>/.

Options:
  --quick           the shared-prefix and pd sweeps (shorter answers, fewer stages) and overhead,
                    under 3 minutes
  --smoke           seconds of each kind on two tiny engines (what CI runs)
  --only a,b        only these scenarios (shared-prefix, multi-turn, prefix-replicas, prefix-bypass,
                    pd, random, lora, overhead; prefix-replicas and prefix-bypass also at --quick
                    and --smoke size; shared-prefix-stress: the old shrunk-KV stress case, not in
                    the suite)
  --skip a,b        leave these systems out (nginx, node-floor, random, round-robin, default,
                    default-workers, prefix, prefix-nohome, precise, oracle, pd, direct, epp)
  --out DIR         results folder (default bench/results/quick or bench/results/full)
  --seed N          workload seed (default 1)
  --stages r,r,…    the rate sweeps' stages in modelled requests/s (each as long as the scenario's
                    own stages), e.g. 4,8,12,16 to look past the top of the defaults
  --time-scale X    the rate sweeps' modelled time runs X times real time (0.5: half speed, so a
                    machine drives twice the modelled rate with the same CPU; times are reported
                    in modelled time, so the gateway's own work counts X times less)
`;

async function runRouting(scenario: RoutingScenario, ctx: Context, command: string, outDir: string): Promise<BenchReport> {
  const systems = scenario.systems.filter((s) => s !== 'nginx' || ctx.nginx !== undefined);
  const params = resolveWorkloadParams(scenario.workload);
  const results: SystemResult[] = [];
  for (const system of systems) {
    ctx.log(`${scenario.name}: ${SYSTEM_NAMES[system]}: starting ${scenario.fleet.replicas} engines (cold caches)`);
    const fleet = await startFleet(scenario.fleet, ctx);
    let front: Front | undefined;
    try {
      front = await startFront(system, fleet, ctx);
      const before = await scrapePrefixCacheStats(fleet.urls);
      const run = await runBench({
        baseUrl: front.url,
        workload: createWorkload(params, ctx.seed, 'mymodel'),
        arrivals: scenario.arrivals,
        seed: ctx.seed,
        ignoreEos: true,
        endpointHeader: 'x-sim-pod',
        progress: { label: `${scenario.name} ${SYSTEM_NAMES[system]}` },
        ...(scenario.maxRequests === undefined ? {} : { maxRequests: scenario.maxRequests }),
      });
      const after = await scrapePrefixCacheStats(fleet.urls);
      results.push({ name: SYSTEM_NAMES[system], summary: summarize(run.records, { prefixCache: prefixCacheDelta(before, after) }), records: run.records });
    } finally {
      await front?.stop();
      await fleet.child.stop();
    }
  }
  const report: BenchReport = {
    title: scenario.title,
    date: new Date().toISOString(),
    command,
    machine: machineInfo(),
    workload: {
      description: scenario.why,
      arrivals: describeArrivals(scenario.arrivals),
      params: { ...params, engines: scenario.fleet.replicas, profile: scenario.fleet.profile, kvBlocksPerEngine: scenario.fleet.numGpuBlocks ?? 'profile default', seed: ctx.seed },
    },
    ...(ctx.nginx !== undefined ? { baseline: SYSTEM_NAMES.nginx } : { baseline: SYSTEM_NAMES.random }),
    systems: results,
  };
  await writeReport(report, outDir, scenario.name);
  return report;
}

/** One line per routing scenario: each system's ratios to the baseline, for the suite summary. */
function headline(report: BenchReport): string {
  const base = report.systems.find((s) => s.name === report.baseline);
  const rows = report.systems.map((s) => {
    const r = (v: number | undefined, b: number | undefined): string => (v === undefined || b === undefined || b === 0 ? '–' : `${(v / b).toFixed(2)}×`);
    const hit = s.summary.prefixCache?.hitRate;
    return `| ${s.name} | ${r(s.summary.ttftMs?.p50, base?.summary.ttftMs?.p50)} | ${r(s.summary.ttftMs?.p90, base?.summary.ttftMs?.p90)} | ${r(s.summary.outputTokensPerS, base?.summary.outputTokensPerS)} | ${hit === undefined ? '–' : `${(hit * 100).toFixed(1)} %`} | ${s.summary.failed} |`;
  });
  return `### ${report.title}\n\n${report.workload.description}\n\n| system | TTFT p50 vs ${report.baseline} | TTFT p90 | output tok/s | prefix hit rate | failed |\n|---|---:|---:|---:|---:|---:|\n${rows.join('\n')}\n`;
}

/** A rate sweep with `--stages` and `--time-scale` applied; other scenarios as they are. */
function withLoad(s: Scenario, rates: readonly number[] | undefined, timeScale: number | undefined): Scenario {
  if (s.kind !== 'sweep' || s.load.kind !== 'rates') return s;
  const seconds = s.load.stages[0]?.seconds ?? 30;
  const stages = rates === undefined ? s.load.stages : rates.map((rate) => ({ rate, seconds }));
  const fleet = timeScale === undefined ? s.fleet : { ...s.fleet, timeScale };
  return { ...s, fleet, load: { ...s.load, stages } };
}

export async function runSuiteCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { quick: { type: 'boolean' }, smoke: { type: 'boolean' }, only: { type: 'string' }, skip: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, stages: { type: 'string' }, 'time-scale': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(SUITE_HELP);
    return 0;
  }
  const size = values.smoke === true ? 'smoke' : values.quick === true ? 'quick' : 'full';
  const only = values.only?.split(',').filter((s) => s !== '');
  const skip = new Set(values.skip?.split(',').filter((s) => s !== ''));
  const badSkip = [...skip].filter((s) => !(s in SYSTEM_NAMES));
  if (badSkip.length > 0) {
    process.stderr.write(`--skip: unknown system(s) ${badSkip.join(', ')} (known: ${Object.keys(SYSTEM_NAMES).join(', ')})\n`);
    return 2;
  }
  const all = scenarios(size);
  const known = [...all, ...optionalScenarios(size)];
  const unknown = (only ?? []).filter((n) => !known.some((s) => s.name === n));
  if (unknown.length > 0) {
    process.stderr.write(`--only: unknown scenario(s) ${unknown.join(', ')} (known: ${known.map((s) => s.name).join(', ')})\n`);
    return 2;
  }
  const rates = values.stages === undefined ? undefined : values.stages.split(',').map(Number);
  if (rates !== undefined && !rates.every((r) => Number.isFinite(r) && r > 0)) {
    process.stderr.write(`--stages: want positive rates separated by commas, e.g. 4,8,12 (got ${values.stages ?? ''})\n`);
    return 2;
  }
  const timeScale = values['time-scale'] === undefined ? undefined : Number(values['time-scale']);
  if (timeScale !== undefined && !(Number.isFinite(timeScale) && timeScale > 0)) {
    process.stderr.write(`--time-scale: want a positive number (got ${values['time-scale'] ?? ''})\n`);
    return 2;
  }
  const without = (s: Scenario): Scenario => withLoad({ ...s, systems: s.systems.filter((id: SystemId) => !skip.has(id)) } as Scenario, rates, timeScale);
  const chosen = (only === undefined ? all : known.filter((s) => only.includes(s.name))).map(without);
  const outDir = values.out ?? join('bench', 'results', size);
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const work = await mkdtemp(join(tmpdir(), 'infergate-bench-'));
  const nginx = ensureNginx(log);
  if (nginx === undefined) log('nginx is not available: the runs go without the nginx baseline (ratios are to gateway random)');
  // Ports the OS says are free: another run (or the tests) may be on this machine.
  const ctx: Context = { work, log, nginx, seed: Number(values.seed ?? 1), frontPort: await freePort(), adminPort: await freePort(), simPort: await freePortOnAll(fleetHosts()), bootstrapPort: await freePortOnAll(fleetHosts()) };
  const command = `infergate bench-suite ${argv.join(' ')}`.trim();
  await mkdir(outDir, { recursive: true });
  const sections: string[] = [];
  // Issue 20's goals for precise mode, one line per sweep that measured them, at the top of the summary.
  const goals: string[] = [];
  const started = Date.now();
  try {
    for (const scenario of chosen) {
      const began = Date.now();
      if (scenario.kind === 'routing') {
        sections.push(headline(await runRouting(scenario, ctx, command, outDir)));
      } else if (scenario.kind === 'sweep') {
        const result = await runSweep(scenario, ctx);
        await writeSweepReport(result, outDir, command);
        const prefix = prefixSection(result).map((line) => line.replace(/^### /, '#### '));
        goals.push(...prefixGoals(result).map((line) => line.replace(/^- /, `- ${scenario.name}: `)));
        sections.push(`### ${scenario.title}\n\n${scenario.capacity}\n\n${goodputTable(result).join('\n')}\n${prefix.length > 0 ? `\n${prefix.join('\n')}` : ''}`);
      } else {
        const result: OverheadResult = await runOverhead(scenario, ctx);
        await writeFile(join(outDir, `${scenario.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
        const md = overheadMarkdown(scenario, result);
        await writeFile(join(outDir, `${scenario.name}.md`), md);
        sections.push(md);
      }
      log(`${scenario.name}: done in ${Math.round((Date.now() - began) / 1000)} s`);
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const machine = machineInfo();
  const summary = `# Infergate benchmark suite (${size})

Run ${new Date().toISOString()} with \`${command}\` in ${Math.round((Date.now() - started) / 1000)} s on ${machine.cpus} × ${machine.cpuModel}, Node ${machine.nodeVersion}.
Each scenario's own report (tables, charts, raw JSON) is beside this file.
${goals.length > 0 ? `\n**Precise prefix-cache mode against its goals (issue 20):**\n\n${goals.join('\n')}\n` : ''}
${sections.join('\n')}`;
  await writeFile(join(outDir, 'suite.md'), summary);
  process.stdout.write(summary);
  log(`results in ${outDir}/`);
  return 0;
}
