/**
 * A small micro-benchmark harness: each case runs against a baseline in the same process and the
 * result is reported as a ratio, because absolute nanoseconds on a shared machine mean little.
 * Each function is warmed up, then timed in batches until `minMs` has passed; the median batch
 * gives ns per operation.
 */
export interface Case {
  readonly name: string;
  readonly fn: () => unknown;
}

export interface Comparison {
  readonly title: string;
  readonly baseline: Case;
  readonly cases: readonly Case[];
}

let sink: unknown;

function nsPerOp(fn: () => unknown, minMs: number): number {
  for (let i = 0; i < 50; i++) sink = fn();
  let batch = 1;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < batch; i++) sink = fn();
    if (performance.now() - t > 5) break;
    batch *= 2;
  }
  const samples: number[] = [];
  const end = performance.now() + minMs;
  while (performance.now() < end || samples.length < 5) {
    const t = performance.now();
    for (let i = 0; i < batch; i++) sink = fn();
    samples.push(((performance.now() - t) * 1e6) / batch);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] as number;
}

function human(ns: number): string {
  return ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e3 ? `${(ns / 1e3).toFixed(1)} µs` : `${ns.toFixed(0)} ns`;
}

export function run(comparisons: readonly Comparison[], minMs = 300): string {
  const out: string[] = [];
  for (const c of comparisons) {
    const base = nsPerOp(c.baseline.fn, minMs);
    out.push(`### ${c.title}`, '', '| case | per op | vs baseline |', '|---|---:|---:|', `| ${c.baseline.name} (baseline) | ${human(base)} | 1.00× |`);
    for (const k of c.cases) {
      const ns = nsPerOp(k.fn, minMs);
      out.push(`| ${k.name} | ${human(ns)} | ${(ns / base).toFixed(2)}× |`);
    }
    out.push('');
  }
  if (sink === Symbol.for('never')) out.push('');
  return out.join('\n');
}
