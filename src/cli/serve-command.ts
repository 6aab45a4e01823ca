import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FileConfigSource } from '../config/file-source.js';
import { ConfigRejectedError } from '../config/store.js';
import type { UpstreamTimeouts } from '../gateway/index.js';
import { DEFAULT_SHUTDOWN_GRACE_MS, startStandaloneGateway, UPSTREAM_CONNECTIONS_PER_ENDPOINT } from '../proxy/standalone.js';
import { backendsYaml } from './backends.js';
import { durationOption, intOption, loggerOption, SERVER_FLAGS, UPLOAD_FLAGS, uploadsOption, OptionError, portOption } from './options.js';
import { untilSignal } from './signals.js';
import { KUBERNETES_FLAGS, kubernetesOptions, kubernetesSource, SERVE_KUBERNETES_HELP } from './kubernetes-options.js';
import type { ConfigSource } from '../config/source.js';
import { runPrimary } from '../workers/primary.js';
import { workerScrape } from '../workers/scrape.js';
import { WorkerLink } from '../workers/worker.js';
import { workersOption } from './workers-option.js';

export const SERVE_HELP = `infergate serve: run the standalone gateway

Usage:
  infergate serve -f FILE_OR_DIR [-f ...]       config from Kubernetes YAML, hot-reloaded
  infergate serve --backend URL [--backend ...]  quick start: one pool, one route, model pass-through
  infergate serve --kubernetes [--namespace NS]  config from the Kubernetes API, watched

Options:
  -f, --file PATH        YAML/JSON file or folder of resources (repeatable)
      --backend URL      model server, e.g. http://127.0.0.1:8001 (repeatable)
      --port N           with --backend: the listener port (default 8080)
      --print-config     with --backend: print the equivalent YAML and exit
      --address ADDR     address the listeners bind (default 0.0.0.0)
      --workers N        processes serving the listeners (default: $INFERGATE_WORKERS, else one
                         per core, os.availableParallelism()); 1 = one process, no primary.
                         docs/configuration.md "Workers" says what they share
      --admin-port N     admin port: /healthz, /readyz, /metrics, /debug/endpoints
                         (default 9090; 0 = any free port)
      --admin-address A  admin bind address (default 127.0.0.1)
      --no-watch         do not reload when files change
      --scrape-interval MS   time between scrapes of each endpoint's /metrics (default 50; 0 = off)
      --scrape-timeout MS    a scrape slower than this fails (default 1000)
      --metrics-staleness MS scraped metrics older than this are not trusted
                             (default max(200, 4 scrape intervals))
      --upstream-connections N  most connections to one model server; more requests wait
                             for a free one (default 1024, Envoy's max_connections)
      --log-level LEVEL  fatal|error|warn|info|debug|trace|silent (default info)
      --log-format F     json (default: one JSON object per line, for collectors) | pretty
                         (a readable line per record, its fields indented below, for a terminal)
      --exit-with-parent stop when the process that started this one exits (for a program
                         that owns the gateway; a script's \`nohup … &\` needs it off, the default)

${SERVE_KUBERNETES_HELP}
Timeouts (milliseconds, or durations such as 30s; docs/configuration.md says why):
      --stream-headers-timeout T   a streamed request's response headers (default 30s)
      --response-timeout T         a non-streamed request's whole answer (default 300s)
      --stream-idle-timeout T      silence between two chunks of a stream (default 60s)
      --unavailable-idle-timeout T silence after which a request on an endpoint that stopped
                                   answering (scrapes failing, or ejected) ends (default 5s)
      --client-stall-timeout T     a client that reads nothing of its answer this long is cut
                                   and its upstream request aborted (default 60s)
      --shutdown-grace T           time requests in flight get after SIGTERM/SIGINT (default 30s)
      --body-idle-timeout T        silence between two reads of a request body; the client gets
                                   408 and its connection closes (default 30s)

Memory:
      --body-budget SIZE           request bodies held at once, all requests together (bytes or a
                                   quantity such as 256Mi); past it new bodies get 503 with
                                   Retry-After (default 1/16 of the V8 heap limit)
`;


/** The upstream timeout flags, as `GatewayOptions.timeouts` (unset flags keep the defaults). */
function timeoutOptions(values: Readonly<Record<string, string | boolean | string[] | undefined>>): Partial<UpstreamTimeouts> {
  const flag = (name: string): number | undefined => durationOption(name, values[name] as string | undefined);
  const picked: Record<keyof UpstreamTimeouts, number | undefined> = {
    streamHeadersMs: flag('stream-headers-timeout'),
    responseMs: flag('response-timeout'),
    streamIdleMs: flag('stream-idle-timeout'),
    unavailableIdleMs: flag('unavailable-idle-timeout'),
    clientStallMs: flag('client-stall-timeout'),
  };
  return Object.fromEntries(Object.entries(picked).filter(([, v]) => v !== undefined));
}

