import { startSimServer, type RunningSimServer, type SimServerOptions } from '../../src/sim/index.js';
import { configDir } from './config.js';
import { startGatewayProcess, type GatewayProcess, type LogLine } from './gateway-process.js';
import { freePort } from './ports.js';

/**
 * Helpers for the smart-routing integration tests: simulated pods on their own loopback
 * addresses sharing one port, the Pod and pool YAML for them, direct load on one pod, and reads
 * of the gateway's `/debug/endpoints` view.
 */

export interface PodSpec extends Omit<SimServerOptions, 'host' | 'port' | 'name'> {
  readonly name: string;
  readonly host: string;
  /** Pod labels besides `app: sim`. */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface SimPods {
  readonly port: number;
  readonly servers: ReadonlyMap<string, RunningSimServer>;
  get(name: string): RunningSimServer;
  podsYaml(): string;
  close(): Promise<void>;
}

/** Starts one simulated server per spec, all on one free port, like pods on their own IPs. */
export async function startPods(specs: readonly PodSpec[]): Promise<SimPods> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const started: RunningSimServer[] = [];
    try {
      for (const s of specs) {
        const { labels: _labels, ...options } = s;
        // PD side listeners on ports the OS picks unless a test names one: another run of the
        // tests may be using the defaults (SGLang's 8998, NIXL's 5600) on the same addresses.
        started.push(await startSimServer({ bootstrapPort: 0, sideChannelPort: 0, ...options, host: s.host, port, name: s.name }));
      }
    } catch (err) {
      await Promise.all(started.map((s) => s.close()));
      if ((err as { code?: string }).code === 'EADDRINUSE') continue;
      throw err;
    }
    const servers = new Map(started.map((s) => [s.name, s]));
    return {
      port,
      servers,
      get: (name) => {
        const s = servers.get(name);
        if (s === undefined) throw new Error(`no pod ${name}`);
        return s;
      },
      podsYaml: () =>
        specs
          .map((s) => {
            const labels = { app: 'sim', ...(s.labels ?? {}) };
            // A prefill server announces its bootstrap port as SGLang's pods do.
            const bootstrap = servers.get(s.name)?.bootstrapPort;
            const annotations = bootstrap === undefined ? '' : `\n  annotations: {sglang.ai/bootstrap-port: "${bootstrap}"}`;
            return `---
apiVersion: v1
kind: Pod
metadata:
  name: ${s.name}
  labels: ${JSON.stringify(labels)}${annotations}
status: {phase: Running, podIP: ${s.host}}
`;
          })
          .join(''),
      close: async () => void (await Promise.all(started.map((s) => s.close()))),
    };
  }
  throw new Error('could not find a port free on every pod address');
}

/** A Gateway on `port` with one HTTPRoute per pool, chosen by the `x-pool` header (the first pool is the default). */
export function gatewayForPools(port: number, pools: readonly string[]): string {
  const routes = pools
    .map(
      (pool, i) => `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-${pool}}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}${i === 0 ? '' : `, headers: [{name: x-pool, value: ${pool}}]`}}]
    backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: ${pool}}]
`,
    )
    .join('');
  return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: infergate
  listeners: [{name: http, protocol: HTTP, port: ${port}}]
${routes}`;
}

/** An InferencePool (v1) selecting `pool: <name>` pods, with annotations. */
export function poolYaml(name: string, port: number, annotations: Readonly<Record<string, string>> = {}): string {
  return `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: ${name}
  annotations: ${JSON.stringify(annotations)}
spec:
  selector: {matchLabels: {pool: ${name}}}
  targetPorts: [{number: ${port}}]
`;
}

export interface DebugEndpoint {
  name: string;
  address: string;
  healthy: boolean;
  stale: boolean | null;
  metrics: { waitingRequests: number; runningRequests: number; kvCacheUsage: number; lora?: { running: string[] } } | null;
  inFlight: number;
  estimatedWaiting: number;
}

export interface DebugPool {
  pool: string;
  policy: string;
  saturated: boolean;
  queued: Record<string, number>;
  endpoints: DebugEndpoint[];
}

export async function debugPools(gateway: GatewayProcess): Promise<DebugPool[]> {
  const r = await fetch(`http://127.0.0.1:${gateway.adminPort}/debug/endpoints`);
  return ((await r.json()) as { pools: DebugPool[] }).pools;
}

