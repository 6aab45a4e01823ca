import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeArrivals } from './arrivals.js';
import { MIN_COMPLETED_SHARE, meetsSlo, type Goodput, type Slo } from './goodput.js';
import { compactRecord, machineInfo, ms, pct, ratio, table, type MachineInfo } from './report.js';
import type { SweepResult, SweepSystemResult } from './suite/sweep.js';
import { lineChart, shortNumber } from './svg.js';
import { prefixCacheTable, prefixGoals, prefixRows } from './prefix-report.js';

/*
 * A sweep's report. Its first line says how much KV the engines have against the workload (and,
 * where a scenario shrinks it, why), because that decides what the numbers mean. Then the goodput
 * table — each system's highest sustained rate under each SLO, with the ratio to nginx
 * round-robin measured in the same run — then every stage, then the curves.
 */

/** `2 s / 100 ms`. */
export function sloLabel(slo: Slo): string {
  return `TTFT p90 ≤ ${ms(slo.ttftP90Ms)}, ITL p99 ≤ ${ms(slo.itlP99Ms)}`;
}

/** A goodput cell: `8 req/s`, `≥ 22 req/s` when the top stage was met, `none` when no stage was. */
export function goodputRate(g: Goodput): string {
  if (g.rate === undefined) return 'none';
  return `${g.bounded ? '' : '≥ '}${shortNumber(g.rate)} req/s`;
}

function goodputRatio(g: Goodput, base: Goodput | undefined): string {
  if (base === undefined) return '–';
  if (g.rate === undefined) return base.rate === undefined ? '–' : '0×';
  if (base.rate === undefined) return '∞ (baseline sustains none)';
  return `${g.bounded && base.bounded ? '' : '≥ '}${ratio(g.rate, base.rate)}`.replace('≥ ≥', '≥');
}

const BASELINE = 'nginx round-robin';

/** The goodput table rows (one per system), for the report and the suite summary. */
export function goodputTable(result: SweepResult): string[] {
  const base = result.systems.find((s) => s.name === BASELINE);
  const slos = result.scenario.slos;
  const head = ['system', ...slos.flatMap((slo) => [`goodput (${sloLabel(slo)})`, `vs ${BASELINE}`, 'output tok/s there']), 'prefix hit rate'];
  const rows = result.systems.map((s) => [
    s.name,
    ...slos.flatMap((_, i) => {
      const g = s.goodput[i] as Goodput;
      return [goodputRate(g), goodputRatio(g, base?.goodput[i]), g.outputTokensPerS === undefined ? '–' : shortNumber(g.outputTokensPerS)];
    }),
    pct(s.prefixCache?.hitRate),
  ]);
  return table(head, rows, ['l', ...slos.flatMap(() => ['r', 'r', 'r'] as const), 'r']);
}

function loadDescription(result: SweepResult): string {
  const { load, fleet } = result.scenario;
  const scale = fleet.timeScale ?? 1;
  const pace = scale === 1 ? 'in real time' : `with modelled time ${scale}× faster than real time (latencies are modelled)`;
  if (load.kind === 'rates') {
    return `Open loop, ${describeArrivals({ kind: 'sweep', stages: load.stages })} per stage, back to back on the same pool, ${pace}; after the last stage its requests get ${load.drainSeconds} s to finish. A system's sweep stops once a stage has certainly missed the TTFT limit (more than 10 % of its requests over it, or more than ${Math.round((1 - MIN_COMPLETED_SHARE) * 100)} % failed); the stages above are not run.`;
  }
  return `Closed loop, ${load.levels.join(', ')} conversations at once (one level after the other on the same pool, ${load.seconds} s each, new conversations per level), ${pace}. The rate of a level is the one the system achieved. A system's sweep stops after a level misses the TTFT limit.`;
}

/** The prefix-cache section (hit rates against the oracle, the goals), with its heading; empty when the sweep has none. */
export function prefixSection(result: SweepResult): string[] {
  const rows = prefixCacheTable(result);
  if (rows.length === 0) return [];
  const goals = prefixGoals(result);
  return ['### Prefix cache against the oracle', '', ...rows, '', ...(goals.length > 0 ? [...goals, ''] : [])];
}

