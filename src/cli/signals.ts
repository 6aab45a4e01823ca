/** What ends a long-running command: a signal, or the parent process going away. */
export type StopCause = NodeJS.Signals | 'parent-exit';

/** How often the parent process id is checked. */
const PARENT_POLL_MS = 500;

/**
 * Resolves on the first SIGINT or SIGTERM, or (with `followParent`) when the process that started
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
    const poll = options.followParent
      ? setInterval(() => {
          if (process.ppid !== parent) stop('parent-exit');
        }, PARENT_POLL_MS)
      : undefined;
    poll?.unref();
    const onSignal = (signal: NodeJS.Signals): void => stop(signal);
    function stop(cause: StopCause): void {
      clearInterval(poll);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const force = (): never => process.exit(130);
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
      resolve(cause);
    }
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
