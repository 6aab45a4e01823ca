import { access } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { parseDocuments, type Resource } from '../api/index.js';
import { FileConfigSource, StaticConfigSource } from '../config/file-source.js';
import type { ConfigSource } from '../config/source.js';
import { ConfigRejectedError } from '../config/store.js';
import { corePicker } from '../extproc/picker.js';
import { Gateway, InFlight, type UploadOptions } from '../gateway/index.js';
import type { Logger } from '../observability/logger.js';
import type { RequestProcessorFactory } from '../extproc/processor.js';
import { DEFAULT_DRAIN_MS, DEFAULT_GRPC_HEALTH_PORT, DEFAULT_GRPC_PORT, startExtProcServer, type ExtProcServer } from '../extproc/server.js';
import type { BodyMode } from '../extproc/stream.js';
import { startAdminServer, type AdminServer } from '../observability/admin-server.js';
import { ListenError } from '../proxy/port-listener.js';
import { eppPool, type EppPool } from './epp-options.js';
import { durationOption, loggerOption, SERVER_FLAGS, UPLOAD_FLAGS, uploadsOption, OptionError, portOption } from './options.js';
import { untilSignal } from './signals.js';
import { EPP_KUBERNETES_HELP, KUBERNETES_FLAGS, kubernetesOptions, kubernetesSource, type KubernetesMode } from './kubernetes-options.js';
import type { StatusReporting } from '../config/kubernetes/status-reporting.js';
import { notReadyProcessor } from '../extproc/not-ready.js';

export const EPP_HELP = `infergate epp: the endpoint picker for Envoy (External Processing gRPC)

Envoy (or Envoy Gateway, for an InferencePool's extensionRef) calls it for every request; it picks
the endpoint with the same core as \`infergate serve\` and names it in x-gateway-destination-endpoint.

Usage:
  infergate epp --pool-name NAME -f FILE_OR_DIR [options]
  infergate epp --endpoint-selector k=v[,k=v] --endpoint-target-ports P[,P] -f FILE_OR_DIR [options]
  infergate epp --pool-name NAME --kubernetes [options]

Options:
  -f, --file PATH              YAML/JSON file or folder of resources (repeatable)
      --pool-name NAME         the InferencePool this picker serves (one picker per pool)
      --pool-namespace NS      its namespace (default: env NAMESPACE, else "default")
      --endpoint-selector K=V  standalone mode: the model-server pods by label, no InferencePool
      --endpoint-target-ports P  with --endpoint-selector: 1-8 ports, one endpoint per port
${EPP_KUBERNETES_HELP}      --grpc-port N            ext_proc gRPC port (default 9002; 0 = any free port)
      --grpc-health-port N     gRPC health port, plaintext, services liveness, readiness and
                               envoy.service.ext_proc.v3.ExternalProcessor (default 9003)
      --metrics-port N         admin port: /healthz, /readyz, /metrics (default 9090)
      --metrics-address A      admin bind address (default 127.0.0.1)
      --address ADDR           address the gRPC ports bind (default 0.0.0.0)
      --cert-path DIR          TLS certificate: DIR/tls.crt and DIR/tls.key (a Kubernetes TLS
                               Secret's layout); without it a self-signed one is made at start
      --insecure               plaintext gRPC instead of TLS
      --body-mode MODE         body mode when Envoy does not say (Envoy < 1.32 sends no
                               protocol_config): FULL_DUPLEX_STREAMED (default) | BUFFERED
      --shutdown-grace T       time open streams get after SIGTERM/SIGINT (default 30s)
      --body-idle-timeout T    silence between two request body messages; the request gets 408
                               (default 30s)
      --body-budget SIZE       request bodies held at once, all requests together (bytes or a
                               quantity such as 256Mi); past it 503 with Retry-After (default
                               1/16 of the V8 heap limit)
      --log-level LEVEL        fatal|error|warn|info|debug|trace|silent (default info)
      --log-format F           json (default) | pretty
      --exit-with-parent       stop when the process that started this one exits
`;

const BODY_MODES: readonly BodyMode[] = ['FULL_DUPLEX_STREAMED', 'BUFFERED'];

/** What `infergate epp` was asked to run, after validation. */
export interface EppSettings {
  readonly pool: EppPool;
  readonly files: readonly string[];
  /** `--kubernetes`: the pool and its Pods from the API instead of `files` (kubeconfig already read). */
  readonly cluster?: KubernetesMode;
  /** Request-body bounds (--body-idle-timeout, --body-budget). */
  readonly uploads: UploadOptions;
}

/** The pool a standalone picker (`--endpoint-selector`) serves: built from the flags, named for logs. */
export const STANDALONE_POOL_NAME = 'epp-standalone';