/** The Markdown report (starts with a `##` heading, the capacity statement right under it). */
export function sweepMarkdown(result: SweepResult, command: string, machine: MachineInfo, charts: SweepCharts): string {
  const sc = result.scenario;
  const m = machine;
  const slos = sc.slos;
  const out: string[] = [
    `## ${sc.title}`,
    '',
    `**KV capacity.** ${sc.capacity}`,
    '',
    sc.why,
    '',
    `Run ${result.date} on ${m.cpuModel} × ${m.cpus}, ${m.memoryGiB} GiB, ${m.os} (${m.arch}), Node ${m.nodeVersion}: \`${command}\`.`,
    '',
    `**Load.** ${loadDescription(result)}`,
    '',
    `**Goodput** is the highest rate a system sustains: that stage and every stage below it meet the SLO — TTFT p90 and ITL p99 (over every token gap) of the requests that arrived in the stage within the limits, and at least ${Math.round(MIN_COMPLETED_SHARE * 100)} % of them completed. Output tok/s is that stage's completed output tokens over its duration. "≥" marks a system that met the SLO at the highest stage offered.`,
    '',
    ...goodputTable(result),
    '',
    ...prefixSection(result),
    '### Every stage',
    '',
  ];
  const head = ['system', 'rate (req/s)', ...(sc.load.kind === 'concurrency' ? ['clients'] : []), 'requests', 'completed', 'TTFT p50', 'TTFT p90', 'ITL p50', 'ITL p99', 'output tok/s', ...slos.map((_, i) => `SLO ${i + 1}`)];
  const rows = result.systems.flatMap((s) =>
    s.points.map((p) => [
      s.name,
      shortNumber(p.rate),
      ...(sc.load.kind === 'concurrency' ? [String(p.concurrency ?? '–')] : []),
      String(p.requests),
      String(p.ok),
      ms(p.ttftP50Ms),
      ms(p.ttftP90Ms),
      ms(p.itlP50Ms),
      ms(p.itlP99Ms),
      shortNumber(p.outputTokensPerS),
      ...slos.map((slo) => (meetsSlo(p, slo) ? 'met' : 'missed')),
    ]),
  );
  out.push(...table(head, rows, ['l']), '', slos.map((slo, i) => `SLO ${i + 1}: ${sloLabel(slo)}.`).join(' '), '');
  const skipped = result.systems.filter((s) => s.skippedStages > 0);
  if (skipped.length > 0) out.push(`Stages not run after a miss: ${skipped.map((s) => `${s.name} ${s.skippedStages}`).join(', ')}.`, '');
  if (sc.load.kind === 'rates') out.push(...sameRateRatios(result), '');
  out.push(
    `![TTFT p90 against load](${charts.ttft})`,
    '',
    `![ITL p99 against load](${charts.itl})`,
    '',
    `![ITL p50 against load](${charts.itlP50})`,
    '',
    `![Output tokens per second against load](${charts.throughput})`,
    '',
  );
  return out.join('\n');
}

/**
 * Open-loop sweeps offer every system the same rates: each system's latencies and throughput at
 * each stage as ratios to nginx round-robin's at that stage (below 1× is better for latencies,
 * above for throughput). Stages the baseline did not run are left out.
 */
export function sameRateRatios(result: SweepResult): string[] {
  const base = result.systems.find((s) => s.name === BASELINE);
  if (base === undefined) return [];
  const others = result.systems.filter((s) => s !== base);
  if (others.length === 0) return [];
  const r = (v: number | undefined, b: number | undefined): string => (v === undefined || b === undefined || b === 0 ? '–' : ratio(v, b));
  const rows = others.flatMap((s) =>
    s.points.flatMap((p) => {
      const b = base.points.find((q) => q.stage === p.stage);
      if (b === undefined) return [];
      return [[s.name, shortNumber(p.rate), r(p.ttftP50Ms, b.ttftP50Ms), r(p.ttftP90Ms, b.ttftP90Ms), r(p.itlP50Ms, b.itlP50Ms), r(p.itlP99Ms, b.itlP99Ms), r(p.outputTokensPerS, b.outputTokensPerS)]];
    }),
  );
  if (rows.length === 0) return [];
  return [`### Against ${BASELINE} at the same rate`, '', ...table(['system', 'rate (req/s)', 'TTFT p50', 'TTFT p90', 'ITL p50', 'ITL p99', 'output tok/s'], rows, ['l', 'r', 'r', 'r', 'r', 'r', 'r'])];
}

