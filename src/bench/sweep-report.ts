import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeArrivals } from './arrivals.js';
import { MIN_COMPLETED_SHARE, meetsSlo, type Goodput, type Slo } from './goodput.js';
import { compactRecord, machineInfo, ms, pct, ratio, table, type MachineInfo } from './report.js';
import type { SweepResult, SweepSystemResult } from './suite/sweep.js';
import { lineChart, shortNumber } from './svg.js';

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

/** The Markdown report (starts with a `##` heading, the capacity statement right under it). */
export function sweepMarkdown(result: SweepResult, command: string, machine: MachineInfo, charts: { ttft: string; itl: string }): string {
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
    '### Every stage',
    '',
  ];
  const head = ['system', 'rate (req/s)', ...(sc.load.kind === 'concurrency' ? ['clients'] : []), 'requests', 'completed', 'TTFT p50', 'TTFT p90', 'ITL p99', 'output tok/s', ...slos.map((_, i) => `SLO ${i + 1}`)];
  const rows = result.systems.flatMap((s) =>
    s.points.map((p) => [
      s.name,
      shortNumber(p.rate),
      ...(sc.load.kind === 'concurrency' ? [String(p.concurrency ?? '–')] : []),
      String(p.requests),
      String(p.ok),
      ms(p.ttftP50Ms),
      ms(p.ttftP90Ms),
      ms(p.itlP99Ms),
      shortNumber(p.outputTokensPerS),
      ...slos.map((slo) => (meetsSlo(p, slo) ? 'met' : 'missed')),
    ]),
  );
  out.push(...table(head, rows, ['l']), '', slos.map((slo, i) => `SLO ${i + 1}: ${sloLabel(slo)}.`).join(' '), '');
  const skipped = result.systems.filter((s) => s.skippedStages > 0);
  if (skipped.length > 0) out.push(`Stages not run after a miss: ${skipped.map((s) => `${s.name} ${s.skippedStages}`).join(', ')}.`, '');
  out.push(`![TTFT p90 against load](${charts.ttft})`, '', `![ITL p99 against load](${charts.itl})`, '');
  return out.join('\n');
}

function curve(systems: readonly SweepSystemResult[], y: (p: SweepSystemResult['points'][number]) => number | undefined) {
  return systems.map((s) => ({ name: s.name, points: s.points.flatMap((p) => { const v = y(p); return v === undefined ? [] : [{ x: p.rate, y: v }]; }) }));
}

/** The two charts: TTFT p90 and ITL p99 against the rate, with the first SLO's limits dashed. */
export function sweepCharts(result: SweepResult): { ttft: string; itl: string } {
  const slo = result.scenario.slos[0];
  const x = result.scenario.load.kind === 'rates' ? 'offered load (requests / s)' : 'achieved load (requests / s)';
  return {
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

/** Writes `<name>.json` (every record), `<name>.md` and `<name>-ttft-p90.svg`, `<name>-itl-p99.svg`; returns the Markdown. */
export async function writeSweepReport(result: SweepResult, dir: string, command: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const name = result.scenario.name;
  const files = { ttft: `${name}-ttft-p90.svg`, itl: `${name}-itl-p99.svg` };
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
  };
  await Promise.all([
    writeFile(join(dir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`),
    writeFile(join(dir, `${name}.md`), md),
    writeFile(join(dir, files.ttft), charts.ttft),
    writeFile(join(dir, files.itl), charts.itl),
  ]);
  return md;
}
