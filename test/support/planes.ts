import { corePicker } from '../../src/extproc/picker.js';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { Gateway, InFlight } from '../../src/gateway/index.js';
import { gatewayAndRoute } from './config.js';
import { startEnvoyRouter, type EnvoyRouter, type RoutedExchange } from './envoy-routes.js';
import type { LogLine } from './gateway-process.js';
import type { EnvoyStandinOptions, StandinBodyMode } from './envoy-standin.js';
import { memoryLogger } from './memory-source.js';
import { MemorySource } from './memory-source.js';
import { PATIENT_SCRAPE_MS, poolYaml, startPods, startSmartEnv, waitFor, type DebugEndpoint, type DebugPool, type PodSpec, type SimPods } from './smart.js';

/**
 * The two data planes behind one interface, for tests that must hold in both: the standalone proxy
 * (`infergate serve`, a child process) and Envoy + the endpoint picker (the Envoy stand-in with
 * its routing, one in-process EPP per InferencePool, all on one gateway core). A setup is written
 * once as data; each plane renders it its own way: the proxy as HTTPRoute rules, Envoy as routes
 * with weighted clusters (envoy-routes.ts).
 */

export type PlaneKind = 'proxy' | 'epp';

/** One HTTPRoute rule on `/v1`: an optional exact header match, and weighted InferencePool backends. */
export interface PlaneRoute {
  readonly header?: { readonly name: string; readonly value: string };
  readonly backends: ReadonlyArray<{ readonly pool: string; readonly weight?: number }>;
}

export interface PlaneSetup {
  /** Simulated pods; `labels.pool` selects their pool. */
  readonly pods: readonly PodSpec[];
  /** InferencePools (v1, selecting `pool: <name>`), with their annotations. */
  readonly pools: ReadonlyArray<{ readonly name: string; readonly annotations?: Readonly<Record<string, string>> }>;
  /** Rules in match order (the proxy orders by Gateway API precedence; list the specific ones first). */
  readonly routes: readonly PlaneRoute[];
  /** More resources (InferenceModels, InferenceTrafficPolicies), YAML starting with `---`. */
  readonly extra?: string;
  /** When an endpoint counts as scraped before the first request (default: it has metrics). */
  readonly scraped?: (e: DebugEndpoint) => boolean;
}

/** Where a request went, as the plane shows it. */
export interface Landing {
  /** The pod that was sent the request (decode pod of a PD pair). */
  readonly pod: string | undefined;
  /** The prefill pod of a disaggregated request. */
  readonly prefillPod: string | undefined;
}

export interface Plane {
  readonly kind: PlaneKind;
  /** Where a client posts (`${url}/v1/chat/completions`). */
  readonly url: string;
  readonly pods: SimPods;
  /** The gateway core's log lines (the proxy's stdout; the EPPs' logger). */
  readonly logs: readonly LogLine[];
  /** The request's `Request Handled` line (waits for it). */
  handled(requestId: string): Promise<LogLine>;
  /**
   * Where the request was sent: the proxy's decision as its log line records it; behind Envoy,
   * the EPP's decision headers as Envoy forwarded them (`x-gateway-destination-endpoint`,
   * `x-prefiller-host-port`), mapped to pod names.
   */
  landing(requestId: string): Promise<Landing>;
  /** The core's `/debug/endpoints` view. */
  debugPools(): Promise<DebugPool[]>;
  /** EPP plane: what Envoy forwarded, per cluster (empty for the proxy). */
  exchanges(): RoutedExchange[];
  close(): Promise<void>;
}

/** The config both planes load: a Gateway, one HTTPRoute with the setup's rules, pools, extras, pods. */
export function planeConfig(setup: PlaneSetup, listenerPort: number, pods: SimPods): string {
  const rules = setup.routes.map((r) => {
    const headers = r.header === undefined ? '' : `, headers: [{name: ${r.header.name}, value: ${JSON.stringify(r.header.value)}}]`;
    const refs = r.backends.map((b) => `{group: inference.networking.k8s.io, kind: InferencePool, name: ${b.pool}${b.weight === undefined ? '' : `, weight: ${b.weight}`}}`);
    return `  - matches: [{path: {type: PathPrefix, value: /v1}${headers}}]\n    backendRefs: [${refs.join(', ')}]`;
  });
  return gatewayAndRoute(listenerPort, rules) + setup.pools.map((p) => poolYaml(p.name, pods.port, p.annotations)).join('') + (setup.extra ?? '') + pods.podsYaml();
}

async function waitForLine(logs: readonly LogLine[], requestId: string): Promise<LogLine> {
  let line: LogLine | undefined;
  await waitFor(`Request Handled ${requestId}`, () => (line = logs.find((l) => l.msg === 'Request Handled' && l['requestId'] === requestId)) !== undefined);
  return line as LogLine;
}