/**
 * Upstream's standalone mode (`--endpoint-selector` + `--endpoint-target-ports`, no InferencePool):
 * the pool the flags describe, as a resource beside the files' Pods. Its runtime and policy are the
 * defaults (vLLM, DEFAULT); a pool that needs others is configured as an InferencePool.
 */
function standalonePool(pool: Extract<EppPool, { kind: 'selector' }>): Resource {
  return parseDocuments(
    stringify({
      apiVersion: 'inference.networking.k8s.io/v1',
      kind: 'InferencePool',
      metadata: { name: STANDALONE_POOL_NAME, namespace: pool.namespace },
      spec: { selector: { matchLabels: pool.selector }, targetPorts: pool.targetPorts.map((number) => ({ number })), endpointPickerRef: { name: STANDALONE_POOL_NAME, port: { number: DEFAULT_GRPC_PORT } } },
    }),
    '--endpoint-selector',
  ).resources[0] as Resource;
}

/**
 * The picker: the gateway core started on the files (plus the standalone pool), and the
 * per-request processor backed by it (extproc/picker.ts). Throws ConfigRejectedError when the
 * files do not hold a valid configuration, and says at start when the pool is not among them.
 */
async function startPicker(settings: EppSettings, logger: Logger, inFlight: InFlight): Promise<{ gateway: Gateway; processor: RequestProcessorFactory; poolKey: string; cluster: KubernetesMode | undefined }> {
  const poolKey = settings.pool.kind === 'pool' ? `${settings.pool.namespace}/${settings.pool.name}` : `${settings.pool.namespace}/${STANDALONE_POOL_NAME}`;
  const cluster = settings.cluster;
  const sources: ConfigSource[] = cluster === undefined ? [new FileConfigSource(settings.files, { watch: true })] : [cluster.source];
  if (settings.pool.kind === 'selector') sources.push(new StaticConfigSource([standalonePool(settings.pool)], '--endpoint-selector'));
  const gateway = await Gateway.start({ sources, logger, uploads: settings.uploads });
  if (gateway.runtime?.pools.has(poolKey) !== true) logger.warn({ pool: poolKey }, 'the InferencePool this picker serves is not in its configuration: requests get 503 pool_not_found until it appears');
  return { gateway, processor: corePicker(gateway, { poolKey, inFlight }), poolKey, cluster };
}