function curve(systems: readonly SweepSystemResult[], y: (p: SweepSystemResult['points'][number]) => number | undefined) {
  return systems.map((s) => ({ name: s.name, points: s.points.flatMap((p) => { const v = y(p); return v === undefined ? [] : [{ x: p.rate, y: v }]; }) }));
}

/** A sweep's charts (SVG text, or file names in the Markdown). */
export interface SweepCharts {
  readonly ttft: string;
  readonly itl: string;
  readonly itlP50: string;
  readonly throughput: string;
}

/** The charts against the rate: TTFT p90 and ITL p99 with the first SLO's limits dashed, ITL p50, output tokens/s. */
export function sweepCharts(result: SweepResult): SweepCharts {
  const slo = result.scenario.slos[0];
  const x = result.scenario.load.kind === 'rates' ? 'offered load (requests / s)' : 'achieved load (requests / s)';
  return {
    itlP50: lineChart(curve(result.systems, (p) => p.itlP50Ms), { title: `ITL p50 against load: ${result.scenario.name}`, xLabel: x, yLabel: 'ITL p50' }),
    throughput: lineChart(curve(result.systems, (p) => p.outputTokensPerS), {
      title: `Output tokens per second against load: ${result.scenario.name}`,
      xLabel: x,
      yLabel: 'output tokens / s',
      formatY: shortNumber,
      yScale: 'linear',
    }),
    ttft: lineChart(curve(result.systems, (p) => p.ttftP90Ms), {
      title: `TTFT p90 against load: ${result.scenario.name}`,
      xLabel: x,
      yLabel: 'TTFT p90',
      ...(slo === undefined ? {} : { threshold: { y: slo.ttftP90Ms, label: `SLO ${ms(slo.ttftP90Ms)}` } }),
    }),
    itl: lineChart(curve(result.systems, (p) => p.itlP99Ms), {
      title: `ITL p99 against load: ${result.scenario.name}`,
      xLabel: x,
      yLabel: 'ITL p99',
      ...(slo === undefined ? {} : { threshold: { y: slo.itlP99Ms, label: `SLO ${ms(slo.itlP99Ms)}` } }),
    }),
  };
}

/** Writes `<name>.json` (every record), `<name>.md` and the charts `<name>-ttft-p90.svg`, `-itl-p99.svg`, `-itl-p50.svg`, `-throughput.svg`; returns the Markdown. */
export async function writeSweepReport(result: SweepResult, dir: string, command: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const name = result.scenario.name;
  const files: SweepCharts = { ttft: `${name}-ttft-p90.svg`, itl: `${name}-itl-p99.svg`, itlP50: `${name}-itl-p50.svg`, throughput: `${name}-throughput.svg` };
  const machine = machineInfo();
  const charts = sweepCharts(result);
  const md = sweepMarkdown(result, command, machine, files);
  const json = {
    format: 'infergate-sweep/v1',
    title: result.scenario.title,
    date: result.date,
    command,
    machine,
    scenario: result.scenario,
    params: result.params,
    systems: result.systems.map((s) => ({ ...s, records: s.records.map(compactRecord) })),
    ...(prefixCacheTable(result).length === 0 ? {} : { prefixCache: { rows: prefixRows(result), goals: prefixGoals(result) } }),
  };
  await Promise.all([
    writeFile(join(dir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`),
    writeFile(join(dir, `${name}.md`), md),
    writeFile(join(dir, files.ttft), charts.ttft),
    writeFile(join(dir, files.itl), charts.itl),
    writeFile(join(dir, files.itlP50), charts.itlP50),
    writeFile(join(dir, files.throughput), charts.throughput),
  ]);
  return md;
}
