import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { intOption, OptionError } from './options.js';

/** The environment variable that gives `--workers` when the flag is absent (as gunicorn's WEB_CONCURRENCY does). */
export const WORKERS_ENV = 'INFERGATE_WORKERS';

/** Most workers one gateway runs: far above the cores of any node it is deployed on. */
export const MAX_WORKERS = 256;

/**
 * `infergate serve --workers N`: the flag, else $INFERGATE_WORKERS, else the cores this process
 * may use: `os.availableParallelism()` (the CPU affinity mask), lowered to the container's CPU
 * limit when it has one (`cpuLimit`), so a pod limited to 2 CPUs on a 16-core node runs 2
 * workers, not 16. 1 is one process, exactly as before workers existed.
 */
export function workersOption(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, limit: number | undefined = cpuLimit()): number {
  if (flag !== undefined) return intOption('workers', flag, 1, 1, MAX_WORKERS);
  const fromEnv = env[WORKERS_ENV];
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = Number(fromEnv);
    if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) throw new OptionError(`$${WORKERS_ENV} must be an integer between 1 and ${MAX_WORKERS} (got "${fromEnv}")`);
    return n;
  }
  return Math.min(MAX_WORKERS, Math.max(1, Math.min(availableParallelism(), limit ?? Infinity)));
}

/**
 * The CPUs a cgroup's CFS quota allows, rounded up (a Kubernetes `limits.cpu` of 1500m gives 2);
 * undefined without a quota. cgroup v2 `cpu.max` ("QUOTA PERIOD" or "max PERIOD"), else v1's
 * `cpu.cfs_quota_us` (−1: none) and `cpu.cfs_period_us`, at their usual mount points.
 */
export function cpuLimit(read: (path: string) => string | undefined = readText): number | undefined {
  const v2 = read('/sys/fs/cgroup/cpu.max')?.trim().split(/\s+/);
  if (v2 !== undefined) return cpus(Number(v2[0]), Number(v2[1]));
  return cpus(Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')), Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us')));
}

function cpus(quota: number, period: number): number | undefined {
  return Number.isFinite(quota) && quota > 0 && Number.isFinite(period) && period > 0 ? Math.max(1, Math.ceil(quota / period)) : undefined;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