export async function runServeCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...SERVER_FLAGS,
      backend: { type: 'string', multiple: true },
      port: { type: 'string' },
      'print-config': { type: 'boolean' },
      'admin-port': { type: 'string' },
      'admin-address': { type: 'string' },
      'no-watch': { type: 'boolean' },
      'scrape-interval': { type: 'string' },
      'scrape-timeout': { type: 'string' },
      'metrics-staleness': { type: 'string' },
      'upstream-connections': { type: 'string' },
      'stream-headers-timeout': { type: 'string' },
      'response-timeout': { type: 'string' },
      'stream-idle-timeout': { type: 'string' },
      'unavailable-idle-timeout': { type: 'string' },
      'client-stall-timeout': { type: 'string' },
      workers: { type: 'string' },
      ...UPLOAD_FLAGS,
      ...KUBERNETES_FLAGS,
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(SERVE_HELP);
    return 0;
  }
  const files = values.file ?? [];
  const backends = values.backend ?? [];
  const kubernetes = kubernetesOptions(values, 'serve');
  if (kubernetes !== undefined) {
    for (const flag of ['port', 'print-config', 'no-watch'] as const) {
      if (values[flag] !== undefined) throw new OptionError(`--${flag} does not go with --kubernetes`);
    }
  }
  if (files.length === 0 && backends.length === 0 && kubernetes === undefined) throw new Error('serve needs -f FILE, --backend URL or --kubernetes (see infergate serve --help)');
  if (files.length > 0 && backends.length > 0) throw new Error('use either -f or --backend, not both');
  // With -f the listeners are the Gateways' own: a flag that would not apply is refused, not ignored.
  for (const flag of ['port', 'print-config'] as const) {
    if (files.length > 0 && values[flag] !== undefined) throw new OptionError(`--${flag} goes with --backend; with -f the Gateway resources give the listeners (infergate validate -f … prints them)`);
  }
  const timeouts = timeoutOptions(values);
  const shutdownGraceMs = durationOption('shutdown-grace', values['shutdown-grace'], 0) ?? DEFAULT_SHUTDOWN_GRACE_MS;
  const adminPort = portOption('admin-port', values['admin-port'], 9090, 0);
  const scrapeIntervalMs = intOption('scrape-interval', values['scrape-interval'], 50, 0);
  const scrapeTimeoutMs = intOption('scrape-timeout', values['scrape-timeout'], 1000, 1);
  const stalenessMs = durationOption('metrics-staleness', values['metrics-staleness']);
  const upstreamConnections = intOption('upstream-connections', values['upstream-connections'], UPSTREAM_CONNECTIONS_PER_ENDPOINT, 1);
  const uploads = uploadsOption(values);
  const workers = workersOption(values.workers);
  // A worker forked by a primary (below) runs this same command: it is one gateway of N.
  const link = WorkerLink.join();
  const scrape = link === undefined ? { scrapeIntervalMs, stalenessMs } : workerScrape(link.count, scrapeIntervalMs, stalenessMs);

  let tempDir: string | undefined;
  const yaml = backends.length > 0 ? backendsYaml(backends, portOption('port', values.port, 8080)) : undefined;
  if (yaml !== undefined && values['print-config'] === true) {
    process.stdout.write(yaml);
    return 0;
  }
  if (link === undefined && workers > 1) {
    return runPrimary({
      count: workers,
      logger: loggerOption(values).child({ process: 'primary' }),
      adminAddress: values['admin-address'] ?? '127.0.0.1',
      adminPort,
      shutdownGraceMs,
      untilStop: () => untilSignal({ followParent: values['exit-with-parent'] === true }),
    });
  }
  if (yaml !== undefined) {
    tempDir = await mkdtemp(join(tmpdir(), 'infergate-'));
    files.push(join(tempDir, 'backends.yaml'));
    await writeFile(files[0] as string, yaml);
  }

  const logger = link === undefined ? loggerOption(values) : loggerOption(values).child({ worker: link.id });
  const cluster = kubernetes === undefined ? undefined : await kubernetesSource(kubernetes, { kind: 'gateway', gatewayClass: kubernetes.gatewayClass });
  const sources: ConfigSource[] = cluster === undefined ? [new FileConfigSource(files, { watch: values['no-watch'] !== true && tempDir === undefined })] : [cluster.source];
  try {
    const gateway = await startStandaloneGateway({
      sources,
      address: values.address ?? '0.0.0.0',
      adminPort,
      adminAddress: values['admin-address'] ?? '127.0.0.1',
      // A worker's admin port is its primary's.
      admin: link === undefined,
      scrapeIntervalMs: scrape.scrapeIntervalMs,
      scrapeTimeoutMs,
      upstreamConnections,
      ...(scrape.stalenessMs === undefined ? {} : { stalenessMs: scrape.stalenessMs }),
      timeouts,
      uploads,
      shutdownGraceMs,
      logger,
    });
    // Workers share one Lease identity (the pod's): only worker 0 reports status.
    const status = link === undefined || link.id === 0 ? cluster?.reportStatus(gateway.gateway, logger, { mode: 'gateway' }) : undefined;
    link?.started(gateway);
    const signal = untilSignal({ followParent: link === undefined && values['exit-with-parent'] === true });
    const cause = await (link === undefined ? signal : Promise.race([signal, link.shutdown]));
    logger.info({ signal: cause }, 'shutting down');
    // The Lease is released first, so another replica writes status while this one drains.
    await status?.stop();
    link?.stopSharing();
    await gateway.close();
    return 0;
  } catch (err) {
    if (err instanceof ConfigRejectedError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    link?.close();
    if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true });
  }
}
