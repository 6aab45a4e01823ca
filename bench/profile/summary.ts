import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { functionKey, type CallFrame, type CpuProfile, type ProfileNode } from './cpu-profile.js';

/*
 * The top of a V8 CPU profile (`node --cpu-prof`, or `PROF_DIR=... node dist/bench/ab/overhead-ab.js`):
 * `node dist/bench/profile/summary.js PROFILE|DIR [TOP]` prints, for the busy time (all samples
 * but `(idle)`), the functions with the most self time, the categories that time falls in (GC,
 * native, node's own modules, each package, each of this project's folders) and the functions
 * with the most inclusive time (self and callees, recursion counted once). A directory is read
 * whole (every `.cpuprofile` in it, summed). Shares are of the busy time, so two profiles of the
 * same load with different idle time compare.
 *
 * Options: `--since NAME` counts only from the first sample with the function NAME on its stack
 * (`--since serve`: from the first request on, without the process's start-up and module
 * loading); `--skip S` drops the first S seconds of each profile (a warm-up); `--callers NAME`
 * adds the stacks (four frames up) that NAME's self time came from.
 */

/** Where a function's time is counted: V8's pseudo-frames, node's modules, a package, a folder of this project. */
function category(f: CallFrame): string {
  if (f.url === '') return f.functionName.startsWith('(') ? f.functionName : '(native)';
  if (f.url.startsWith('node:')) return f.url;
  const nm = f.url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = f.url.slice(nm + '/node_modules/'.length).split('/');
    return (rest[0] ?? '').startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? '');
  }
  const dist = f.url.lastIndexOf('/dist/');
  if (dist !== -1) {
    const parts = f.url.slice(dist + '/dist/'.length).split('/');
    return parts.slice(0, Math.min(3, parts.length - 1)).join('/') + '/';
  }
  return f.url;
}

interface Options {
  readonly since: string | undefined;
  readonly skipUs: number;
  readonly callers: string | undefined;
}

interface Totals {
  busyUs: number;
  idleUs: number;
  readonly self: Map<string, number>;
  readonly categories: Map<string, number>;
  readonly inclusive: Map<string, number>;
  readonly callers: Map<string, number>;
}

function add(map: Map<string, number>, key: string, us: number): void {
  map.set(key, (map.get(key) ?? 0) + us);
}

function addProfile(p: CpuProfile, t: Totals, o: Options): void {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const stack = (id: number): CallFrame[] => {
    const frames: CallFrame[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) frames.push((byId.get(at) as ProfileNode).callFrame);
    return frames;
  };
  let counting = o.since === undefined;
  let elapsedUs = 0;
  // Each sample's interval: V8 records the time since the previous sample with each sample.
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i] as number);
    const us = p.timeDeltas[i] ?? 0;
    elapsedUs += us;
    if (node === undefined || us <= 0 || elapsedUs < o.skipUs) continue;
    if (!counting) {
      if (!stack(node.id).some((f) => f.functionName === o.since)) continue;
      counting = true;
    }
    if (node.callFrame.functionName === '(idle)') {
      t.idleUs += us;
      continue;
    }
    t.busyUs += us;
    add(t.self, functionKey(node.callFrame), us);
    add(t.categories, category(node.callFrame), us);
    if (o.callers !== undefined && node.callFrame.functionName === o.callers) add(t.callers, stack(node.id).slice(1, 5).map(functionKey).join(' < '), us);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = (byId.get(id) as ProfileNode).callFrame;
      if (frame.functionName === '(root)') continue;
      const key = functionKey(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      add(t.inclusive, key, us);
    }
  }
}

async function profilesAt(path: string): Promise<string[]> {
  if (!(await stat(path)).isDirectory()) return [path];
  return (await readdir(path)).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(path, f));
}

function print(title: string, map: Map<string, number>, busyUs: number, top: number): void {
  process.stdout.write(`\n${title}\n`);
  const rows = [...map].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [key, us] of rows) process.stdout.write(`${((us / busyUs) * 100).toFixed(1).padStart(6)} %  ${(us / 1000).toFixed(0).padStart(7)} ms  ${key}\n`);
}

const args = process.argv.slice(2);
/** Takes `--flag VALUE` out of args. */
function option(flag: string): string | undefined {
  const at = args.indexOf(flag);
  if (at === -1) return undefined;
  return args.splice(at, 2)[1];
}
const options: Options = { since: option('--since'), skipUs: Number(option('--skip') ?? 0) * 1e6, callers: option('--callers') };
const [path, topArg] = args;
if (path === undefined) {
  process.stderr.write('usage: node dist/bench/profile/summary.js [--since FUNCTION] [--skip SECONDS] [--callers FUNCTION] PROFILE.cpuprofile|DIR [TOP]\n');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const totals: Totals = { busyUs: 0, idleUs: 0, self: new Map(), categories: new Map(), inclusive: new Map(), callers: new Map() };
for (const file of await profilesAt(path)) addProfile(JSON.parse(await readFile(file, 'utf8')) as CpuProfile, totals, options);
process.stdout.write(`busy ${(totals.busyUs / 1e6).toFixed(2)} s, idle ${(totals.idleUs / 1e6).toFixed(2)} s (shares below are of the busy time)\n`);
print('Self time by function', totals.self, totals.busyUs, top);
print('Self time by category', totals.categories, totals.busyUs, top);
print('Inclusive time by function', totals.inclusive, totals.busyUs, top);
if (options.callers !== undefined) print(`Where ${options.callers}'s self time came from`, totals.callers, totals.busyUs, top);
