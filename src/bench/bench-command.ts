import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { describeArrivals } from './arrivals.js';
import { resolveBenchPlan, WORKLOAD_FLAGS, type BenchPlan } from './config.js';
import { machineInfo, writeReport, writeResultsJson, type BenchReport } from './report.js';
import { runBench } from './runner.js';
import { prefixCacheDelta, scrapePrefixCacheStats, type PrefixCacheScrape } from './prefix-cache.js';
import { summarize } from './summary.js';
import { formatSummaryText } from './summary-text.js';
import { BenchConfigError, createWorkload, type WorkloadParams } from './workloads/index.js';

export const BENCH_HELP = `infergate bench: send an OpenAI workload to a URL and report latency, throughput and routing

Usage:
  infergate bench --url http://127.0.0.1:8080 --workload shared-prefix [options]
  infergate bench --config bench.yaml [options]          (flags override the file)

Workload (seeded: the same flags send the same requests):
      --workload KIND        shared-prefix | multi-turn | random | lora
      --config FILE          YAML: url, model, api, seed, name, workload{type,...}, load{...},
                             timeoutSeconds, endpointHeader, ignoreEos, metricsUrls
      --model NAME           model in the body (default mymodel; lora uses adapter names)
      --api chat|completions (default chat)
      --seed N               (default 1)
  shared-prefix  --preset P (inference-perf, kubecon-demo, sglang, gie-high-cache, gie-low-cache,
                 gie-long-questions, gie-ci) --groups G --users-per-group U --system-tokens S
                 --question-tokens Q --output-tokens O --ordered      (default 10 x 10, 100/50/50)
  multi-turn     --conversations C --turns T --active-conversations A --system-tokens S
                 --common-prefix-tokens P --user-tokens Q --output-tokens O  (default 8 x 4, 4 active)
  random         --input-tokens I --output-tokens O                          (default 512 / 128)
  lora           --adapters a,b,c | --adapter-count K, --skew Z (Zipf exponent, 0 = uniform)
                 --input-tokens I --output-tokens O
  Tokens are approximate: 4 characters each.

Load (one of --rate, --rates, --concurrency; default --concurrency 8):
      --rate R               Poisson arrivals, R requests/s
      --rates 2,4,8          a sweep of Poisson stages ...
      --stage-seconds S      ... of S seconds each (default 30)
      --concurrency N        closed loop: N clients, each sending when its last request ends
      --max-concurrency N    open loop: at most N in flight (later arrivals wait, and it is recorded)
      --requests N           stop after N requests (default: one pass of the workload, unless
                             --duration or --rates is given)
      --duration S           stop sending after S seconds; requests in flight still finish
      --timeout S            per-request deadline (default 300)

Output:
      --name NAME            the system's name in reports (default target)
      --out FILE             results JSON (summary + every request's timings)
      --report-dir DIR       bench.json, bench.md and SVG charts into DIR
      --endpoint-header H    response header naming the endpoint (default x-sim-pod)
      --metrics-url URL      a model server's /metrics, read before and after for the prefix-cache
                             hit rate (repeatable)
      --no-ignore-eos        do not send ignore_eos: true
      --quiet                no progress line
`;

