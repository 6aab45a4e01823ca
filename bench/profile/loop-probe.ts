import { writeFileSync } from 'node:fs';
import { type IntervalHistogram, type RecordableHistogram, createHistogram, monitorEventLoopDelay, PerformanceObserver, constants } from 'node:perf_hooks';

/*
 * A diagnostic preloaded into a process under test (`node --import dist/bench/profile/loop-probe.js
 * ...`, or `LOOP_PROBE_OUT=FILE` with bench/ab/overhead-ab.ts): its event-loop delay at 1 ms
 * resolution and each garbage collection (kind and pause, from `PerformanceObserver` `gc`
 * entries), written as one JSON object to `$LOOP_PROBE_OUT.<pid>.json` when the process exits.
 * SIGUSR2 starts the count afresh (after a warm-up). The gateway's own monitor
 * (core/event-loop-delay.ts) samples every 10 ms in fixed buckets; this one says how long the
 * longest turns were to the millisecond and whether collections were among them.
 *
 * On a shared machine a process waiting for a core looks stalled too, so a 1 ms interval also
 * reads the process's CPU time at each tick: `cpuStallMs` is the CPU it used between two ticks
 * (its own work, whatever the machine's load; V8's helper threads, such as concurrent marking
 * and a CPU profiler, count too, so it is an upper bound of the loop thread's). The gaps over
 * 10 ms of wall time are kept (`longGapsUs`) for bench/profile/long-turns.ts --windows, which
 * reads what ran in them from a CPU profile of the same process.
 */

const RESOLUTION_MS = 1;
const out = process.env['LOOP_PROBE_OUT'];
const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
delay.enable();

const KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental marking',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
};
interface GcKind {
  count: number;
  totalMs: number;
  maxMs: number;
  over5Ms: number;
  over10Ms: number;
}
let gc = new Map<string, GcKind>();
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = KINDS[(e as unknown as { detail?: { kind?: number } }).detail?.kind ?? -1] ?? 'other';
    const k = gc.get(kind) ?? { count: 0, totalMs: 0, maxMs: 0, over5Ms: 0, over10Ms: 0 };
    k.count++;
    k.totalMs += e.duration;
    k.maxMs = Math.max(k.maxMs, e.duration);
    if (e.duration > 5) k.over5Ms++;
    if (e.duration > 10) k.over10Ms++;
    gc.set(kind, k);
    if (pauses.length < MAX_KEPT) pauses.push([e.startTime, e.startTime + e.duration]);
  }
}).observe({ entryTypes: ['gc'] });

/** The process's CPU time (every thread), µs. */
function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Kept for the attribution at exit: GC pauses and gaps over 10 ms between ticks, as [start, end] ms. */
const MAX_KEPT = 20_000;
let pauses: Array<[number, number]> = [];
let longGaps: Array<[number, number]> = [];
const cpuGap = createHistogram();
let lastCpu = cpuMicros();
let lastTick = performance.now();
setInterval(() => {
  const cpu = cpuMicros();
  const now = performance.now();
  cpuGap.record(Math.max(1, Math.round(cpu - lastCpu)));
  if (now - lastTick > 10 && longGaps.length < MAX_KEPT) longGaps.push([lastTick, now]);
  lastCpu = cpu;
  lastTick = now;
}, 1).unref();


/** performance.now() (ms) to the monotonic clock in µs (process.hrtime, which V8's profiler shares). */
const clockOffsetUs = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;

let since = performance.now();
process.on('SIGUSR2', () => {
  delay.reset();
  cpuGap.reset();
  pauses = [];
  longGaps = [];
  gc = new Map();
  since = performance.now();
});

/** A raw sample (ns between 1 ms ticks) as the turn's lateness, ms. */
const ms = (ns: number): number => Math.round((Math.max(0, ns / 1e6 - RESOLUTION_MS)) * 10) / 10;

process.on('exit', () => {
  if (out === undefined) return;
  const report = {
    pid: process.pid,
    argv: process.argv.slice(1, 3),
    seconds: Math.round((performance.now() - since) / 100) / 10,
    loopDelayMs: { samples: delay.count, p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), p999: ms(delay.percentile(99.9)), max: ms(delay.max), over10: countOver(10), over20: countOver(20), over50: countOver(50) },
    cpuStallMs: { p99: cpuGap.percentile(99) / 1000, p999: cpuGap.percentile(99.9) / 1000, max: cpuGap.max / 1000, over10: overOf(cpuGap, 10_000), over20: overOf(cpuGap, 20_000) },
    longGapsWithGc: withGc(),
    // The gaps on the monotonic clock in µs (V8's CPU profile's clock): bench/profile/long-turns.ts --windows.
    longGapsUs: longGaps.map(([a, b]) => [Math.round(a * 1000 + clockOffsetUs), Math.round(b * 1000 + clockOffsetUs)]),
    gc: Object.fromEntries([...gc].map(([k, v]) => [k, { ...v, totalMs: Math.round(v.totalMs), maxMs: Math.round(v.maxMs * 10) / 10 }])),
  };
  writeFileSync(`${out}.${process.pid}.json`, `${JSON.stringify(report)}\n`);
});

/** Of the gaps over 10 ms: how many held a GC pause, and how much of their time GC took. */
function withGc(): { gaps: number; withPause: number; gapMs: number; gcMs: number } {
  let withPause = 0;
  let gapMs = 0;
  let gcMs = 0;
  for (const [a, b] of longGaps) {
    gapMs += b - a;
    let inGap = 0;
    for (const [s, e] of pauses) inGap += Math.max(0, Math.min(b, e) - Math.max(a, s));
    if (inGap > 0) withPause++;
    gcMs += inGap;
  }
  return { gaps: longGaps.length, withPause, gapMs: Math.round(gapMs), gcMs: Math.round(gcMs) };
}

/** Samples whose lateness passed `limitMs`. */
function countOver(limitMs: number): number {
  return overOf(delay, (limitMs + RESOLUTION_MS) * 1e6);
}

/** Samples of `h` over `bound`, from its percentiles (bisection over ranks). */
function overOf(h: RecordableHistogram | IntervalHistogram, bound: number): number {
  const n = h.count;
  if (n === 0 || h.max <= bound) return 0;
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const k = Math.ceil((lo + hi) / 2);
    if (h.percentile(((k - 0.5) / n) * 100) <= bound) lo = k;
    else hi = k - 1;
  }
  return n - lo;
}