async function startProxyPlane(setup: PlaneSetup): Promise<Plane> {
  const env = await startSmartEnv(setup.pods, (port, pods) => planeConfig(setup, port, pods), setup.scraped);
  const { gateway, pods } = env;
  return {
    kind: 'proxy',
    url: env.base,
    pods,
    logs: gateway.logs,
    handled: (id) => waitForLine(gateway.logs, id),
    landing: async (id) => {
      const line = await waitForLine(gateway.logs, id);
      const pd = line['pd'] as { decodePod?: string; prefillPod?: string; disaggregated?: boolean } | undefined;
      return { pod: pd?.disaggregated === true ? pd.decodePod : (line['pod'] as string | undefined), prefillPod: pd?.disaggregated === true ? pd.prefillPod : undefined };
    },
    debugPools: async () => ((await (await fetch(`http://127.0.0.1:${gateway.adminPort}/debug/endpoints`)).json()) as { pools: DebugPool[] }).pools,
    exchanges: () => [],
    close: () => env.close(),
  };
}

async function startEppPlane(setup: PlaneSetup, options: PlaneOptions): Promise<Plane> {
  const pods = await startPods(setup.pods);
  const { logger, lines } = memoryLogger();
  const inFlight = new InFlight();
  let gateway: Gateway | undefined;
  const epps: ExtProcServer[] = [];
  let router: EnvoyRouter | undefined;
  const close = async (): Promise<void> => {
    await router?.close();
    await Promise.all(epps.map((e) => e.close(1000)));
    await gateway?.close();
    await pods.close();
  };
  try {
    // The listener port is the proxy's business; the core only reads the routes and pools.
    gateway = await Gateway.start({ sources: [new MemorySource(planeConfig(setup, 8080, pods))], logger, scrapeTimeoutMs: PATIENT_SCRAPE_MS, stalenessMs: PATIENT_SCRAPE_MS });
    const core = gateway;
    const view = (): DebugPool[] => (core.debugEndpoints() as { pools: DebugPool[] }).pools;
    const scraped = setup.scraped ?? ((e: DebugEndpoint) => e.metrics !== null);
    await waitFor('first scrapes', () => view().length === setup.pools.length && view().every((p) => p.endpoints.length > 0 && p.endpoints.every(scraped)), 20_000);
    // One EPP per pool, as each InferencePool's extensionRef names its own.
    const clusters: Record<string, EnvoyStandinOptions> = {};
    for (const p of setup.pools) {
      const epp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: corePicker(core, { poolKey: `default/${p.name}`, inFlight }), ready: () => true, logger });
      epps.push(epp);
      clusters[p.name] = { target: `127.0.0.1:${epp.grpcPort}`, tls: false, bodyMode: options.bodyMode ?? 'FULL_DUPLEX_STREAMED' };
    }
    router = await startEnvoyRouter({
      clusters,
      routes: setup.routes.map((r) => ({
        ...(r.header === undefined ? {} : { headers: { [r.header.name]: r.header.value } }),
        clusters: r.backends.map((b) => ({ cluster: b.pool, weight: b.weight ?? 1 })),
      })),
    });
  } catch (err) {
    await close();
    throw err;
  }
  const through = router;
  const podAt = (address: string | undefined): string | undefined => {
    if (address === undefined) return undefined;
    const host = address.slice(0, address.lastIndexOf(':'));
    return setup.pods.find((p) => p.host === host)?.name;
  };
  return {
    kind: 'epp',
    url: through.url,
    pods,
    logs: lines,
    handled: (id) => waitForLine(lines, id),
    landing: async (id) => {
      let ex: RoutedExchange | undefined;
      await waitFor(`exchange ${id}`, () => (ex = through.exchanges().find((e) => e.upstreamHeaders['x-request-id'] === id)) !== undefined);
      const h = (ex as RoutedExchange).upstreamHeaders;
      return { pod: podAt(h['x-gateway-destination-endpoint']?.split(',')[0]?.trim()), prefillPod: podAt(h['x-prefiller-host-port']) };
    },
    debugPools: async () => (gateway?.debugEndpoints() as { pools: DebugPool[] }).pools,
    exchanges: () => through.exchanges(),
    close,
  };
}

export interface PlaneOptions {
  /** EPP plane: Envoy's request_body_mode and response_body_mode. Default FULL_DUPLEX_STREAMED (what upstream requires). */
  readonly bodyMode?: StandinBodyMode;
}

/** Starts pods and the plane over them. `close` stops everything it started. */
export function startPlane(kind: PlaneKind, setup: PlaneSetup, options: PlaneOptions = {}): Promise<Plane> {
  return kind === 'proxy' ? startProxyPlane(setup) : startEppPlane(setup, options);
}
