import { mkdir, writeFile } from 'node:fs/promises';
import { arch, cpus, platform, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import type { RequestRecord } from './runner.js';
import { mean } from './stats.js';
import type { BenchSummary } from './summary.js';
import { barChart, cdfChart, shareChart, shortNumber } from './svg.js';

/*
 * Results for people and for machines. The JSON keeps everything needed to recompute the tables
 * (every request's timings, without answer texts or per-token gaps, which would make a long run's
 * file hundreds of megabytes). The Markdown section is what docs/benchmarks.md pastes: machine,
 * exact command, absolute numbers, then ratios against the named baseline, so a reader compares
 * systems measured in the same run on the same machine.
 */

/** Where the numbers were measured. */
export interface MachineInfo {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memoryGiB: number;
  readonly nodeVersion: string;
  readonly os: string;
  readonly arch: string;
}

/** This machine. */
export function machineInfo(): MachineInfo {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cpus: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    nodeVersion: process.version,
    os: `${platform()} ${release()}`,
    arch: arch(),
  };
}

/** One system measured (e.g. `nginx round-robin`, `gateway PREFIX_CACHE`). */
export interface SystemResult {
  readonly name: string;
  readonly summary: BenchSummary;
  readonly records: readonly RequestRecord[];
}

/** Everything a report shows. */
export interface BenchReport {
  readonly title: string;
  /** ISO date of the run. */
  readonly date: string;
  /** The exact command line that produced it. */
  readonly command: string;
  readonly machine: MachineInfo;
  /** Workload and arrival description, and any parameters worth recording. */
  readonly workload: { readonly description: string; readonly arrivals: string; readonly params: Readonly<Record<string, unknown>> };
  /** Name of the system the others are compared with; none (or a single system) ⇒ no comparison table. */
  readonly baseline?: string;
  readonly systems: readonly SystemResult[];
}

/** A request in the results file: the record without answer text and per-token gaps. */
export type CompactRecord = Omit<RequestRecord, 'text' | 'itlMs'> & { readonly itlCount: number; readonly itlMeanMs: number | undefined };

/** Drops what the results file does not keep (see {@link CompactRecord}). */
export function compactRecord(r: RequestRecord): CompactRecord {
  const { text: _text, itlMs, ...rest } = r;
  return { ...rest, itlCount: itlMs.length, itlMeanMs: mean(itlMs) };
}

