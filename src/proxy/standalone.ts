import { Agent } from 'undici';
import { loadFiles } from '../api/index.js';
import { formatProblem, type Problem, type Resource } from '../api/types.js';
import { watchPaths } from '../config/file-watch.js';
import { ConfigStore, type ReloadOutcome } from '../config/store.js';
import type { Random } from '../core/weighted.js';
import { GatewayError } from '../core/errors.js';
import { EndpointRegistry } from '../endpoints/registry.js';
import { MetricsScraper } from '../endpoints/scraper.js';
import type { AdmissionGate } from '../flowcontrol/admission.js';
import { Pipeline } from '../gateway/pipeline.js';
import { buildRuntime, type Runtime } from '../gateway/runtime.js';
import { startAdminServer } from '../observability/admin-server.js';
import { debugEndpoints } from '../observability/debug-endpoints.js';
import type { Logger } from '../observability/logger.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { PrefixIndex } from '../prefix/index.js';
import { builtinRegistry } from '../scheduling/policies.js';
import type { PluginHandle } from '../scheduling/types.js';
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
  /** Time between two scrapes of one endpoint's /metrics. Default 50 ms; 0 turns scraping off. */
  readonly scrapeIntervalMs?: number;
  /** A scrape slower than this fails. Default 1000 ms. */
  readonly scrapeTimeoutMs?: number;
  /** Metrics older than this are not trusted. Default max(200 ms, 4 scrape intervals). */
  readonly stalenessMs?: number;
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
  const prefixIndex = new PrefixIndex();
  const gates = new Map<string, AdmissionGate>();
  const scrapeIntervalMs = opts.scrapeIntervalMs ?? 50;
  const handle: PluginHandle = { prefixIndex, stalenessMs: opts.stalenessMs ?? Math.max(200, 4 * scrapeIntervalMs), now: () => performance.now() };
  const scraper =
    scrapeIntervalMs > 0
      ? new MetricsScraper(
          { intervalMs: scrapeIntervalMs, ...(opts.scrapeTimeoutMs === undefined ? {} : { timeoutMs: opts.scrapeTimeoutMs }) },
          {
            onHealthChange: (e, healthy, reason) =>
              healthy ? logger.info({ endpoint: e.name, address: e.key }, 'endpoint healthy again') : logger.warn({ endpoint: e.name, address: e.key, reason }, 'endpoint unhealthy: scrapes failing; not scheduled'),
            onDialectDetected: (e, from, to) => logger.info({ endpoint: e.name, address: e.key, from, to }, 'endpoint metrics dialect detected from its /metrics'),
            onProblems: (e, problems) => logger.warn({ endpoint: e.name, address: e.key, dialect: e.dialect, problems }, 'endpoint metrics problem'),
            // A fresh scrape may show freed capacity: let queued requests re-check.
            onScrape: () => {
              for (const gate of gates.values()) if (gate.size > 0) gate.wake();
            },
          },
        )
      : undefined;
  let runtime: Runtime | undefined;
  const metrics = new GatewayMetrics({
    pools: () => [...(runtime?.pools.values() ?? [])].map((p) => ({ key: p.config.key, endpoints: p.endpoints, queued: (band) => p.gate.sizeOf(band) })),
    prefixIndex,
  });
  const dispatcher = new Agent({
    keepAliveTimeout: 30_000,
    headersTimeout: opts.upstreamIdleTimeoutMs ?? 600_000,
    bodyTimeout: opts.upstreamIdleTimeoutMs ?? 600_000,
  });
  const listeners = new ListenerSet(
    opts.address ?? '0.0.0.0',
    (port) => createHandler(port, { pipeline, dispatcher, logger, metrics, prefixIndex, runtime: () => runtime }),
    logger,
  );

  store.onSwap((snapshot) => {
    runtime = buildRuntime(snapshot, { endpoints, plugins, handle, gates, recheckMs: Math.max(10, scrapeIntervalMs || 50) });
    const poolEndpoints = new Set([...runtime.pools.values()].flatMap((p) => p.endpoints));
    scraper?.sync(poolEndpoints);
    prefixIndex.retainOnly(new Set(endpoints.all()));
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
    const pools = [...(runtime?.pools.values() ?? [])].map((p) => ({ pool: p.config.key, endpoints: p.endpoints.length, policy: p.policy, profile: p.profile.describe(), runtime: p.config.runtime }));
    logger.info({ version: s.version, resources: s.resourceCount, ignored: outcome.ignored, ports: [...s.listeners.keys()], pools }, initial ? 'config loaded' : 'config reloaded');
  };

  const first = await load();
  report(first, true);
  if (!first.ok) {
    await scraper?.close();
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
    metrics: metrics.registry,
    endpoints: () => (runtime === undefined ? { pools: [] } : debugEndpoints(runtime, prefixIndex, handle)),
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
        for (const gate of gates.values()) gate.close(new GatewayError('gateway_shutting_down', 'the gateway is shutting down'));
        await listeners.close(opts.shutdownGraceMs ?? 30_000);
        await scraper?.close();
        await dispatcher.close();
        logger.info('gateway stopped');
      })();
      return closed;
    },
  };
}
