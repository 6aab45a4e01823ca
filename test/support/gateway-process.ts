import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';

const BIN = fileURLToPath(new URL('../../../bin/infergate.js', import.meta.url));

export type LogLine = Record<string, unknown> & { msg?: string };

/** A gateway running as a real child process, with its JSON log lines collected. */
export interface GatewayProcess {
  readonly adminPort: number;
  readonly logs: LogLine[];
  readonly stderr: () => string;
  /** Resolves with the first log line (already seen or future) satisfying `pred`. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends `signal` and returns at once (see `exited`). */
  kill(signal: NodeJS.Signals): void;
  /** Resolves with the exit code when the process has exited. */
  readonly exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

/**
 * Starts `infergate serve` with `args` (after defaults they may override); `env` adds to the
 * environment. One process (`--workers 1`) unless `args` say otherwise: a gateway of one worker
 * per core would fork in every test and slow the suite (test/workers/ asks for 2).
 */
export async function startGatewayProcess(args: string[], env: Readonly<Record<string, string>> = {}): Promise<GatewayProcess> {
  const adminPort = await freePort();
  const child: ChildProcess = spawn(process.execPath, [BIN, 'serve', '--exit-with-parent', '--workers', '1', '--address', '127.0.0.1', '--admin-port', String(adminPort), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const { logs, stderr, waitForLog, exited } = watchLogs(child);

  const proc: GatewayProcess = {
    adminPort,
    logs,
    stderr,
    waitForLog,
    kill(signal) {
      child.kill(signal);
    },
    exited,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
  };

  // Ready when /readyz says so (config loaded, every listener bound), or fail if the process dies.
  // The bound is generous: on a busy machine a process takes seconds to start.
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}: ${stderr()}`);
    try {
      const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
      if (r.status === 200) return proc;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`gateway not ready within 30 s: ${stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A child process's JSON log lines (stdout) and stderr, collected as they come. */
export interface LogWatch {
  readonly logs: LogLine[];
  readonly stderr: () => string;
  /** Resolves with the first log line (already seen or future) satisfying `pred`. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code when the process has exited. */
  readonly exited: Promise<number | null>;
}

export function watchLogs(child: ChildProcess): LogWatch {
  const logs: LogLine[] = [];
  const waiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  let buffered = '';
  let errText = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        const parsed = JSON.parse(line) as LogLine;
        logs.push(parsed);
        for (let i = waiters.length - 1; i >= 0; i--) {
          const w = waiters[i];
          if (w !== undefined && w.pred(parsed)) {
            waiters.splice(i, 1);
            w.resolve(parsed);
          }
        }
      } catch {
        // not a log line
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (errText += c));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return {
    logs,
    stderr: () => errText,
    waitForLog(pred, timeoutMs = 30_000) {
      const seen = logs.find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`log line not seen within ${timeoutMs} ms; stderr: ${errText}`)), timeoutMs);
        waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      });
    },
    exited,
  };
}

