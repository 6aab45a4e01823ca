import { availableParallelism } from 'node:os';
import { intOption, OptionError } from './options.js';

/** The environment variable that gives `--workers` when the flag is absent (as gunicorn's WEB_CONCURRENCY does). */
export const WORKERS_ENV = 'INFERGATE_WORKERS';

/** Most workers one gateway runs: far above the cores of any node it is deployed on. */
export const MAX_WORKERS = 256;

/**
 * `infergate serve --workers N`: the flag, else $INFERGATE_WORKERS, else the cores this process
 * may use (`os.availableParallelism()`, which follows the CPU affinity mask but not a
 * container's CPU quota: set the flag where a quota is lower than the node's cores). 1 is one
 * process, exactly as before workers existed.
 */
export function workersOption(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): number {
  if (flag !== undefined) return intOption('workers', flag, 1, 1, MAX_WORKERS);
  const fromEnv = env[WORKERS_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = Number(fromEnv);
    if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) throw new OptionError(`$${WORKERS_ENV} must be an integer between 1 and ${MAX_WORKERS} (got "${fromEnv}")`);
    return n;
  }
  return Math.min(MAX_WORKERS, Math.max(1, availableParallelism()));
}