/** Where the command writes; tests pass their own. */
export interface BenchIo {
  readonly stdout: { write(text: string): unknown };
  readonly stderr: { write(text: string): unknown; readonly isTTY?: boolean };
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function describeWorkload(p: WorkloadParams): string {
  switch (p.type) {
    case 'shared-prefix':
      return `shared-prefix ${p.groups} groups × ${p.usersPerGroup} users, system ${p.systemTokens} / question ${p.questionTokens} / output ${p.outputTokens} tokens`;
    case 'multi-turn':
      return `multi-turn ${p.conversations} conversations × ${p.turns} turns (${p.activeConversations} active), system ${p.systemTokens} / user ${p.userTokens} / output ${p.outputTokens} tokens`;
    case 'random':
      return `random prompts, input ${p.inputTokens} / output ${p.outputTokens} tokens`;
    case 'lora':
      return `lora over ${p.adapters.length} adapters (skew ${p.skew}), input ${p.inputTokens} / output ${p.outputTokens} tokens`;
  }
}

const OPTIONS: NonNullable<ParseArgsConfig['options']> = {
  url: { type: 'string' },
  workload: { type: 'string' },
  config: { type: 'string' },
  model: { type: 'string' },
  api: { type: 'string' },
  seed: { type: 'string' },
  name: { type: 'string' },
  rate: { type: 'string' },
  rates: { type: 'string' },
  'stage-seconds': { type: 'string' },
  concurrency: { type: 'string' },
  'max-concurrency': { type: 'string' },
  requests: { type: 'string' },
  duration: { type: 'string' },
  timeout: { type: 'string' },
  out: { type: 'string' },
  'report-dir': { type: 'string' },
  'endpoint-header': { type: 'string' },
  'metrics-url': { type: 'string', multiple: true },
  'no-ignore-eos': { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  ...Object.fromEntries(Object.entries(WORKLOAD_FLAGS).map(([flag, spec]) => [flag, { type: spec.kind === 'bool' ? ('boolean' as const) : ('string' as const) }])),
};

/**
 * `infergate bench`: resolves the plan from flags and `--config`, runs it (Ctrl-C stops sending,
 * aborts requests in flight and still reports), prints the summary, writes `--out` and
 * `--report-dir`. Returns the exit code: 0 when at least one request succeeded, 1 when none did,
 * 2 for bad flags or configuration (printed as `field (--flag): reason`). Flag syntax errors throw
 * node's ERR_PARSE_ARGS_* errors, which the CLI's main turns into exit code 2.
 */
export async function runBenchCommand(argv: string[], io: BenchIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  if (values['help'] === true) {
    io.stdout.write(BENCH_HELP);
    return 0;
  }
  let plan: BenchPlan;
  try {
    const configPath = typeof values['config'] === 'string' ? values['config'] : undefined;
    let file: unknown;
    if (configPath !== undefined) {
      try {
        file = parseYaml(await readFile(configPath, 'utf8'));
      } catch (err) {
        throw new BenchConfigError([`${configPath}: ${err instanceof Error ? err.message : String(err)}`]);
      }
    }
    plan = resolveBenchPlan(values, file, configPath);
  } catch (err) {
    if (err instanceof BenchConfigError) {
      io.stderr.write(`infergate bench: ${err.problems.join('\n  ')}\n`);
      return 2;
    }
    throw err;
  }

  const workload = createWorkload(plan.workload, plan.seed, plan.model);
  const abort = new AbortController();
  const onSigint = (): void => {
    io.stderr.write('\ninfergate bench: stopping (Ctrl-C again to quit at once)\n');
    process.off('SIGINT', onSigint);
    abort.abort();
  };
  process.on('SIGINT', onSigint);
  let before: PrefixCacheScrape | undefined;
  try {
    if (plan.metricsUrls.length > 0) before = await scrapePrefixCacheStats(plan.metricsUrls);
    const run = await runBench({
      baseUrl: plan.url,
      workload,
      arrivals: plan.arrivals,
      seed: plan.seed,
      ...(plan.maxRequests === undefined ? {} : { maxRequests: plan.maxRequests }),
      ...(plan.durationSeconds === undefined ? {} : { durationSeconds: plan.durationSeconds }),
      ...(plan.maxConcurrency === undefined ? {} : { maxConcurrency: plan.maxConcurrency }),
      api: plan.api,
      timeoutMs: plan.timeoutMs,
      endpointHeader: plan.endpointHeader,
      ignoreEos: plan.ignoreEos,
      signal: abort.signal,
      progress: values['quiet'] === true ? false : { stream: io.stderr, label: plan.name },
    });
    let prefixCache;
    if (before !== undefined) {
      const after = await scrapePrefixCacheStats(plan.metricsUrls);
      for (const s of after.servers) if ('error' in s) io.stderr.write(`infergate bench: ${s.url}: ${s.error}\n`);
      prefixCache = prefixCacheDelta(before, after);
    }
    const summary = summarize(run.records, prefixCache === undefined ? {} : { prefixCache });
    io.stdout.write(formatSummaryText(plan.name, summary));

    const report: BenchReport = {
      title: `${plan.workload.type} workload`,
      date: run.startedAt,
      command: ['infergate', 'bench', ...argv].map(quote).join(' '),
      machine: machineInfo(),
      workload: { description: describeWorkload(plan.workload), arrivals: describeArrivals(plan.arrivals), params: { ...plan.workload, seed: plan.seed, model: plan.model, api: plan.api, stoppedBy: run.stoppedBy } },
      baseline: plan.name,
      systems: [{ name: plan.name, summary, records: run.records }],
    };
    const out = values['out'];
    if (typeof out === 'string') {
      await writeResultsJson(report, out);
      io.stderr.write(`infergate bench: results in ${out}\n`);
    }
    const dir = values['report-dir'];
    if (typeof dir === 'string') {
      const written = await writeReport(report, dir);
      io.stderr.write(`infergate bench: report in ${written.markdown}\n`);
    }
    return summary.ok > 0 ? 0 : 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
