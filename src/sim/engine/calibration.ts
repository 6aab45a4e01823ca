/**
 * The simulator's calibration: every published GPU measurement the profiles are fitted to
 * (the published measurements listed in docs/simulator.md), the same experiment re-run on the engine in modelled time, and the allowed
 * ratio between the two. docs/simulator.md prints the table (`node dist/bench/calibrate.js`
 * regenerates it) and test/sim/engine/calibration.test.ts fails when a point leaves its tolerance.
 *
 * Tolerances say how exact the published number is: ±10 % for a value a source states as a fitted
 * formula, ±20–25 % for a value read off a chart or measured end to end on a different software
 * version, ±5 % for KV capacities (arithmetic from the model's architecture).
 */

import { modelledRun, distinctTokens, type ModelledRunResult, type ModelledWorkload } from './modelled-run.js';
import { PROFILES, type EngineProfile } from './profiles.js';

/** Profiles that are calibrated against published measurements. */
export type CalibratedProfile = 'llama-3.1-8b-h100' | 'qwen3-32b-2xh100';

/** Unit of a calibration point's values. */
export type CalibrationUnit = 'ms' | 'tokens' | 'tok/s' | '×';

/** Runs experiments on a profile, sharing runs between the points that read the same one. */
export interface CalibrationLab {
  /** The workload's result on the profile (memoised by `key`). */
  run(key: string, workload: ModelledWorkload): Promise<ModelledRunResult>;
  readonly profile: EngineProfile;
}

/** One published measurement and how to reproduce it. */
export interface CalibrationPoint {
  readonly id: string;
  readonly profile: CalibratedProfile;
  /** What is measured, in the source's setup (batch, prompt and output lengths). */
  readonly quantity: string;
  readonly unit: CalibrationUnit;
  /** The published value (the midpoint when the source gives a range). */
  readonly published: number;
  /** The published value with its unit as the source gives it, when not a single number (e.g. `283k–307k tokens`). */
  readonly publishedText?: string;
  /** Where the number is published. */
  readonly source: string;
  /** Allowed range of simulator ÷ published. */
  readonly tolerance: readonly [min: number, max: number];
  /** Why this tolerance, or what the comparison assumes. */
  readonly note: string;
  /** The simulator's value for the quantity, in `unit`. */
  readonly measure: (lab: CalibrationLab) => Promise<number>;
}