/**
 * Polls `check` every 20 ms until it holds; fails after `timeoutMs` with `what`. The default is
 * generous: it bounds a hang, it is not a speed the machine must reach.
 */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Where a `/debug/endpoints` view comes from: a gateway process, or anything that reads one (a test plane). */
export type ViewSource = GatewayProcess | { debugPools(): Promise<DebugPool[]> };

/** Waits until the gateway's view of `endpoint` satisfies `pred` (a scrape has shown it). */
export async function waitForView(source: ViewSource, endpoint: string, what: string, pred: (e: DebugEndpoint) => boolean, timeoutMs?: number): Promise<void> {
  const view = (): Promise<DebugPool[]> => ('debugPools' in source ? source.debugPools() : debugPools(source));
  await waitFor(`${endpoint}: ${what}`, async () => (await view()).some((p) => p.endpoints.some((e) => e.name === endpoint && pred(e))), timeoutMs);
}

export interface Loader {
  /** Resolves when every request of the load has finished (or failed). */
  readonly done: Promise<void>;
  stop(): void;
}

/**
 * Sends `count` long requests straight to a pod, bypassing the gateway, to load it: the gateway
 * learns about that load only from the pod's /metrics.
 */
export function loadDirectly(server: RunningSimServer, count: number, body: Record<string, unknown>): Loader {
  const controller = new AbortController();
  const done = Promise.all(
    Array.from({ length: count }, () =>
      fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: controller.signal })
        .then((r) => r.arrayBuffer())
        .catch(() => undefined),
    ),
  ).then(() => undefined);
  return { done, stop: () => controller.abort() };
}

export function chatBody(model: string, content: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model, messages: [{ role: 'user', content }], max_tokens: 8, ...extra });
}

export async function post(base: string, body: string, headers: Record<string, string> = {}, path = '/v1/chat/completions'): Promise<{ status: number; pod: string | null; text: string; headers: Headers }> {
  const r = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const text = await r.text();
  return { status: r.status, pod: r.headers.get('x-sim-pod'), text, headers: r.headers };
}

/** `n` chat requests for `model` one after another (each must answer 200); the pods that served them, in order. */
export async function servedBy(base: string, n: number, model: string, headers: Record<string, string> = {}): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await post(base, chatBody(model, `question ${i}`), headers);
    if (r.status !== 200) throw new Error(`request ${i} for ${model}: ${r.status} ${r.text}`);
    out.push(r.pod ?? '');
  }
  return out;
}

export function handled(gateway: GatewayProcess, requestId: string): Promise<LogLine> {
  return gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === requestId);
}

/** Simulated pods, the gateway over them, and the listener's URL; `close` stops everything. */
export interface SmartEnv {
  readonly pods: SimPods;
  readonly gateway: GatewayProcess;
  readonly base: string;
  close(): Promise<void>;
}

/**
 * Scrape settings of the smart-routing tests. The simulated pods run in the test process; on a
 * busy machine it may answer a scrape seconds late. With the defaults (1 s timeout, 200 ms
 * staleness) the gateway would then see healthy pods as unhealthy or stale and route around
 * them, and a test of routing on load would test the machine's speed instead.
 */
export const PATIENT_SCRAPE_MS = 10_000;
const PATIENT_SCRAPES = ['--scrape-timeout', String(PATIENT_SCRAPE_MS), '--metrics-staleness', String(PATIENT_SCRAPE_MS)];

/**
 * Starts the pods, writes the gateway config `config(listenerPort, pods)` to a temporary folder,
 * starts the gateway on it and waits until every endpoint has been scraped once, so a test sees
 * routing on real load from its first request.
 */
export async function startSmartEnv(
  specs: readonly PodSpec[],
  config: (port: number, pods: SimPods) => string,
  /** When an endpoint counts as scraped (default: it has metrics; a pod that publishes none never does). */
  scraped: (e: DebugEndpoint) => boolean = (e) => e.metrics !== null,
): Promise<SmartEnv> {
  const pods = await startPods(specs);
  const port = await freePort();
  const cfg = await configDir(config(port, pods));
  const gateway = await startGatewayProcess(['-f', cfg.dir, ...PATIENT_SCRAPES]);
  await waitFor('first scrapes', async () => (await debugPools(gateway)).every((p) => p.endpoints.every(scraped)), 20_000);
  return {
    pods,
    gateway,
    base: `http://127.0.0.1:${port}`,
    close: async () => {
      await gateway.stop();
      await pods.close();
      await cfg.remove();
    },
  };
}