export async function runEppCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...SERVER_FLAGS,
      ...UPLOAD_FLAGS,
      'pool-name': { type: 'string' },
      'pool-namespace': { type: 'string' },
      'endpoint-selector': { type: 'string' },
      'endpoint-target-ports': { type: 'string' },
      'grpc-port': { type: 'string' },
      'grpc-health-port': { type: 'string' },
      'metrics-port': { type: 'string' },
      'metrics-address': { type: 'string' },
      'cert-path': { type: 'string' },
      insecure: { type: 'boolean' },
      'body-mode': { type: 'string' },
      ...KUBERNETES_FLAGS,
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(EPP_HELP);
    return 0;
  }
  const kubernetes = kubernetesOptions(values, 'epp', values['pool-name'] ?? STANDALONE_POOL_NAME);
  // With --kubernetes the pool's namespace falls back to --namespace (the pod's own) before "default".
  const envNamespace = process.env['NAMESPACE'];
  const poolNamespace = values['pool-namespace'] ?? (envNamespace !== undefined && envNamespace !== '' ? undefined : kubernetes?.namespace);
  const pool = eppPool({ poolName: values['pool-name'], poolNamespace, selector: values['endpoint-selector'], targetPorts: values['endpoint-target-ports'] });
  const files = values.file ?? [];
  if (files.length === 0 && kubernetes === undefined) throw new OptionError('epp needs -f FILE_OR_DIR or --kubernetes: the resources of the pool it serves (see infergate epp --help)');
  // The kubeconfig is read now: one that cannot be read is an option error before any port binds.
  const cluster = kubernetes === undefined ? undefined : await kubernetesSource(kubernetes, pool.kind === 'pool' ? { kind: 'pool', namespace: pool.namespace, name: pool.name } : { kind: 'selector', namespace: pool.namespace, selector: pool.selector });
  for (const f of files) {
    try {
      await access(f);
    } catch {
      throw new OptionError(`-f ${f}: no such file or folder`);
    }
  }
  if (values.insecure === true && values['cert-path'] !== undefined) throw new OptionError('--cert-path and --insecure exclude each other: one asks for TLS, the other turns it off');
  const bodyMode = values['body-mode'] ?? 'FULL_DUPLEX_STREAMED';
  if (!BODY_MODES.includes(bodyMode as BodyMode)) throw new OptionError(`--body-mode must be one of ${BODY_MODES.join(', ')} (got "${bodyMode}")`);
  const grpcPort = portOption('grpc-port', values['grpc-port'], DEFAULT_GRPC_PORT, 0);
  const healthPort = portOption('grpc-health-port', values['grpc-health-port'], DEFAULT_GRPC_HEALTH_PORT, 0);
  const metricsPort = portOption('metrics-port', values['metrics-port'], 9090, 0);
  const metricsAddress = values['metrics-address'] ?? '127.0.0.1';
  const address = values.address ?? '0.0.0.0';
  const drainMs = durationOption('shutdown-grace', values['shutdown-grace'], 0) ?? DEFAULT_DRAIN_MS;
  const logger = loggerOption(values);
  const uploads = uploadsOption(values);

  const inFlight = new InFlight();
  let picker: Awaited<ReturnType<typeof startPicker>> | undefined;
  let server: ExtProcServer | undefined;
  let admin: AdminServer | undefined;
  let status: StatusReporting | undefined;
  try {
    // The health and metrics ports come up first, answering "not ready" until the configuration
    // is loaded: a picker waiting for an unreachable API server is not ready, but alive (its
    // liveness probe must not restart it in a loop).
    const readiness = (): { ready: boolean; reason?: string } => {
      if (server === undefined) return { ready: false, reason: 'starting' };
      if (inFlight.draining) return { ready: false, reason: 'shutting down' };
      if (picker === undefined) return { ready: false, reason: 'loading the configuration' };
      if (picker.gateway.runtime?.pools.has(picker.poolKey) !== true) return { ready: false, reason: `InferencePool ${picker.poolKey} is not in the configuration` };
      return picker.gateway.ready();
    };
    try {
      admin = await startAdminServer(metricsAddress, metricsPort, {
        live: () => true,
        ready: readiness,
        metrics: () => picker?.gateway.metrics.registry,
        endpoints: () => picker?.gateway.debugEndpoints() ?? { pools: [] },
      });
    } catch (err) {
      throw new ListenError('metrics port', metricsAddress, metricsPort, err);
    }
    // Until the picker exists, a stream (which Envoy's health check should keep away) is refused.
    const processor = (): ReturnType<typeof notReadyProcessor> => (picker === undefined ? notReadyProcessor() : picker.processor());
    try {
      server = await startExtProcServer({ address, grpcPort, healthPort, tls: values.insecure === true ? false : { ...(values['cert-path'] === undefined ? {} : { certPath: values['cert-path'] }) }, processor, ready: () => readiness().ready, stream: { defaultBodyMode: bodyMode as BodyMode }, logger });
    } catch (err) {
      const { code, path } = err as { code?: unknown; path?: unknown };
      // Only a file under --cert-path is the certificate's fault; any other unreadable file (the
      // protocol definitions shipped in src/extproc/proto/) is an installation problem, said as is.
      const certPath = values['cert-path'];
      if ((code === 'ENOENT' || code === 'EACCES') && certPath !== undefined && typeof path === 'string' && path.startsWith(certPath)) throw new OptionError(`--cert-path ${certPath}: cannot read tls.crt and tls.key (${(err as Error).message})`);
      // OpenSSL's refusal of the files (not PEM, a key that does not match the certificate).
      if (values['cert-path'] !== undefined && /PEM|X509|key values mismatch|certificate|private key/i.test((err as Error).message)) {
        throw new OptionError(`--cert-path ${values['cert-path']}: tls.crt and tls.key are not a usable PEM certificate and matching key (${(err as Error).message})`);
      }
      throw new ListenError('gRPC ports', address, grpcPort, err);
    }
    try {
      picker = await startPicker({ pool, files, uploads, ...(cluster === undefined ? {} : { cluster }) }, logger, inFlight);
    } catch (err) {
      if (err instanceof ConfigRejectedError) {
        process.stderr.write(`${err.message}\n`);
        return 1;
      }
      throw err;
    }
    const { gateway } = picker;
    logger.info({ pool, grpcPort: server.grpcPort, healthPort: server.healthPort, metricsPort: admin.port, tls: server.tls, selfSigned: server.selfSigned }, 'endpoint picker started');
    // The pool's status (an --endpoint-selector picker has no InferencePool to report on).
    if (pool.kind === 'pool') status = picker.cluster?.reportStatus(gateway, logger, { mode: 'epp', poolName: pool.name, poolNamespace: pool.namespace });
    const cause = await untilSignal({ followParent: values['exit-with-parent'] === true });
    logger.info({ signal: cause }, 'shutting down');
    // Readiness turns NOT_SERVING first, so Envoy's health check moves new requests elsewhere;
    // the Lease is released at once, so another replica writes status while this one drains.
    inFlight.drain();
    await status?.stop();
    return 0;
  } finally {
    await status?.stop();
    await server?.close(drainMs);
    await picker?.gateway.close();
    await admin?.close();
  }
}
