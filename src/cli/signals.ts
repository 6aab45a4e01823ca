/** What ends a long-running command: a signal, or the parent process going away. */
export type StopCause = NodeJS.Signals | 'parent-exit';

/** How often the parent process id is checked. */
const PARENT_POLL_MS = 500;

/**
 * Resolves on the first SIGINT or SIGTERM, or when the process that started this one exits; a
 * second signal exits at once. The parent check matters because a wrapper may die without
 * passing its signal on: `npm start` forwards SIGTERM to its `sh -c`, which dies and leaves the
 * program running with its ports bound. An orphan is adopted by another process (init or a
 * subreaper), so its parent id changes; polling it is cheap and works wherever Node runs.
 */
export function untilSignal(): Promise<StopCause> {
  return new Promise((resolve) => {
    const parent = process.ppid;
    const poll = setInterval(() => {
      if (process.ppid !== parent) stop('parent-exit');
    }, PARENT_POLL_MS);
    poll.unref();
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
