import { readFileSync } from 'node:fs';

/** What ends a long-running command: a signal, or the parent process going away. */
export type StopCause = NodeJS.Signals | 'parent-exit';

/** The signals that stop a long-running command (a second one exits at once). */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** How often the parent process id is checked. */
const PARENT_POLL_MS = 500;
/** Processes above the parent watched too: npm → sh -c → us, npx → us. */
const MAX_ANCESTORS = 2;

/**
 * Resolves on the first SIGINT, SIGTERM or SIGHUP (a closed terminal, or an operator used to nginx's
 * reload: the files are watched, so it drains as SIGTERM does rather than dying undrained, Node's
 * default), or (with `followParent`) when the process that started
 * this one exits; a second signal exits at once. Following the parent suits the demo and
 * programs a test or benchmark owns: a wrapper may die without passing its signal on (`npm start`
 * forwards SIGTERM to its `sh -c`, which dies and leaves the program running with its ports
 * bound). It does not suit a server started from a script (`nohup infergate serve … &`), whose
 * parent exits at once by design. An orphan is adopted by another process (init or a
 * subreaper), so its parent id changes; polling it is cheap and works wherever Node runs.
 */
export function untilSignal(options: { followParent: boolean }): Promise<StopCause> {
  return new Promise((resolve) => {
    const parent = process.ppid;
    // `npm start` runs us under `sh -c`, which outlives an npm that was killed hard: the
    // processes above the parent count too (Linux; elsewhere the parent alone).
    const ancestors = options.followParent ? ancestorsOf(parent, MAX_ANCESTORS) : [];
    const poll = options.followParent
      ? setInterval(() => {
          if (process.ppid !== parent || ancestors.some((pid) => !alive(pid))) stop('parent-exit');
        }, PARENT_POLL_MS)
      : undefined;
    poll?.unref();
    const onSignal = (signal: NodeJS.Signals): void => stop(signal);
    function stop(cause: StopCause): void {
      clearInterval(poll);
      for (const s of STOP_SIGNALS) process.off(s, onSignal);
      const force = (): never => process.exit(130);
      for (const s of STOP_SIGNALS) process.once(s, force);
      resolve(cause);
    }
    for (const s of STOP_SIGNALS) process.on(s, onSignal);
  });
}

/** Up to `n` processes above `pid` (its parent, its grandparent, …), stopping at init (Linux /proc). */
function ancestorsOf(pid: number, n: number): number[] {
  const out: number[] = [];
  let current = pid;
  for (let i = 0; i < n; i++) {
    const next = parentOf(current);
    if (next === undefined || next <= 1) break;
    out.push(next);
    current = next;
  }
  return out;
}

/** The parent of `pid` from /proc (field 4 of its stat line, after the parenthesised name). */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as { code?: string }).code === 'EPERM';
  }
}