/** A point with the simulator's value. */
export interface CalibrationRow {
  readonly point: CalibrationPoint;
  readonly simulated: number;
  /** simulated ÷ published. */
  readonly ratio: number;
  readonly withinTolerance: boolean;
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function mean(values: readonly number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** One request of `promptTokens` alone on an idle engine. */
function alone(promptTokens: number, outputTokens: number): ModelledWorkload {
  return { count: 1, prompt: (i) => distinctTokens(promptTokens, i), outputTokens, arrivals: { kind: 'batch' } };
}

/** ShareGPT's average request in vLLM's 2024-09 performance post: 202 prompt, 179 output tokens. */
const SHAREGPT_IN = 202;
const SHAREGPT_OUT = 179;

function sharegpt(arrivals: ModelledWorkload['arrivals'], count: number): ModelledWorkload {
  return { count, prompt: (i) => distinctTokens(SHAREGPT_IN, i), outputTokens: SHAREGPT_OUT, arrivals };
}

/** Concurrency 8, ~20k prompt / ~2k output tokens (vLLM FP8 KV-cache post, Table 4). */
const LONG_CONTEXT_C8: ModelledWorkload = { count: 24, prompt: (i) => distinctTokens(20_000, i), outputTokens: 2_000, arrivals: { kind: 'closed', concurrency: 8 } };

const KV_OFFLOAD_POST = 'vLLM blog 2026-01-08, KV-offloading connector, Fig. 1 (read off the chart)';
const FP8_KV_POST = 'vLLM blog 2026-04-22, FP8 KV-cache post';
const PERF_POST_2024 = 'vLLM blog 2024-09-05, v0.6.0 performance update (ShareGPT charts)';
const CHART = 'read off a chart';

function ttftPoint(tokens: number, published: number): CalibrationPoint {
  return {
    id: `8b-ttft-${tokens / 1000}k`,
    profile: 'llama-3.1-8b-h100',
    quantity: `TTFT, one ${tokens.toLocaleString('en-US')}-token prompt alone`,
    unit: 'ms',
    published,
    source: KV_OFFLOAD_POST,
    tolerance: [0.75, 1.25],
    note: CHART,
    measure: async (lab) => (await lab.run(`alone-${tokens}`, alone(tokens, 1))).ttftMs[0] as number,
  };
}

function itlBatch1Point(context: number): CalibrationPoint {
  const output = 64;
  // The fit's value averaged over the decode (context grows by one token per step).
  const published = 6.44 + 4.37e-5 * (context + output / 2);
  return {
    id: `8b-itl-b1-${Math.round(context / 1000)}k`,
    profile: 'llama-3.1-8b-h100',
    quantity: `ITL at batch 1, ${context.toLocaleString('en-US')}-token context`,
    unit: 'ms',
    published,
    publishedText: `${published.toFixed(2)} ms (6.44 + 4.37e-5 × context)`,
    source: `${FP8_KV_POST} (BF16 fit)`,
    tolerance: [0.9, 1.1],
    note: 'the source states a fitted line',
    measure: async (lab) => mean((await lab.run(`alone-${context}-itl`, alone(context, output))).itlMs),
  };
}

/** Mean ITL of ShareGPT-like Poisson load at `rate` req/s against the 2024 post's chart. */
function sharegptItlPoint(rate: number, load: string, published: number, tolerance: readonly [number, number], note: string, count: number): CalibrationPoint {
  return {
    id: `8b-sharegpt-${rate}qps-itl`,
    profile: 'llama-3.1-8b-h100',
    quantity: `mean ITL, ShareGPT-like 202 in / 179 out, ${load}`,
    unit: 'ms',
    published,
    source: PERF_POST_2024,
    tolerance,
    note,
    measure: async (lab) => mean((await lab.run(`sharegpt-${rate}`, sharegpt({ kind: 'poisson', rate, seed: 1 }, count))).itlMs),
  };
}

/** A row of Table 4's BF16 line: 8 clients, ~20k prompt / ~2k output tokens (one shared run). */
function longContextPoint(
  key: string,
  what: string,
  unit: CalibrationUnit,
  published: number,
  tolerance: readonly [number, number],
  note: string,
  read: (r: ModelledRunResult) => number,
): CalibrationPoint {
  return {
    id: `8b-c8-${key}`,
    profile: 'llama-3.1-8b-h100',
    quantity: `${what}, concurrency 8, 20k in / 2k out`,
    unit,
    published,
    source: `${FP8_KV_POST}, Table 4 (BF16 row)`,
    tolerance,
    note,
    measure: async (lab) => read(await lab.run('c8', LONG_CONTEXT_C8)),
  };
}

/** Every calibration point, in the order of the table. */
export const CALIBRATION_POINTS: readonly CalibrationPoint[] = [
  ttftPoint(1_000, 25),
  ttftPoint(10_000, 260),
  ttftPoint(30_000, 1_100),
  ttftPoint(100_000, 6_850),
  itlBatch1Point(1_000),
  itlBatch1Point(32_768),
  {
    id: '8b-batch8-e2e',
    profile: 'llama-3.1-8b-h100',
    quantity: 'end-to-end latency, batch 8, 32 in / 128 out',
    unit: 'ms',
    published: 997.5,
    source: 'vLLM performance-benchmark pages (Buildkite), H100',
    tolerance: [0.75, 1.25],
    note: 'the same run on H200 took 833 ms',
    measure: async (lab) => mean((await lab.run('batch8', { count: 8, prompt: (i) => distinctTokens(32, i), outputTokens: 128, arrivals: { kind: 'batch' } })).e2eMs),
  },
  longContextPoint('ttft', 'TTFT p50', 'ms', 764, [0.75, 1.25], 'end to end through vLLM’s server', (r) => median(r.ttftMs)),
  longContextPoint('itl', 'ITL p50', 'ms', 15.2, [0.8, 1.2], 'a measured table value', (r) => median(r.itlMs)),
  longContextPoint('tput', 'output tok/s', 'tok/s', 450, [0.8, 1.25], 'a measured table value', (r) => r.outputTokensPerS),
  sharegptItlPoint(2, 'Poisson 2 req/s', 8, [0.75, 1.1], 'vLLM 0.6.0 (2024), slower than 2026’s', 200),
  sharegptItlPoint(32, 'Poisson 32 req/s (≈ 40–80 running)', 14, [0.5, 1], 'a bound, not a fit: 2024’s engine is slower, by under 2×', 1_000),
  {
    id: '8b-batch64-tput',
    profile: 'llama-3.1-8b-h100',
    quantity: 'output tok/s, 64 clients, 202 in / 179 out (closed loop)',
    unit: 'tok/s',
    published: 64_000 / 14,
    publishedText: '4,571 tok/s (64 ÷ 14 ms, *derived*)',
    source: PERF_POST_2024,
    tolerance: [1, 2],
    note: 'the bound above, inverted',
    measure: async (lab) => (await lab.run('batch64', sharegpt({ kind: 'closed', concurrency: 64 }, 640))).outputTokensPerS,
  },
  {
    id: '8b-kv-tokens',
    profile: 'llama-3.1-8b-h100',
    quantity: 'KV-cache tokens, 1× H100-80GB, 0.9 memory utilisation',
    unit: 'tokens',
    published: 421_000,
    publishedText: '421k tokens (51.38 GiB)',
    source: 'llm-d-benchmark config_explorer/empirical-vllm-memory-results.md',
    tolerance: [0.95, 1.05],
    note: 'arithmetic from the architecture',
    measure: async (lab) => lab.profile.numGpuBlocks * lab.profile.blockSize,
  },
  {
    id: '32b-kv-tokens',
    profile: 'qwen3-32b-2xh100',
    quantity: 'KV-cache tokens per TP 2 instance on 2× H100',
    unit: 'tokens',
    published: 295_000,
    publishedText: '283k–307k tokens',
    source: 'same file; llm-d.ai blog “KV-cache wins you can see”, A.1',
    tolerance: [283 / 295, 307 / 295],
    note: 'inside the measured range',
    measure: async (lab) => lab.profile.numGpuBlocks * lab.profile.blockSize,
  },
  {
    id: '32b-cached-contrast',
    profile: 'qwen3-32b-2xh100',
    quantity: 'TTFT uncached ÷ cached, ~10k-token prompt sent twice',
    unit: '×',
    published: 4.3 / 0.6,
    publishedText: '7.2× (4.3 s → 0.6 s)',
    source: 'llm-d.ai blog “KV-cache wins you can see”',
    tolerance: [0.8, 1.25],
    note: 'the contrast, not the absolute times',
    measure: async (lab) => {
      const r = await lab.run('twice-10k', { count: 2, prompt: () => distinctTokens(10_000, 7), outputTokens: 1, arrivals: { kind: 'sequential' } });
      return (r.ttftMs[0] as number) / (r.ttftMs[1] as number);
    },
  },
  {
    id: '32b-itl-b1',
    profile: 'qwen3-32b-2xh100',
    quantity: 'ITL at batch 1, 1k-token context',
    unit: 'ms',
    published: 18.6,
    publishedText: '18.6 ms (Llama-3.3-70B FP8, TP 2)',
    source: 'NVIDIA NIM benchmarking docs',
    tolerance: [0.8, 1.1],
    note: 'nearest TP 2 point: 35 GB of weights per GPU vs 32.75 GB',
    measure: async (lab) => mean((await lab.run('alone-1000-itl', alone(1_000, 64))).itlMs),
  },
];

/** Runs every point (or the given ones) on its profile and compares it with the published value. */
export async function measureCalibration(points: readonly CalibrationPoint[] = CALIBRATION_POINTS): Promise<CalibrationRow[]> {
  const labs = new Map<CalibratedProfile, CalibrationLab>();
  const lab = (name: CalibratedProfile): CalibrationLab => {
    let l = labs.get(name);
    if (l === undefined) {
      const profile = PROFILES[name];
      const runs = new Map<string, Promise<ModelledRunResult>>();
      l = {
        profile,
        run: (key, workload) => {
          let r = runs.get(key);
          if (r === undefined) {
            r = modelledRun(profile, workload);
            runs.set(key, r);
          }
          return r;
        },
      };
      labs.set(name, l);
    }
    return l;
  };
  const rows: CalibrationRow[] = [];
  for (const point of points) {
    const simulated = await point.measure(lab(point.profile));
    const ratio = simulated / point.published;
    rows.push({ point, simulated, ratio, withinTolerance: ratio >= point.tolerance[0] && ratio <= point.tolerance[1] });
  }
  return rows;
}

function formatValue(v: number, unit: CalibrationUnit): string {
  if (unit === 'tokens') return `${Math.round(v / 1000)}k`;
  if (unit === '×') return `${v.toFixed(1)}×`;
  if (unit === 'tok/s') return Math.round(v).toLocaleString('en-US');
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(v >= 10 ? 1 : 2);
}

function formatTolerance([min, max]: readonly [number, number]): string {
  const lo = Math.round((1 - min) * 100);
  const hi = Math.round((max - 1) * 100);
  if (lo === hi) return `±${lo} %`;
  return `${lo === 0 ? '0 %' : `−${lo} %`} / ${hi === 0 ? '0 %' : `+${hi} %`}`;
}

/** The calibration table as Markdown (what docs/simulator.md shows). */
export function calibrationMarkdown(rows: readonly CalibrationRow[]): string {
  const out = [
    '| profile | quantity | published | source | simulator | ratio | tolerance |',
    '|---|---|---:|---|---:|---:|---|',
  ];
  for (const { point: p, simulated, ratio, withinTolerance } of rows) {
    const unit = p.unit === '×' ? '' : ` ${p.unit}`;
    const published = p.publishedText ?? `${formatValue(p.published, p.unit)}${unit}`;
    out.push(
      `| ${p.profile} | ${p.quantity} | ${published} | ${p.source} | ${formatValue(simulated, p.unit)}${unit} | ${ratio.toFixed(2)}${withinTolerance ? '' : ' **out**'} | ${formatTolerance(p.tolerance)}: ${p.note} |`,
    );
  }
  return `${out.join('\n')}\n`;
}
