import { Agent } from 'undici';
import { loadFiles } from '../api/index.js';
import { formatProblem, type Problem, type Resource } from '../api/types.js';
import { watchPaths } from '../config/file-watch.js';
import { ConfigStore, type ReloadOutcome } from '../config/store.js';
import type { Random } from '../core/weighted.js';
import { EndpointRegistry } from '../endpoints/registry.js';
import { Pipeline } from '../gateway/pipeline.js';
import { buildRuntime, type Runtime } from '../gateway/runtime.js';
import { startAdminServer } from '../observability/admin-server.js';
import type { Logger } from '../observability/logger.js';
import { builtinRegistry } from '../scheduling/policies.js';
import { createHandler } from './handler.js';
import { ListenerSet } from './listeners.js';

export interface StandaloneOptions {
  /** YAML/JSON files and folders; watched for changes unless `watch` is false. */
  readonly files?: readonly string[];
  /** Resources built in code (the `--backend` quick start); used when `files` is empty. */
  readonly resources?: readonly Resource[];
  /** Address the Gateway listeners bind. Default `0.0.0.0`. */
  readonly address?: string;
  /** Admin port for /healthz and /readyz. Default 9090; 0 picks a free port. */
  readonly adminPort?: number;
  /** Address of the admin port. Default `127.0.0.1`: health endpoints are for the local host. */
  readonly adminAddress?: string;
  readonly watch?: boolean;
  readonly logger: Logger;
  /** Milliseconds in-flight requests get to finish on shutdown. Default 30 000. */
  readonly shutdownGraceMs?: number;
  /** Upstream idle limits (headers, and between body chunks). Default 600 000 ms. */
  readonly upstreamIdleTimeoutMs?: number;
  readonly random?: Random;
}

export interface RunningGateway {
  readonly adminPort: number;
  readonly ports: () => number[];
  /** Re-reads the files and swaps the snapshot if they are valid. */
  readonly reload: () => Promise<ReloadOutcome>;
  readonly current: () => Runtime | undefined;
  readonly close: () => Promise<void>;
}

export class ConfigRejectedError extends Error {
  constructor(readonly problems: readonly Problem[]) {
    super(`configuration rejected:\n${problems.map(formatProblem).join('\n')}`);
    this.name = 'ConfigRejectedError';
  }
}

/**
 * The standalone gateway: one process, config from files (hot-reloaded) or from code, a listener
 * per Gateway listener port, an admin port. Rejects start-up when the first config is invalid;
 * later invalid changes are logged and the last good snapshot keeps serving.
 */
export async function startStandaloneGateway(opts: StandaloneOptions): Promise<RunningGateway> {
  const { logger } = opts;
  const files = opts.files ?? [];
  const store = new ConfigStore();
  const endpoints = new EndpointRegistry();
  const plugins = builtinRegistry();
  const pipeline = new Pipeline(opts.random);
  const dispatcher = new Agent({
    keepAliveTimeout: 30_000,
    headersTimeout: opts.upstreamIdleTimeoutMs ?? 600_000,
    bodyTimeout: opts.upstreamIdleTimeoutMs ?? 600_000,
  });
  let runtime: Runtime | undefined;
  const listeners = new ListenerSet(opts.address ?? '0.0.0.0', (port) => createHandler(port, { pipeline, dispatcher, logger, runtime: () => runtime }), logger);

  store.onSwap((snapshot) => {
    runtime = buildRuntime(snapshot, endpoints, plugins);
  });

  const load = async (): Promise<ReloadOutcome> => {
    if (files.length === 0) return store.applyResources(opts.resources ?? []);
    return store.apply(await loadFiles(files));
  };

  const report = (outcome: ReloadOutcome, initial: boolean): void => {
    if (!outcome.ok) {
      for (const p of outcome.errors) logger.error({ problem: formatProblem(p), source: p.source }, 'config error');
      if (!initial) logger.error({ servingVersion: outcome.serving?.version }, 'config change rejected; the last good configuration keeps serving');
      return;
    }
    for (const p of outcome.warnings) logger.warn({ problem: formatProblem(p), source: p.source }, 'config warning');
    const s = outcome.snapshot;
    const pools = [...(runtime?.pools.values() ?? [])].map((p) => ({ pool: p.config.key, endpoints: p.endpoints.length, policy: p.config.routingStrategy, runtime: p.config.runtime }));
    logger.info({ version: s.version, resources: s.resourceCount, ignored: outcome.ignored, ports: [...s.listeners.keys()], pools }, initial ? 'config loaded' : 'config reloaded');
  };

  const first = await load();
  report(first, true);
  if (!first.ok) {
    await dispatcher.close();
    throw new ConfigRejectedError(first.errors);
  }
  await listeners.reconcile(new Set(first.snapshot.listeners.keys()));

  // Reloads are serialised: a change that lands while one is being applied waits its turn.
  let reloading: Promise<ReloadOutcome> = Promise.resolve(first);
  const reload = (): Promise<ReloadOutcome> => {
    reloading = reloading.then(async () => {
      const outcome = await load();
      report(outcome, false);
      if (outcome.ok) await listeners.reconcile(new Set(outcome.snapshot.listeners.keys()));
      return outcome;
    });
    return reloading;
  };
  const stopWatching = opts.watch !== false && files.length > 0 ? await watchPaths(files, () => void reload()) : () => undefined;

  const admin = await startAdminServer(opts.adminAddress ?? '127.0.0.1', opts.adminPort ?? 9090, {
    live: () => true,
    ready: () => {
      const s = runtime?.snapshot;
      if (s === undefined) return { ready: false, reason: 'no configuration loaded' };
      if (!listeners.healthy) return { ready: false, reason: 'a listener port could not be bound', version: s.version };
      return { ready: true, version: s.version };
    },
  });
  logger.info({ adminPort: admin.port }, 'admin server started');

  let closed: Promise<void> | undefined;
  return {
    adminPort: admin.port,
    ports: () => listeners.ports,
    reload,
    current: () => runtime,
    close: () => {
      closed ??= (async () => {
        stopWatching();
        admin.server.close();
        await listeners.close(opts.shutdownGraceMs ?? 30_000);
        await dispatcher.close();
        logger.info('gateway stopped');
      })();
      return closed;
    },
  };
}