/** The results file's content. */
export function resultsJson(report: BenchReport): string {
  const doc = {
    format: 'infergate-bench/v1',
    ...report,
    systems: report.systems.map((s) => ({ name: s.name, summary: s.summary, records: s.records.map(compactRecord) })),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** `value / base` as `0.42×`; `–` when either is missing or the base is 0. */
export function ratio(value: number | undefined, base: number | undefined): string {
  if (value === undefined || base === undefined || base === 0) return '–';
  const r = value / base;
  return `${r >= 10 ? r.toFixed(1) : r >= 0.1 ? r.toFixed(2) : r.toPrecision(2)}×`;
}

/** A latency for a table cell: `850 ms`, `1.25 s`, `12.5 s`; `–` when missing. */
export function ms(v: number | undefined): string {
  if (v === undefined) return '–';
  return v >= 1000 ? `${(v / 1000).toFixed(v >= 10_000 ? 1 : 2)} s` : `${v.toFixed(v >= 100 ? 0 : 1)} ms`;
}

/** A share (0..1) for a table cell: `42.0%`; `–` when missing. */
export function pct(v: number | undefined): string {
  return v === undefined ? '–' : `${(v * 100).toFixed(1)}%`;
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** A Markdown table's lines: header, alignment row (`l` or `r` per column, default `r`), rows. */
export function table(head: readonly string[], rows: ReadonlyArray<readonly string[]>, align: readonly ('l' | 'r')[]): string[] {
  return [
    `| ${head.map(cell).join(' | ')} |`,
    `|${head.map((_, i) => ((align[i] ?? 'r') === 'r' ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ];
}

/** Chart file names a Markdown section links to (relative to it). */
export interface ChartFiles {
  readonly ttft: string;
  readonly throughput: string;
  readonly endpoints: string;
}

/** The report's Markdown section (starts with a `##` heading). */
export function renderMarkdown(report: BenchReport, charts?: ChartFiles): string {
  const m = report.machine;
  const out: string[] = [
    `## ${report.title}`,
    '',
    `Run ${report.date} on ${m.cpuModel} × ${m.cpus}, ${m.memoryGiB} GiB, ${m.os} (${m.arch}), Node ${m.nodeVersion}.`,
    `Workload: ${report.workload.description}; arrivals: ${report.workload.arrivals}.`,
    '',
    '```sh',
    report.command,
    '```',
    '',
  ];
  const anyPrefix = report.systems.some((s) => s.summary.prefixCache !== undefined);
  out.push(
    ...table(
      ['System', 'Requests', 'Errors', 'Req/s', 'Output tok/s', 'TTFT p50', 'TTFT p90', 'TTFT p99', 'ITL p50', 'ITL p90', 'ITL p99', 'E2E p50', 'E2E p90', 'E2E p99', ...(anyPrefix ? ['Prefix hit rate'] : [])],
      report.systems.map(({ name, summary: s }) => [
        name,
        String(s.requests),
        String(s.failed),
        s.requestsPerS.toFixed(2),
        shortNumber(s.outputTokensPerS),
        ms(s.ttftMs?.p50),
        ms(s.ttftMs?.p90),
        ms(s.ttftMs?.p99),
        ms(s.itlMs?.p50),
        ms(s.itlMs?.p90),
        ms(s.itlMs?.p99),
        ms(s.e2eMs?.p50),
        ms(s.e2eMs?.p90),
        ms(s.e2eMs?.p99),
        ...(anyPrefix ? [pct(s.prefixCache?.hitRate)] : []),
      ]),
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
    '',
  );

  const base = report.systems.find((s) => s.name === report.baseline);
  // A system compared only with itself says nothing.
  if (base !== undefined && report.systems.length > 1) {
    const b = base.summary;
    out.push(
      `### Compared with ${base.name}`,
      '',
      'Each value divided by the baseline\'s, from the same run: below 1× is better for TTFT, above 1× is better for throughput and hit rate.',
      '',
      ...table(
        ['System', 'TTFT p50', 'TTFT p90', 'Output tok/s', ...(anyPrefix ? ['Prefix hit rate'] : [])],
        report.systems.map(({ name, summary: s }) => [
          name,
          `${ratio(s.ttftMs?.p50, b.ttftMs?.p50)} (${ms(s.ttftMs?.p50)})`,
          `${ratio(s.ttftMs?.p90, b.ttftMs?.p90)} (${ms(s.ttftMs?.p90)})`,
          `${ratio(s.outputTokensPerS, b.outputTokensPerS)} (${shortNumber(s.outputTokensPerS)})`,
          ...(anyPrefix ? [`${ratio(s.prefixCache?.hitRate, b.prefixCache?.hitRate)} (${pct(s.prefixCache?.hitRate)})`] : []),
        ]),
        ['l', 'r', 'r', 'r', 'r'],
      ),
      '',
    );
  }

  const endpoints = [...new Set(report.systems.flatMap((s) => s.summary.endpoints.map((e) => e.endpoint)))].sort(new Intl.Collator('en', { numeric: true }).compare);
  if (endpoints.length > 0) {
    out.push(
      '### Requests per endpoint',
      '',
      ...table(
        ['System', ...endpoints],
        report.systems.map(({ name, summary: s }) => [name, ...endpoints.map((e) => pct(s.endpoints.find((x) => x.endpoint === e)?.share ?? 0))]),
        ['l', ...endpoints.map(() => 'r' as const)],
      ),
      '',
    );
  }

  const failing = report.systems.filter((s) => s.summary.failed > 0);
  if (failing.length > 0) {
    out.push('### Errors', '');
    for (const s of failing) {
      const kinds = Object.entries(s.summary.errorsByKind).map(([k, n]) => `${k}: ${n}`).join(', ');
      out.push(`- ${s.name}: ${s.summary.failed} of ${s.summary.requests} failed (${kinds})`);
    }
    out.push('');
  }

  if (charts !== undefined) {
    out.push(`![TTFT distribution per system](${charts.ttft})`, '', `![Output tokens per second per system](${charts.throughput})`, '', `![Requests per endpoint](${charts.endpoints})`, '');
  }
  return out.join('\n');
}

/** The three charts of a report, as SVG text. */
export function renderCharts(report: BenchReport): { ttft: string; throughput: string; endpoints: string } {
  const base = report.systems.find((s) => s.name === report.baseline);
  return {
    ttft: cdfChart(
      report.systems.map((s) => ({ name: s.name, valuesMs: s.records.flatMap((r) => (r.ok && r.ttftMs !== undefined ? [r.ttftMs] : [])) })),
      { title: `Time to first token — ${report.title}` },
    ),
    throughput: barChart(
      report.systems.map((s) => ({
        name: s.name,
        value: s.summary.outputTokensPerS,
        ...(base === undefined ? {} : { note: `${ratio(s.summary.outputTokensPerS, base.summary.outputTokensPerS)} ${base.name}` }),
      })),
      { title: `Output tokens per second — ${report.title}`, yLabel: 'output tokens / s' },
    ),
    endpoints: shareChart(
      report.systems.map((s) => ({ name: s.name, shares: s.summary.endpoints })),
      { title: `Requests per endpoint — ${report.title}` },
    ),
  };
}

/** Paths {@link writeReport} wrote. */
export interface WrittenReport {
  readonly json: string;
  readonly markdown: string;
  readonly charts: ChartFiles;
}

/** Writes the results JSON to `path` (creating its folder). */
export async function writeResultsJson(report: BenchReport, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, resultsJson(report));
}

/**
 * Writes `<basename>.json`, `<basename>.md` and three SVG charts (`<basename>-ttft.svg`,
 * `-throughput.svg`, `-endpoints.svg`) into `dir`, creating it. Default basename `bench`.
 */
export async function writeReport(report: BenchReport, dir: string, basename = 'bench'): Promise<WrittenReport> {
  await mkdir(dir, { recursive: true });
  const names: ChartFiles = { ttft: `${basename}-ttft.svg`, throughput: `${basename}-throughput.svg`, endpoints: `${basename}-endpoints.svg` };
  const svgs = renderCharts(report);
  const json = join(dir, `${basename}.json`);
  const markdown = join(dir, `${basename}.md`);
  await Promise.all([
    writeFile(json, resultsJson(report)),
    writeFile(markdown, renderMarkdown(report, names)),
    writeFile(join(dir, names.ttft), svgs.ttft),
    writeFile(join(dir, names.throughput), svgs.throughput),
    writeFile(join(dir, names.endpoints), svgs.endpoints),
  ]);
  return { json, markdown, charts: { ttft: join(dir, names.ttft), throughput: join(dir, names.throughput), endpoints: join(dir, names.endpoints) } };
}
