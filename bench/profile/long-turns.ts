import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { functionKey, type CallFrame, type CpuProfile, type ProfileNode } from './cpu-profile.js';

/*
 * The event loop's long turns in a V8 CPU profile (`node --cpu-prof`): `node
 * dist/bench/profile/long-turns.js [--over MS] [--skip S] PROFILE|DIR [TOP]`. A turn is a run of
 * consecutive samples that are not `(idle)` (the thread waiting in epoll); a run longer than MS
 * (default 10) held every timer, socket read and answer back that long. Prints how many such runs
 * there were and their lengths, then the self time inside them by function and by category
 * (garbage collection, JSON, the gateway's folders), so a stall is traced to what filled it. A
 * process descheduled by the machine's other load stretches its runs too: read the shares, and
 * check the lengths against a quiet run. `--windows PROBE.json` takes the turns from
 * bench/profile/loop-probe.ts instead (the gaps over 10 ms between its 1 ms ticks): a process
 * that never idles runs many turns back to back, which the samples alone cannot split. A
 * sample's delta counts at most `--cap MS` (default 2): V8 samples every ms while the thread
 * runs, so a longer delta is mostly time spent waiting for a core on a shared machine, and the
 * lengths are then close to the turn's CPU time.
 */

function category(f: CallFrame): string {
  if (f.url === '') return f.functionName.startsWith('(') ? f.functionName : `(native) ${f.functionName}`;
  if (f.url.startsWith('node:')) return f.url;
  const nm = f.url.lastIndexOf('/node_modules/');
  if (nm !== -1) return f.url.slice(nm + '/node_modules/'.length).split('/')[0] ?? '';
  const dist = f.url.lastIndexOf('/dist/');
  if (dist !== -1) return f.url.slice(dist + '/dist/'.length);
  return f.url;
}

interface Totals {
  turns: number[];
  /** Each long turn's length (ms) and its top self times, for `--each`. */
  readonly each: Array<{ ms: number; top: Map<string, number> }>;
  longUs: number;
  busyUs: number;
  readonly self: Map<string, number>;
  readonly categories: Map<string, number>;
  readonly inclusive: Map<string, number>;
}

function add(map: Map<string, number>, key: string, us: number): void {
  map.set(key, (map.get(key) ?? 0) + us);
}

function addProfile(p: CpuProfile, t: Totals, overUs: number, skipUs: number, windows: ReadonlyArray<readonly [number, number]> | undefined): void {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  let run: Array<[ProfileNode, number]> = [];
  const close = (): void => {
    // On a core, samples come every interval; a longer delta is time the thread waited for one.
    const us = run.reduce((s, [, d]) => s + Math.min(d, capUs), 0);
    if (us > overUs) {
      t.turns.push(us / 1000);
      t.longUs += us;
      const top = new Map<string, number>();
      t.each.push({ ms: us / 1000, top });
      for (const [node, delta] of run) {
        const d = Math.min(delta, capUs);
        add(t.self, functionKey(node.callFrame), d);
        add(top, functionKey(node.callFrame), d);
        add(t.categories, category(node.callFrame), d);
        const seen = new Set<string>();
        for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
          const f = (byId.get(id) as ProfileNode).callFrame;
          const key = functionKey(f);
          if (f.functionName === '(root)' || seen.has(key)) continue;
          seen.add(key);
          add(t.inclusive, key, d);
        }
      }
    }
    run = [];
  };
  let elapsed = 0;
  let w = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i] as number) as ProfileNode;
    // A sample's delta is the time since the previous one: it is charged to this sample's frame.
    const us = p.timeDeltas[i] ?? 0;
    elapsed += us;
    if (elapsed < skipUs) continue;
    if (windows !== undefined) {
      // Turns as the probe measured them: the samples inside each window, whatever they are.
      const at = p.startTime + elapsed;
      while (w < windows.length && (windows[w] as readonly [number, number])[1] < at) {
        if (run.length > 0) close();
        w++;
      }
      const win = windows[w];
      if (win !== undefined && at >= win[0]) run.push([node, us]);
      if (node.callFrame.functionName !== '(idle)') t.busyUs += us;
      continue;
    }
    if (node.callFrame.functionName === '(idle)') {
      close();
      continue;
    }
    t.busyUs += us;
    run.push([node, us]);
  }
  close();
}

function print(title: string, map: Map<string, number>, total: number, top: number): void {
  process.stdout.write(`\n${title}\n`);
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    process.stdout.write(`${((us / total) * 100).toFixed(1).padStart(6)} %  ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}\n`);
  }
}

const args = process.argv.slice(2);
function option(flag: string): string | undefined {
  const at = args.indexOf(flag);
  return at === -1 ? undefined : args.splice(at, 2)[1];
}
const overMs = Number(option('--over') ?? 10);
const skipS = Number(option('--skip') ?? 0);
const windowsFile = option('--windows');
/** A sample's delta counted at most this (µs): V8 samples every 1,000 µs while the thread runs. */
const capUs = Number(option('--cap') ?? 2) * 1000;
const each = Number(option('--each') ?? 0);
const windows = windowsFile === undefined ? undefined : ((JSON.parse(await readFile(windowsFile, 'utf8')) as { longGapsUs: Array<[number, number]> }).longGapsUs);
const [path, topArg] = args;
if (path === undefined) {
  process.stderr.write('usage: node dist/bench/profile/long-turns.js [--over MS] [--skip SECONDS] PROFILE.cpuprofile|DIR [TOP]\n');
  process.exit(2);
}
const files = (await stat(path)).isDirectory() ? (await readdir(path)).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(path, f)) : [path];
const t: Totals = { each: [], turns: [], longUs: 0, busyUs: 0, self: new Map(), categories: new Map(), inclusive: new Map() };
for (const f of files) addProfile(JSON.parse(await readFile(f, 'utf8')) as CpuProfile, t, overMs * 1000, skipS * 1e6, windows);
const sorted = [...t.turns].sort((a, b) => a - b);
const q = (p: number): string => (sorted.length === 0 ? '-' : (sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number).toFixed(1));
process.stdout.write(`busy ${(t.busyUs / 1e6).toFixed(2)} s; ${sorted.length} turns over ${overMs} ms holding ${(t.longUs / 1e6).toFixed(2)} s (${((t.longUs / Math.max(1, t.busyUs)) * 100).toFixed(1)} % of busy); lengths ms p50 ${q(0.5)} p90 ${q(0.9)} max ${q(1)}\n`);
const top = Number(topArg ?? 25);
print('Self time inside long turns, by function (share of the long turns)', t.self, t.longUs, top);
print('By category', t.categories, t.longUs, top);
print('Inclusive time inside long turns', t.inclusive, t.longUs, top);

for (const turn of [...t.each].sort((a, b) => b.ms - a.ms).slice(0, each)) {
  const top = [...turn.top].sort((a, b) => b[1] - a[1]).slice(0, 8);
  process.stdout.write(`\n${turn.ms.toFixed(1)} ms: ${top.map(([k, us]) => `${k} ${(us / 1000).toFixed(1)}`).join('; ')}\n`);
}
