import { Agent } from 'undici';
import { GatewayError } from '../core/errors.js';
import type { Random } from '../core/weighted.js';
import { Gateway, InFlight, type ApplyOutcome, type ConfigSource, type UploadOptions, type UpstreamTimeouts } from '../gateway/index.js';
import { startAdminServer, type AdminServer, type Readiness } from '../observability/admin-server.js';
import type { Logger } from '../observability/logger.js';
import { createHandler } from './handler.js';
import { ListenerSet } from './listeners.js';
import { ListenError } from './port-listener.js';
import { Watchdog } from '../upstream/watchdog.js';

export interface StandaloneOptions {
  /** Where the configuration comes from (files with watch, resources built in code). */
  readonly sources: readonly ConfigSource[];
  /** Address the Gateway listeners bind. Default `0.0.0.0`. */
  readonly address?: string;
  /** Admin port for /healthz, /readyz, /metrics, /debug/endpoints. Default 9090; 0 picks a free port. */
  readonly adminPort?: number;
  /** Address of the admin port. Default `127.0.0.1`: health endpoints are for the local host. */
  readonly adminAddress?: string;
  /**
   * False: no admin port (a worker of `infergate serve --workers N`, whose primary answers the
   * admin port for every worker from their `ready`, metrics and debug views). Default true.
   */
  readonly admin?: boolean;
  readonly logger: Logger;
  /** Milliseconds requests in flight get to finish on shutdown. Default 30 000. */
  readonly shutdownGraceMs?: number;
  /** How long to wait for model servers, by phase; unset fields keep the core's defaults. */
  readonly timeouts?: Partial<UpstreamTimeouts>;
  /** The global request-body budget and the upload timeouts; unset fields keep the core's defaults. */
  readonly uploads?: UploadOptions;
  /** Time between two scrapes of one endpoint's /metrics. Default 50 ms; 0 turns scraping off. */
  readonly scrapeIntervalMs?: number;
  /** A scrape slower than this fails. Default 1000 ms. */
  readonly scrapeTimeoutMs?: number;
  /** Metrics older than this are not trusted. Default max(200 ms, 4 scrape intervals). */
  readonly stalenessMs?: number;
  /** Most connections open to one model server (origin). Default UPSTREAM_CONNECTIONS_PER_ENDPOINT. */
  readonly upstreamConnections?: number;
  readonly random?: Random;
}

export interface RunningGateway {
  /** The admin port bound; 0 with `admin: false`. */
  readonly adminPort: number;
  /** What `/readyz` answers: not ready while starting or shutting down, else the core's readiness. */
  readonly ready: () => Readiness;
  readonly ports: () => number[];
  /** Re-reads the sources and swaps the configuration if it is valid. */
  readonly reload: () => Promise<ApplyOutcome[]>;
  readonly gateway: Gateway;
  /**
   * Graceful shutdown: readiness fails at once, the listeners stop accepting, idle connections
   * close, and requests in flight get the grace period; at its end, streams still running get an
   * SSE error event (`gateway_shutting_down`) and everything is closed.
   */
  readonly close: () => Promise<void>;
}

/**
 * Upstream connections idle this long are closed. Below the 5 s keep-alive of uvicorn (which
 * serves vLLM and SGLang), so the gateway, not the server, closes an idle connection: a request
 * written on a connection the server is closing at that moment cannot be retried safely.
 */
export const UPSTREAM_KEEP_ALIVE_MS = 4_000;

/**
 * Default cap on connections the gateway opens to one model server: Envoy's default circuit
 * breaker for a cluster (`max_connections` 1024). An HTTP/1.1 connection carries one request at a
 * time, so this is also the most requests in progress on one server, four times vLLM's default
 * batch (`--max-num-seqs` 256): well past the point where the server queues. Requests beyond it
 * wait in the dispatcher's queue for a free connection, bounded by the phase timeouts, instead of
 * opening more sockets (500 clients once opened about 750 connections to two servers).
 */
export const UPSTREAM_CONNECTIONS_PER_ENDPOINT = 1024;

/** Default time requests in flight get after SIGTERM. */
export const DEFAULT_SHUTDOWN_GRACE_MS = 30_000;

/** How long requests stopped at the end of the grace period get to write their last bytes. */
const STOP_FLUSH_MS = 1_000;

/**
 * The standalone gateway: the core (configuration, scheduling, accounting) behind one listener
 * per Gateway listener port, plus the admin port. Every port must bind: start-up rejects with a
 * ListenError naming the port otherwise (and ConfigRejectedError when the first configuration is
 * invalid); a later change that adds a port which cannot bind is rejected like invalid config,
 * and the last good configuration keeps serving.
 */
