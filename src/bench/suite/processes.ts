import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/*
 * The processes a benchmark run starts (simulated model servers, nginx, the gateway), each in a
 * process of its own so the machine's cores are shared the way a real deployment shares them,
 * and so the gateway's CPU time and memory can be read from /proc on its own.
 */

const BIN = fileURLToPath(new URL('../../../../bin/infergate.js', import.meta.url));

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Everything the process wrote to stderr so far (for error messages). */
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Starts a process and resolves once `ready()` holds (polled every 50 ms), or rejects with the
 * process's stderr if it exits first or `timeoutMs` passes.
 */
export async function startChild(name: string, command: string, args: readonly string[], ready: () => Promise<boolean>, timeoutMs = 30_000): Promise<Child> {
  const proc: ChildProcess = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.setEncoding('utf8').on('data', (c: string) => {
    // Keep the tail only: a long run must not grow memory.
    err = (err + c).slice(-20_000);
  });
  const exited = once(proc, 'exit');
  const child: Child = {
    name,
    pid: proc.pid ?? -1,
    stderr: () => err,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}: ${err.trim()}`);
    if (await ready().catch(() => false)) return child;
    if (Date.now() > deadline) {
      await child.stop();
      throw new Error(`${name} not ready within ${timeoutMs / 1000} s: ${err.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `node bin/infergate.js <args>` as a child. */
export function startInfergate(name: string, args: readonly string[], ready: () => Promise<boolean>, timeoutMs?: number): Promise<Child> {
  return startChild(name, process.execPath, [BIN, ...args], ready, timeoutMs);
}

/** True when `url` answers with a status below 500. */
export async function answers(url: string): Promise<boolean> {
  const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
  await r.arrayBuffer();
  return r.status < 500;
}

let clockTicks: number | undefined;

/** Clock ticks per second for /proc times (`getconf CLK_TCK`, 100 on Linux almost everywhere). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** `/proc/<pid>/stat` fields after the parenthesised command name (field 3 onwards). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * The process and its descendants: nginx does its work in worker processes under the master, so
 * a proxy's cost is its whole tree's.
 */
function processTree(root: number): number[] {
  const parents = new Map<number, number[]>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [root];
  }
  for (const e of entries) {
    const ppid = Number(statFields(Number(e))?.[1]);
    if (!Number.isFinite(ppid)) continue;
    const list = parents.get(ppid) ?? [];
    list.push(Number(e));
    parents.set(ppid, list);
  }
  const out: number[] = [];
  const walk = (pid: number): void => {
    out.push(pid);
    for (const child of parents.get(pid) ?? []) walk(child);
  };
  walk(root);
  return out;
}

/** CPU seconds (user + system) the process and its descendants have used; undefined off Linux. */
export function cpuSeconds(pid: number): number | undefined {
  let total = 0;
  for (const p of processTree(pid)) {
    // utime and stime are the 14th and 15th fields of the stat line.
    const f = statFields(p);
    if (f === undefined) continue;
    total += (Number(f[11]) + Number(f[12])) / ticksPerSecond();
  }
  return statFields(pid) === undefined ? undefined : total;
}

/** Peak resident memory of the process and its descendants in bytes (sum of `VmHWM`); undefined off Linux. */
export function peakRssBytes(pid: number): number | undefined {
  let total = 0;
  let found = false;
  for (const p of processTree(pid)) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m !== null) {
        total += Number(m[1]) * 1024;
        found = true;
      }
    } catch {
      // gone already
    }
  }
  return found ? total : undefined;
}
