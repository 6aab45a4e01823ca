import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { DecisionStats } from '../../core/decision-stats.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNginx } from './nginx.js';
import { freePort, freePortOnAll } from './ports.js';
import { answers, startInfergate, type Child } from './processes.js';
import type { FleetSpec, SystemId } from './scenarios.js';

/*
 * What a scenario starts: the simulated engines (one child process) and the system under test in
 * front of them (nginx, the gateway with one of its policies, or nothing for direct connections).
 */

const FIRST_HOST = 127 * 2 ** 24 + 0 * 2 ** 16 + 9 * 2 ** 8 + 2; // 127.0.9.2: away from the demo's and the tests'
/** The most engines a scenario runs (the hosts the suite's ports must be free on). */
export const MAX_REPLICAS = 8;

/** The loopback addresses the engines of a fleet listen on, one per engine. */
export function fleetHosts(count = MAX_REPLICAS): string[] {
  return Array.from({ length: count }, (_, i) => host(i));
}

function host(offset: number): string {
  const n = FIRST_HOST + offset;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Context {
  readonly work: string;
  readonly log: (line: string) => void;
  readonly nginx: string | undefined;
  readonly seed: number;
  /** Port for the proxy under test (nginx or the gateway's listener). */
  readonly frontPort: number;
  readonly adminPort: number;
  /** Port of every engine, on its own host (free on all of fleetHosts()). */
  readonly simPort: number;
  /** The SGLang prefill engines' bootstrap port (free on all of fleetHosts()). */
  readonly bootstrapPort: number;
  /** The pool's `infergate.dev/routing` YAML for the `prefix` system (e.g. `prefix: {homeBonus: 0}`); default none. */
  readonly routing?: string;
}

export interface Fleet {
  readonly child: Child;
  /** Started for the `precise` system: the engines' KV event publisher and replay ports (every engine on its own host). */
  readonly kvEvents?: { readonly port: number; readonly replayPort: number };
  /** The tokenizer directory the engines use, if not the simulator's own. */
  readonly tokenizer?: string;
  readonly urls: readonly string[];
  readonly podsYaml: string;
  readonly runtime: FleetSpec['runtime'];
  readonly simPort: number;
  readonly bootstrapPort: number;
}

/**
 * Seed 002's PD pool, as examples/pd/ has it: the pool selects `alibabacloud.com/inference_backend:
 * sglang`, its InferenceTrafficPolicy tells the roles apart by the RoleBasedGroup role label and
 * names the prefill servers' bootstrap port.
 */
const PD_POOL_FILE = fileURLToPath(new URL('../../../../examples/pd/pool.yaml', import.meta.url));
const PD_SELECTOR_LABEL = 'alibabacloud.com/inference_backend=sglang';
const PD_ROLE_LABEL = 'rolebasedgroup.workloads.x-k8s.io/role';

/**
 * Simulated engines in one child process, on consecutive loopback hosts, all on ctx.simPort. For
 * the `pd` system the first `spec.pd.prefill` are prefill servers and the next `spec.pd.decode`
 * decode servers, labelled for seed 002's pool.
 */
export async function startFleet(spec: FleetSpec, ctx: Context, system?: SystemId): Promise<Fleet> {
  const pods = join(ctx.work, 'pods.yaml');
  await rm(pods, { force: true });
  const pd = system === 'pd' ? spec.pd : undefined;
  if (system === 'pd' && (pd === undefined || pd.prefill + pd.decode !== spec.replicas)) throw new Error('the pd system needs fleet.pd with prefill + decode = replicas');
  const labels = pd === undefined ? 'app=bench' : `app=bench,${PD_SELECTOR_LABEL}`;
  const args = ['sim', '--exit-with-parent', '--runtime', spec.runtime ?? 'vllm', '--host', host(0), '--port', String(ctx.simPort), '--replicas', String(spec.replicas), '--profile', spec.profile, '--labels', labels, '--pods-yaml', pods];
  if (pd !== undefined) {
    const roles = [...Array<string>(pd.prefill).fill('prefill'), ...Array<string>(pd.decode).fill('decode')];
    args.push('--pd-role', roles.join(','), '--pd-role-label', PD_ROLE_LABEL, '--bootstrap-port', String(ctx.bootstrapPort));
  }
  if (spec.numGpuBlocks !== undefined) args.push('--num-gpu-blocks', String(spec.numGpuBlocks));
  if (spec.maxModelLen !== undefined) args.push('--max-model-len', String(spec.maxModelLen));
  if (spec.maxNumSeqs !== undefined) args.push('--max-num-seqs', String(spec.maxNumSeqs));
  if (spec.timeScale !== undefined) args.push('--time-scale', String(spec.timeScale));
  if (spec.loras !== undefined) args.push('--lora', spec.loras.join(','), '--max-loras', String(spec.maxLoras ?? 1));
  if (spec.tokenizer !== undefined) args.push('--tokenizer', spec.tokenizer);
  // The oracle asks every engine what it caches (src/sim/prefix-match.ts); no other system may.
  if (system === 'oracle') args.push('--debug-prefix-match');
  let kvEvents: Fleet['kvEvents'];
  if (system === 'precise') {
    const hosts = fleetHosts(spec.replicas);
    kvEvents = { port: await freePortOnAll(hosts), replayPort: await freePortOnAll(hosts) };
    args.push(...kvEventArgs(kvEvents.port, kvEvents.replayPort));
  }
  if (spec.replicas > MAX_REPLICAS) throw new Error(`a fleet has at most ${MAX_REPLICAS} engines`);
  const urls = Array.from({ length: spec.replicas }, (_, i) => `http://${host(i)}:${ctx.simPort}`);
  // Ready when every engine answers and the Pods file is written (the sim writes it after listening).
  const written = async (): Promise<boolean> => (await stat(pods).catch(() => undefined)) !== undefined;
  // Every engine loads the tokenizer (seconds each on a busy machine): such a fleet gets longer to start.
  const child = await startInfergate('sim', args, async () => (await Promise.all(urls.map((u) => answers(`${u}/health`)))).every(Boolean) && (await written()), spec.tokenizer === undefined ? undefined : 180_000);
  return {
    child,
    urls,
    podsYaml: await readFile(pods, 'utf8'),
    runtime: spec.runtime,
    simPort: ctx.simPort,
    bootstrapPort: ctx.bootstrapPort,
    ...(kvEvents === undefined ? {} : { kvEvents }),
    ...(spec.tokenizer === undefined ? {} : { tokenizer: spec.tokenizer }),
  };
}

/**
 * `infergate sim` options that make every engine publish its KV events as vLLM's
 * `--kv-events-config` has it (vllm/config/kv_events.py: the ZMQ publisher, events on `port`,
 * replay on `replayPort`; `*` is each engine's own host).
 */
function kvEventArgs(port: number, replayPort: number): string[] {
  const config = { enable_kv_cache_events: true, publisher: 'zmq', endpoint: `tcp://*:${port}`, replay_endpoint: `tcp://*:${replayPort}` };
  return ['--kv-events-config', JSON.stringify(config)];
}

/**
 * The pool's `infergate.dev/routing` for the precise system: PREFIX_CACHE's scorers and weights,
 * its prefix scorer fed by the engines' KV events (the pod IP in `{ip}`), requests tokenised with
 * the engines' tokenizer.
 */
export function preciseRouting(fleet: Fleet, model = 'mymodel'): string {
  if (fleet.kvEvents === undefined) throw new Error('the precise system needs a fleet started for it (KV events on)');
  if (fleet.tokenizer === undefined) throw new Error('the precise system needs the engines to use a real tokenizer (FleetSpec.tokenizer)');
  return JSON.stringify({
    prefix: {
      mode: 'precise',
      kvEvents: { endpoint: `tcp://{ip}:${fleet.kvEvents.port}`, replayEndpoint: `tcp://{ip}:${fleet.kvEvents.replayPort}` },
      tokenizers: [{ model, path: fleet.tokenizer }],
    },
  });
}

/**
 * The YAML of a Gateway `bench` listening on `port` and an HTTPRoute sending everything to
 * `backendRef` (a flow-style backendRef, e.g. `{group: …, kind: InferencePool, name: …}`).
 */
export function gatewayAndRoute(port: number, backendRef: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: bench}
spec:
  gatewayClassName: infergate
  listeners: [{name: http, protocol: HTTP, port: ${port}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bench}
spec:
  parentRefs: [{name: bench}]
  rules: [{backendRefs: [${backendRef}]}]
`;
}

/** The gateway over the fleet: one listener, one route, one pool with the system's policy. */
async function gatewayYaml(fleet: Fleet, port: number, system: SystemId, runtime: FleetSpec['runtime'], routing?: string): Promise<string> {
  if (system === 'pd') {
    // Seed 002's pool and traffic policy, its ports (8000, bootstrap 34000) moved to the fleet's.
    const pool = (await readFile(PD_POOL_FILE, 'utf8')).replace(/targetPortNumber: 8000\b/, `targetPortNumber: ${fleet.simPort}`).replace(/bootstrapPort: 34000\b/, `bootstrapPort: ${fleet.bootstrapPort}`);
    return `${gatewayAndRoute(port, '{group: inference.networking.x-k8s.io, kind: InferencePool, name: qwen-inference-pool}')}---
${pool}
---
${fleet.podsYaml}`;
  }
  const annotations: Record<string, string> = {};
  const prefixCache = system === 'prefix' || system === 'prefix-nohome' || system === 'precise';
  if (prefixCache) annotations['inference.networking.x-k8s.io/routing-strategy'] = 'PREFIX_CACHE';
  if (system === 'prefix' && routing !== undefined) annotations['infergate.dev/routing'] = routing;
  // Estimate mode without prefix homes: the behaviour before they existed (docs/routing.md).
  if (system === 'prefix-nohome') annotations['infergate.dev/routing'] = 'prefix: {homeBonus: 0}';
  if (system === 'precise') annotations['infergate.dev/routing'] = preciseRouting(fleet);
  if (system === 'random') annotations['infergate.dev/routing'] = 'policy: random';
  if (system === 'round-robin') annotations['infergate.dev/routing'] = 'policy: round-robin';
  if (runtime === 'sglang') annotations['inference.networking.x-k8s.io/model-server-runtime'] = 'sglang';
  return `${gatewayAndRoute(port, '{group: inference.networking.k8s.io, kind: InferencePool, name: bench}')}---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: bench
  annotations: ${JSON.stringify(annotations)}
spec:
  selector: {matchLabels: {app: bench}}
  targetPorts: [{number: ${fleet.simPort}}]
---
${fleet.podsYaml}`;
}

export interface Front {
  readonly url: string;
  /** The proxy's own Prometheus page, for its event-loop delay (the gateway's and the picker's); undefined for others. */
  readonly metricsUrl?: string;
  /** The proxy's process (for CPU and memory); undefined for direct connections. For `epp`, the picker's. */
  readonly child: Child | undefined;
  /** For `epp`: the Envoy stand-in's process (its CPU is reported apart: a real Envoy's would differ). */
  readonly dataPath?: Child;
  /** For `epp`: the stand-in's timing of the picker's answers (forget the samples so far, read them). */
  readonly decisions?: { reset(): Promise<void>; read(): Promise<DecisionStats> };
  stop(): Promise<void>;
}

/** What coreReady reads of `/debug/endpoints`. */
interface DebugView {
  readonly pools: ReadonlyArray<{
    readonly prefixCache?: { readonly mode: string; readonly tokenizers?: ReadonlyArray<{ readonly state: string }> };
    readonly endpoints: ReadonlyArray<{ readonly metrics: unknown; readonly kvEvents?: { readonly subscribed: boolean } | null }>;
  }>;
}

/**
 * Ready once the admin port says ready and every engine has been scraped: the core then routes on
 * real load. With `precise`, also once every pool runs in precise mode (its tokenizers loaded) and
 * every engine's KV events are subscribed, so no request of the run is judged in estimate mode
 * for want of them.
 */
async function coreReady(admin: string, precise = false): Promise<boolean> {
  if (!(await answers(`${admin}/readyz`))) return false;
  const view = (await (await fetch(`${admin}/debug/endpoints`)).json()) as DebugView;
  const scraped = view.pools.length > 0 && view.pools.every((p) => p.endpoints.length > 0 && p.endpoints.every((e) => e.metrics !== null));
  if (!scraped || !precise) return scraped;
  return view.pools.every((p) => p.prefixCache?.mode === 'precise' && (p.prefixCache.tokenizers ?? []).every((t) => t.state === 'ready') && p.endpoints.every((e) => e.kvEvents?.subscribed === true));
}

/**
 * `infergate epp` in standalone mode (`--endpoint-selector app=bench`, the fleet's Pods file) with
 * TLS as upstream's Envoy config has it, and Envoy's data path played by `infergate envoy-standin`
 * on the front port, each in its own process: the picker's CPU is measured apart from the data path's.
 */
async function startEpp(fleet: Fleet, ctx: Context): Promise<Front> {
  const dir = join(ctx.work, 'epp');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'pods.yaml'), fleet.podsYaml);
  const [grpc, health, stats] = [await freePort(), await freePort(), await freePort()];
  const admin = `http://127.0.0.1:${ctx.adminPort}`;
  const epp = await startInfergate('epp', ['epp', '--exit-with-parent', '-f', dir, '--endpoint-selector', 'app=bench', '--endpoint-target-ports', String(fleet.simPort), '--address', '127.0.0.1', '--grpc-port', String(grpc), '--grpc-health-port', String(health), '--metrics-port', String(ctx.adminPort)], () => coreReady(admin));
  const statsUrl = `http://127.0.0.1:${stats}/decisions`;
  let standin: Child;
  try {
    standin = await startInfergate('envoy-standin', ['envoy-standin', '--exit-with-parent', '--ext-proc', `127.0.0.1:${grpc}`, '--port', String(ctx.frontPort), '--stats-port', String(stats)], () => answers(`http://127.0.0.1:${stats}/healthz`));
  } catch (err) {
    await epp.stop();
    throw err;
  }
  return {
    url: `http://127.0.0.1:${ctx.frontPort}`,
    metricsUrl: `${admin}/metrics`,
    child: epp,
    dataPath: standin,
    decisions: {
      async reset() {
        const r = await fetch(statsUrl, { method: 'DELETE' });
        await r.arrayBuffer();
      },
      read: async () => (await (await fetch(statsUrl)).json()) as DecisionStats,
    },
    stop: async () => {
      await standin.stop();
      await epp.stop();
    },
  };
}

/** Starts the system under test in front of the fleet. */
export async function startFront(system: SystemId, fleet: Fleet, ctx: Context): Promise<Front> {
  if (system === 'direct') {
    if (fleet.urls.length !== 1) throw new Error('direct connections need a one-engine fleet');
    return { url: fleet.urls[0] as string, child: undefined, stop: async () => undefined };
  }
  if (system === 'epp') return startEpp(fleet, ctx);
  const url = `http://127.0.0.1:${ctx.frontPort}`;
  if (system === 'oracle') {
    const child = await startInfergate('oracle', ['bench-oracle', '--exit-with-parent', '--port', String(ctx.frontPort), '--pods', fleet.urls.join(',')], () => answers(`${url}/healthz`));
    return { url, child, stop: () => child.stop() };
  }
  if (system === 'node-floor') {
    if (fleet.urls.length !== 1) throw new Error('the bare Node proxy needs a one-engine fleet');
    const child = await startInfergate('node-floor', ['bench-node-floor', '--exit-with-parent', '--port', String(ctx.frontPort), '--upstream', fleet.urls[0] as string], () => answers(`${url}/v1/models`));
    return { url, child, stop: () => child.stop() };
  }
  if (system === 'nginx') {
    if (ctx.nginx === undefined) throw new Error('nginx is not available');
    const child = await startNginx(ctx.nginx, join(ctx.work, 'nginx'), ctx.frontPort, fleet.urls.map((u) => u.slice('http://'.length)));
    return { url, child, stop: () => child.stop() };
  }
  const dir = join(ctx.work, 'gateway');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.yaml'), await gatewayYaml(fleet, ctx.frontPort, system, fleet.runtime, ctx.routing));
  const admin = `http://127.0.0.1:${ctx.adminPort}`;
  // One process per core the gateway may use: `default-workers` asks for two (the CPU and memory read are the process tree's).
  const workers = system === 'default-workers' ? ['--workers', '2'] : ['--workers', '1'];
  // A tokenizer takes seconds to load on a busy machine: precise gateways get longer to be ready.
  const child = await startInfergate('gateway', ['serve', '--exit-with-parent', '-f', dir, '--no-watch', '--address', '127.0.0.1', '--admin-port', String(ctx.adminPort), ...workers], () => coreReady(admin, system === 'precise'), system === 'precise' ? 120_000 : undefined);
  return { url, metricsUrl: `${admin}/metrics`, child, stop: () => child.stop() };
}


/** Several fronts of one system over one fleet, each with its own state, ports and files. */
export interface Fronts {
  readonly fronts: readonly Front[];
  readonly urls: readonly string[];
  stop(): Promise<void>;
}

/**
 * `count` copies of the system under test in front of the fleet (gateway replicas with the same
 * configuration and independent state, as N replicas of one Deployment run). One copy uses the
 * context's ports; more take free ones.
 */
export async function startFronts(system: SystemId, fleet: Fleet, ctx: Context, count: number): Promise<Fronts> {
  const fronts: Front[] = [];
  const stop = async (): Promise<void> => {
    for (const f of fronts) await f.stop();
  };
  try {
    if (count === 1) fronts.push(await startFront(system, fleet, ctx));
    else {
      for (let i = 0; i < count; i++) {
        fronts.push(await startFront(system, fleet, { ...ctx, work: join(ctx.work, `replica-${i}`), frontPort: await freePort(), adminPort: await freePort() }));
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { fronts, urls: fronts.map((f) => f.url), stop };
}