export async function startStandaloneGateway(opts: StandaloneOptions): Promise<RunningGateway> {
  const { logger } = opts;
  const dispatcher = new Agent({
    // Per origin: undici's Agent keeps one pool per model server.
    connections: opts.upstreamConnections ?? UPSTREAM_CONNECTIONS_PER_ENDPOINT,
    keepAliveTimeout: UPSTREAM_KEEP_ALIVE_MS,
    // A server's own `Keep-Alive: timeout=N` is trusted (minus undici's margin) up to a minute.
    keepAliveMaxTimeout: 60_000,
    // Off: the watchdog applies the gateway's timeouts by phase (decision.timeouts).
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const watchdog = new Watchdog();
  const inFlight = new InFlight();
  let core: Gateway | undefined;
  const listeners = new ListenerSet(opts.address ?? '0.0.0.0', (port) => createHandler(port, { gateway: () => core, dispatcher, watchdog, inFlight }), logger);

  // The admin port binds first: a gateway that cannot report its health must not serve.
  const adminAddress = opts.adminAddress ?? '127.0.0.1';
  const adminPort = opts.adminPort ?? 9090;
  const ready = (): Readiness => {
    if (inFlight.draining) return { ready: false, reason: 'shutting down' };
    if (core === undefined) return { ready: false, reason: 'starting' };
    const r = core.ready();
    // A configuration with no Gateway listener (every file moved away, the Gateway deleted) leaves
    // nothing to take requests: this gateway cannot route, whatever else is loaded.
    if (r.ready && listeners.ports.length === 0) return { ...r, ready: false, reason: 'no listener: the configuration has no Gateway listener' };
    return r;
  };
  let admin: AdminServer | undefined;
  try {
    if (opts.admin !== false) {
      admin = await startAdminServer(adminAddress, adminPort, {
        live: () => true,
        ready,
        metrics: () => core?.metrics.registry,
        endpoints: () => core?.debugEndpoints() ?? { pools: [] },
      });
    }
  } catch (err) {
    await dispatcher.close();
    throw new ListenError('admin port', adminAddress, adminPort, err);
  }
  try {
    core = await Gateway.start({
      sources: opts.sources,
      logger,
      ...(opts.scrapeIntervalMs === undefined ? {} : { scrapeIntervalMs: opts.scrapeIntervalMs }),
      ...(opts.scrapeTimeoutMs === undefined ? {} : { scrapeTimeoutMs: opts.scrapeTimeoutMs }),
      ...(opts.stalenessMs === undefined ? {} : { stalenessMs: opts.stalenessMs }),
      ...(opts.random === undefined ? {} : { random: opts.random }),
      ...(opts.timeouts === undefined ? {} : { timeouts: opts.timeouts }),
      ...(opts.uploads === undefined ? {} : { uploads: opts.uploads }),
    });
    await listeners.reconcile(new Set(core.runtime?.snapshot.listeners.keys() ?? []));
  } catch (err) {
    await core?.close();
    listeners.close();
    await admin?.close();
    await dispatcher.close();
    throw err;
  }
  const started = core;
  // A change whose new ports cannot bind is refused (the core logs it like invalid config); ports
  // it drops are drained once it is committed.
  started.beforeSwap((snapshot) => listeners.open(new Set(snapshot.listeners.keys())));
  started.afterSwap((snapshot) => listeners.retireUnwanted(new Set(snapshot.listeners.keys())));
  if (admin !== undefined) logger.info({ adminPort: admin.port }, 'admin server started');

  const graceMs = opts.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
  let closed: Promise<void> | undefined;
  return {
    adminPort: admin?.port ?? 0,
    ready,
    ports: () => listeners.ports,
    reload: () => started.reload(),
    gateway: started,
    close: () => {
      closed ??= (async () => {
        inFlight.drain();
        listeners.drain();
        logger.info({ inFlight: inFlight.size, graceMs }, 'draining: readiness fails, no new connections, requests in flight finish');
        // No more configuration changes; requests still queued are refused. Scraping goes on, so
        // requests in flight are still judged by live endpoint health during the grace period.
        await started.drain();
        if (!(await inFlight.settled(graceMs))) {
          logger.warn({ inFlight: inFlight.size }, 'shutdown grace period over: stopping the requests still in flight');
          inFlight.stopAll(new GatewayError('gateway_shutting_down', `the gateway is shutting down: the request outlived the ${graceMs} ms grace period`));
          await inFlight.settled(STOP_FLUSH_MS);
        }
        await started.close();
        listeners.close();
        watchdog.close();
        await admin?.close();
        await dispatcher.destroy();
        logger.info('gateway stopped');
        // Log lines are written in batches (observability/logger.ts): the last ones go out now.
        await new Promise<void>((resolve) => logger.flush(() => resolve()));
      })();
      return closed;
    },
  };
}
