import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/*
 * Self time of a V8 CPU profile (`node --cpu-prof`), per function and per category:
 * `node dist/bench/epp/profile-summary.js PROFILE_OR_DIR [TOP]`. Samples before the first one
 * whose stack holds `receive` or `receiveNow` (ExtProcStream's, the first ext_proc message:
 * start-up, certificate, bind) are left
 * out, so what remains is the per-request work (and the background scraping). Each sample counts
 * as one sampling interval (INTERVAL_US, default 1,000 µs: `--cpu-prof-interval`'s default), not
 * its time delta: on a busy machine a process preempted at a system call's return takes its
 * pending sample there, with a delta that holds the time it waited for a core, so summing deltas
 * charges that wait to whatever syscall came last (a log write, a socket write). Shares are of
 * busy samples (all but `(idle)`); `ms/req` divides by REQUESTS when it is set.
 */

interface Node {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}
interface Profile {
  readonly nodes: readonly Node[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Categories by the function's file; the first match wins. */
const CATEGORIES: ReadonlyArray<readonly [string, (url: string, fn: string) => boolean]> = [
  ['garbage collection', (_u, f) => f === '(garbage collector)'],
  ['protobufjs (encode/decode)', (u) => u.includes('/protobufjs/') || u.includes('/@protobufjs/') || u.includes('/proto-loader/')],
  ['grpc-js', (u) => u.includes('/@grpc/grpc-js/')],
  ['pino (access log)', (u) => u.includes('/pino') || u.includes('/sonic-boom/') || u.includes('fast-redact') || u.includes('quick-format') || u.includes('safe-stable-stringify')],
  ['src/extproc', (u) => u.includes('/src/extproc/')],
  ['src/gateway', (u) => u.includes('/src/gateway/')],
  ['src/scheduling', (u) => u.includes('/src/scheduling/')],
  ['src/endpoints (scraping)', (u) => u.includes('/src/endpoints/')],
  ['src/observability', (u) => u.includes('/src/observability/')],
  ['src/core, api, config', (u) => u.includes('/src/core/') || u.includes('/src/api/') || u.includes('/src/config/') || u.includes('/src/prefix/') || u.includes('/src/flowcontrol/')],
  ['undici', (u) => u.includes('/undici/')],
  ['prom-client', (u) => u.includes('/prom-client/')],
  ['node: http2', (u) => u.includes('node:internal/http2') || u === 'node:http2'],
  ['node: tls/net/stream', (u) => u.startsWith('node:internal/tls') || u.startsWith('node:_tls') || u.startsWith('node:tls') || u.startsWith('node:net') || u.startsWith('node:internal/stream') || u.startsWith('node:internal/streams') || u.startsWith('node:stream')],
  ['node: other', (u) => u.startsWith('node:')],
  ['native / V8 (no url)', (u) => u === ''],
  ['other JS', () => true],
];

function files(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(path, f));
}

/** The functions whose first sample marks the first ext_proc message. */
const FIRST_MESSAGE = new Set(['receive', 'receiveNow']);

const [target, topArg] = process.argv.slice(2);
if (target === undefined) {
  process.stderr.write('usage: node dist/bench/epp/profile-summary.js PROFILE_OR_DIR [TOP]\n');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const requests = Number(process.env['REQUESTS'] ?? 0);
const interval = Number(process.env['INTERVAL_US'] ?? 1000);
const byFunction = new Map<string, number>();
const byCategory = new Map<string, number>();
let busy = 0;
let idle = 0;
for (const file of files(target)) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inReceive = (id: number): boolean => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) if (FIRST_MESSAGE.has(nodes.get(at)?.callFrame.functionName ?? '')) return true;
    return false;
  };
  let started = false;
  p.samples.forEach((id) => {
    const us = interval;
    if (!started) {
      if (!inReceive(id)) return;
      started = true;
    }
    const n = nodes.get(id);
    if (n === undefined) return;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') {
      idle += us;
      return;
    }
    if (functionName === '(program)' || functionName === '(root)') {
      // V8 work outside JS frames (compilation, runtime calls, microtask plumbing).
      byCategory.set('(program)', (byCategory.get('(program)') ?? 0) + us);
      byFunction.set('(program)', (byFunction.get('(program)') ?? 0) + us);
      busy += us;
      return;
    }
    busy += us;
    const short = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '');
    const key = `${functionName || '(anonymous)'} ${short}:${lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const category = CATEGORIES.find(([, test]) => test(url, functionName))?.[0] ?? 'other JS';
    byCategory.set(category, (byCategory.get(category) ?? 0) + us);
  });
}
const line = (name: string, us: number): string => {
  const share = ((100 * us) / busy).toFixed(1).padStart(5);
  const perReq = requests > 0 ? `  ${(us / 1000 / requests).toFixed(3).padStart(7)} ms/req` : '';
  return `${share} %${perReq}  ${name}`;
};
process.stdout.write(`busy ${(busy / 1e6).toFixed(2)} s, idle ${(idle / 1e6).toFixed(2)} s\n\nby category:\n`);
for (const [k, v] of [...byCategory].sort((a, b) => b[1] - a[1])) process.stdout.write(`${line(k, v)}\n`);
process.stdout.write(`\ntop ${top} functions (self time):\n`);
for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`${line(k, v)}\n`);
