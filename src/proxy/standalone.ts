import { Agent } from 'undici';
import { Gateway, type ApplyOutcome, type ConfigSource } from '../gateway/index.js';
import { startAdminServer } from '../observability/admin-server.js';
import type { Logger } from '../observability/logger.js';
import type { Random } from '../core/weighted.js';
import { createHandler } from './handler.js';
import { ListenerSet } from './listeners.js';

export interface StandaloneOptions {
  /** Where the configuration comes from (files with watch, resources built in code). */
  readonly sources: readonly ConfigSource[];
  /** Address the Gateway listeners bind. Default `0.0.0.0`. */
  readonly address?: string;
  /** Admin port for /healthz, /readyz, /metrics, /debug/endpoints. Default 9090; 0 picks a free port. */
  readonly adminPort?: number;
  /** Address of the admin port. Default `127.0.0.1`: health endpoints are for the local host. */
  readonly adminAddress?: string;
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
  /** Re-reads the sources and swaps the configuration if it is valid. */
  readonly reload: () => Promise<ApplyOutcome[]>;
  readonly gateway: Gateway;
  readonly close: () => Promise<void>;
}

/**
 * The standalone gateway: the core (configuration, scheduling, accounting) behind one HTTP
 * listener per Gateway listener port, plus the admin port. Rejects start-up (ConfigRejectedError)
 * when the first configuration is invalid; later invalid changes are logged and the last good
 * configuration keeps serving.
 */
export async function startStandaloneGateway(opts: StandaloneOptions): Promise<RunningGateway> {
  const { logger } = opts;
  const dispatcher = new Agent({
    keepAliveTimeout: 30_000,
    headersTimeout: opts.upstreamIdleTimeoutMs ?? 600_000,
    bodyTimeout: opts.upstreamIdleTimeoutMs ?? 600_000,
  });
  let gateway: Gateway | undefined;
  const listeners = new ListenerSet(opts.address ?? '0.0.0.0', (port) => createHandler(port, { gateway: () => gateway, dispatcher }), logger);
  try {
    gateway = await Gateway.start({
      sources: opts.sources,
      logger,
      ...(opts.scrapeIntervalMs === undefined ? {} : { scrapeIntervalMs: opts.scrapeIntervalMs }),
      ...(opts.scrapeTimeoutMs === undefined ? {} : { scrapeTimeoutMs: opts.scrapeTimeoutMs }),
      ...(opts.stalenessMs === undefined ? {} : { stalenessMs: opts.stalenessMs }),
      ...(opts.random === undefined ? {} : { random: opts.random }),
    });
  } catch (err) {
    await dispatcher.close();
    throw err;
  }
  const core = gateway;
  await listeners.reconcile(new Set(core.runtime?.snapshot.listeners.keys() ?? []));
  core.beforeSwap(async (snapshot) => {
    await listeners.reconcile(new Set(snapshot.listeners.keys()));
  });

  const admin = await startAdminServer(opts.adminAddress ?? '127.0.0.1', opts.adminPort ?? 9090, {
    live: () => true,
    ready: () => {
      const r = core.ready();
      if (!r.ready) return r;
      if (!listeners.healthy) return { ready: false, reason: 'a listener port could not be bound', ...(r.version === undefined ? {} : { version: r.version }) };
      return r;
    },
    metrics: core.metrics.registry,
    endpoints: () => core.debugEndpoints(),
  });
  logger.info({ adminPort: admin.port }, 'admin server started');

  let closed: Promise<void> | undefined;
  return {
    adminPort: admin.port,
    ports: () => listeners.ports,
    reload: () => core.reload(),
    gateway: core,
    close: () => {
      closed ??= (async () => {
        admin.server.close();
        await core.close();
        await listeners.close(opts.shutdownGraceMs ?? 30_000);
        await dispatcher.close();
        logger.info('gateway stopped');
      })();
      return closed;
    },
  };
}
