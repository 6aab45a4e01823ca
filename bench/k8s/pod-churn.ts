/**
 * Pod churn (not a test): what a cluster's pod events cost the gateway core. One process runs the
 * real core (Gateway: config store, compiler, endpoint discovery, logging) with `--pools`
 * InferencePools (each with its InferenceModel and a route on one Gateway) selecting `--pods` pods
 * between them. It measures the CPU the process uses (process.cpuUsage: user + system, as % of one
 * core) twice, back to back in the same run:
 *
 * - idle: the same setup, no events, for `--seconds`;
 * - churn: one pod change every `--interval-ms` for `--seconds`: ready → unready and back, a new
 *   pod IP, a delete, a re-add (a seeded sequence: every run and mode sees the same one).
 *
 * and prints one JSON object: both percentages, their difference (what the churn costs), the CPU
 * per event, how many events applied, and the log lines and bytes each kind of event wrote.
 * Scraping is off (no model servers), so the numbers are the configuration path alone. The
 * issue's budget: churn under 5 % of one core at 1,000 pods, 50 pools and one change every 100 ms.
 *
 * `--source programmatic` (default): a ConfigSource in this process delivers each change as one
 * incremental batch, as a watch event would be. `--source kubernetes`: the Kubernetes config
 * source (src/config/kubernetes/) lists and watches a fake API server (test/support/
 * fake-apiserver.ts) run in a child process, so the API server's work is not counted; each
 * change is written to it and reaches the gateway as a watch event (JSON line → Pod → batch).
 * That mode needs both modules in the build.
 *
 *   npx tsc -p tsconfig.json
 *   node dist/bench/k8s/pod-churn.js [--source programmatic|kubernetes] [--pods 1000] [--pools 50] [--interval-ms 100] [--seconds 60]
 *
 * CPU time, not wall time, is measured, so other processes on the machine slow the run but do not
 * inflate the numbers much; the idle baseline absorbs the timers' own cost.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseDocuments } from '../../src/api/index.js';
import type { Pod, Resource } from '../../src/api/types.js';
import type { ApplyOutcome, ConfigBatch, ConfigSink, ConfigSource } from '../../src/config/source.js';
import { seededRandom } from '../../src/core/weighted.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { createLogger } from '../../src/observability/logger.js';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '1000' },
    pools: { type: 'string', default: '50' },
    'interval-ms': { type: 'string', default: '100' },
    seconds: { type: 'string', default: '60' },
    'warmup-seconds': { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
    source: { type: 'string', default: 'programmatic' },
    'fake-api-server': { type: 'boolean' },
  },
});
const PODS = Number(values.pods);
const POOLS = Number(values.pools);
const INTERVAL_MS = Number(values['interval-ms']);
const SECONDS = Number(values.seconds);
const WARMUP_S = Number(values['warmup-seconds']);

type Obj = Record<string, unknown>;

/** The cluster's configuration as API objects: our GatewayClass, one Gateway, and per pool an InferencePool, an InferenceModel and an HTTPRoute. */
function configObjects(): Obj[] {
  const meta = (name: string): Obj => ({ name, namespace: 'default' });
  const out: Obj[] = [
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', metadata: { name: 'infergate' }, spec: { controllerName: 'infergate.dev/gateway-controller' } },
    { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: meta('gw'), spec: { gatewayClassName: 'infergate', listeners: [{ name: 'http', protocol: 'HTTP', port: 8080 }] } },
  ];
  for (let i = 0; i < POOLS; i++) {
    out.push(
      { apiVersion: 'inference.networking.k8s.io/v1', kind: 'InferencePool', metadata: meta(`pool-${i}`), spec: { selector: { matchLabels: { app: `model-${i}` } }, targetPorts: [{ number: 8000 }], endpointPickerRef: { name: `epp-${i}`, port: { number: 9002 } } } },
      { apiVersion: 'inference.networking.x-k8s.io/v1alpha2', kind: 'InferenceModel', metadata: meta(`model-${i}`), spec: { modelName: `model-${i}`, criticality: 'Standard', poolRef: { group: 'inference.networking.k8s.io', kind: 'InferencePool', name: `pool-${i}` } } },
      {
        apiVersion: 'gateway.networking.k8s.io/v1',
        kind: 'HTTPRoute',
        metadata: meta(`route-${i}`),
        spec: { parentRefs: [{ name: 'gw' }], rules: [{ matches: [{ headers: [{ name: 'x-model', value: `model-${i}` }] }], backendRefs: [{ group: 'inference.networking.k8s.io', kind: 'InferencePool', name: `pool-${i}` }] }] },
      },
    );
  }
  return out;
}

function ipOf(n: number, generation: number): string {
  return `10.${(generation % 200) + 1}.${Math.floor(n / 250)}.${(n % 250) + 1}`;
}

/** Pod `n` as the kubelet reports it, with what a real Pod carries that nothing reads (managedFields, a spec). */
function podObject(n: number, ready: boolean, ip: string): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `pod-${n}`, namespace: 'default', uid: `uid-${n}`, labels: { app: `model-${n % POOLS}`, 'pod-template-hash': 'abc123' }, managedFields: [{ manager: 'kubelet', operation: 'Update', fieldsV1: { 'f:status': {} } }] },
    spec: { nodeName: 'node-1', containers: [{ name: 'server', image: 'vllm/vllm-openai:latest', ports: [{ name: 'http', containerPort: 8000 }], resources: { limits: { 'nvidia.com/gpu': '1' } } }] },
    status: { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: ready ? 'True' : 'False' }] },
  };
}

/** API objects through the project's loader (JSON is YAML): the Resources a source delivers. */
function load(objects: readonly Obj[]): Resource[] {
  const loaded = parseDocuments(objects.map((o) => JSON.stringify(o)).join('\n---\n'), 'cluster.yaml');
  const errors = loaded.problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) throw new Error(JSON.stringify(errors.slice(0, 3)));
  return [...loaded.resources];
}


/** A ConfigSource driven by code: the whole state first, then one incremental batch per call. */
class ProgrammaticSource implements ConfigSource {
  readonly name = 'bench';
  #sink: ConfigSink | undefined;
  constructor(private readonly initial: readonly Resource[]) {}
  start(sink: ConfigSink): Promise<ApplyOutcome> {
    this.#sink = sink;
    return this.resync();
  }
  resync(): Promise<ApplyOutcome> {
    return this.deliver({ upserts: this.initial, deletes: [], replace: true, problems: [], ignored: 0 });
  }
  deliver(batch: ConfigBatch): Promise<ApplyOutcome> {
    if (this.#sink === undefined) throw new Error('not started');
    return this.#sink(batch);
  }
  async stop(): Promise<void> {}
}

/** One pod change: pod `n` (re)written with this readiness and IP, or deleted. */
type PodEvent = { readonly op: 'upsert'; readonly n: number; readonly ready: boolean; readonly ip: string } | { readonly op: 'delete'; readonly n: number };

/** The cluster's pods and a seeded stream of changes to them: ready flips, new IPs, deletes, re-adds. */
class Cluster {
  /** Live pods: readiness and IP generation. */
  readonly #live = new Map<number, { ready: boolean; generation: number }>();
  readonly #gone: number[] = [];
  readonly #unready: number[] = [];
  readonly #generation = new Map<number, number>();
  readonly #random: () => number;
  readonly counts = { unready: 0, ready: 0, newIp: 0, deleted: 0, readded: 0 };

  constructor(
    readonly size: number,
    seed: number,
  ) {
    for (let n = 0; n < size; n++) this.#live.set(n, { ready: true, generation: 0 });
    // Deterministic draws, so before/after runs see the same event sequence.
    this.#random = seededRandom(seed);
  }

  /** Endpoints the gateway should hold now: one per live, ready pod (one target port). */
  get readyPods(): number {
    let n = 0;
    for (const p of this.#live.values()) if (p.ready) n++;
    return n;
  }

  next(): PodEvent {
    const r = this.#random();
    if (this.#gone.length > 0 && (r < 0.2 || this.#live.size < this.size * 0.9)) {
      const n = this.#gone.splice(Math.floor(this.#random() * this.#gone.length), 1)[0] as number;
      this.counts.readded++;
      return this.#set(n, true, true);
    }
    const keys = [...this.#live.keys()];
    const n = keys[Math.floor(this.#random() * keys.length)] as number;
    const pod = this.#live.get(n) as { ready: boolean };
    if (r < 0.35) {
      this.#live.delete(n);
      this.#gone.push(n);
      this.counts.deleted++;
      return { op: 'delete', n };
    }
    if (r < 0.5) {
      this.counts.newIp++;
      return this.#set(n, pod.ready, true);
    }
    if (r < 0.75 && this.#unready.length > 0) {
      const m = this.#unready.splice(Math.floor(this.#random() * this.#unready.length), 1)[0] as number;
      if (this.#live.has(m)) {
        this.counts.ready++;
        return this.#set(m, true, false);
      }
    }
    if (!pod.ready) {
      this.counts.ready++;
      return this.#set(n, true, false);
    }
    this.#unready.push(n);
    this.counts.unready++;
    return this.#set(n, false, false);
  }

  #set(n: number, ready: boolean, newIp: boolean): PodEvent {
    let generation = this.#generation.get(n) ?? 0;
    if (newIp) this.#generation.set(n, ++generation);
    this.#live.set(n, { ready, generation });
    return { op: 'upsert', n, ready, ip: ipOf(n, generation) };
  }
}

/** The batch a watch event becomes (programmatic mode): one Pod upsert or delete. */
function toBatch(e: PodEvent, pods: readonly Pod[]): ConfigBatch {
  const base = pods[e.n] as Pod;
  if (e.op === 'delete') return { upserts: [], deletes: [{ kind: 'Pod', namespace: base.metadata.namespace, name: base.metadata.name }], replace: false, problems: [], ignored: 0 };
  const pod: Pod = { ...base, status: { ...base.status, ready: e.ready, podIP: e.ip } };
  return { upserts: [pod], deletes: [], replace: false, problems: [], ignored: 0 };
}

/** Log output counted, not kept (pino writes to it as it would to stdout). */
class CountingSink extends Writable {
  lines = 0;
  bytes = 0;
  readonly byMessage = new Map<string, { lines: number; bytes: number }>();
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    const text = chunk.toString('utf8');
    for (const line of text.split('\n')) {
      if (line === '') continue;
      this.lines++;
      this.bytes += line.length + 1;
      const msg = /"msg":"([^"]*)"/.exec(line)?.[1] ?? '?';
      const m = this.byMessage.get(msg) ?? { lines: 0, bytes: 0 };
      m.lines++;
      m.bytes += line.length + 1;
      this.byMessage.set(msg, m);
    }
    done();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Runs `body` for `seconds` and returns the CPU it and everything else in the process used, as % of one core. */
async function measure(seconds: number, body: (until: number) => Promise<void>): Promise<{ percent: number; wallMs: number; cpuMs: number }> {
  const cpu0 = cpuMicros();
  const t0 = performance.now();
  await body(t0 + seconds * 1000);
  const wallMs = performance.now() - t0;
  const cpuMs = (cpuMicros() - cpu0) / 1000;
  return { percent: (100 * cpuMs) / wallMs, wallMs, cpuMs };
}

/** What the fake API server child does with each message. */
type ApiMessage = { readonly apply: Obj } | { readonly delete: { readonly kind: string; readonly namespace: string; readonly name: string } } | { readonly cpu: true };

/**
 * The child (`--fake-api-server`): the test suite's fake API server, driven over IPC. Its module is
 * loaded by path so this file builds where it is absent (the programmatic mode needs nothing else).
 */
async function serveFakeApi(): Promise<void> {
  const mod = (await import(new URL('../../test/support/fake-apiserver.js', import.meta.url).href)) as {
    FakeApiServer: { start(opts: { bookmarkIntervalMs: number }): Promise<{ url: string; apply(o: Obj): unknown; delete(ref: Obj): boolean }> };
  };
  const api = await mod.FakeApiServer.start({ bookmarkIntervalMs: 1000 });
  process.on('message', (m: ApiMessage & { id: number }) => {
    if ('apply' in m) api.apply(m.apply);
    else if ('delete' in m) api.delete(m.delete);
    const u = process.cpuUsage();
    process.send?.({ id: m.id, cpuMs: (u.user + u.system) / 1000 });
  });
  process.send?.({ url: api.url });
  process.on('disconnect', () => process.exit(0));
}

/** The parent's end of the child: `send` resolves once the API server stored the change. */
class ApiChild {
  #id = 0;
  readonly #waiting = new Map<number, (cpuMs: number) => void>();
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
  ) {
    child.on('message', (m: { id?: number; cpuMs?: number }) => {
      if (m.id === undefined) return;
      this.#waiting.get(m.id)?.(m.cpuMs ?? 0);
      this.#waiting.delete(m.id);
    });
  }
  static async start(): Promise<ApiChild> {
    const child = fork(fileURLToPath(import.meta.url), ['--fake-api-server'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const [first] = (await once(child, 'message')) as [{ url: string }];
    return new ApiChild(child, first.url);
  }
  /** Sends one message; resolves with the child's CPU time so far (ms). */
  send(m: ApiMessage): Promise<number> {
    const id = ++this.#id;
    return new Promise((resolve) => {
      this.#waiting.set(id, resolve);
      this.child.send({ ...m, id });
    });
  }
  stop(): void {
    this.child.disconnect();
  }
}

/** The Kubernetes source's module, loaded by path (see serveFakeApi). */
interface KubernetesModule {
  loadKubeConfig(path: string): { config: unknown };
  ApiConnection: new (config: unknown) => unknown;
  KubernetesSource: new (options: { connection: unknown; namespace: string | undefined; scope: { kind: 'gateway'; gatewayClass: string } }) => ConfigSource;
}

if (values['fake-api-server'] === true) {
  await serveFakeApi();
} else {
  await main();
}

async function main(): Promise<void> {
  const kubernetes = values.source === 'kubernetes';
  if (!kubernetes && values.source !== 'programmatic') throw new Error('--source is programmatic or kubernetes');
  const configObjs = configObjects();
  const podObjs = Array.from({ length: PODS }, (_, n) => podObject(n, true, ipOf(n, 0)));
  const cluster = new Cluster(PODS, Number(values.seed));
  const logSink = new CountingSink();
  const logger = createLogger('info', logSink);

  let source: ConfigSource;
  /** Makes one change happen (and, programmatic, applied: resolves with whether it was accepted). */
  let deliver: (e: PodEvent) => Promise<boolean>;
  let api: ApiChild | undefined;
  let kubeDir: string | undefined;
  if (kubernetes) {
    api = await ApiChild.start();
    for (const o of [...configObjs, ...podObjs]) await api.send({ apply: o });
    kubeDir = await mkdtemp(join(tmpdir(), 'infergate-churn-'));
    const kubeconfig = join(kubeDir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {server: "${api.url}", insecure-skip-tls-verify: true}\nusers:\n- name: bench\n  user: {token: bench-token}\ncontexts:\n- name: fake\n  context: {cluster: fake, user: bench, namespace: default}\ncurrent-context: fake\n`,
    );
    const k8s = (await import(new URL('../../src/config/kubernetes/index.js', import.meta.url).href)) as KubernetesModule;
    source = new k8s.KubernetesSource({ connection: new k8s.ApiConnection(k8s.loadKubeConfig(kubeconfig).config), namespace: 'default', scope: { kind: 'gateway', gatewayClass: 'infergate' } });
    const child = api;
    deliver = async (e) => {
      if (e.op === 'delete') await child.send({ delete: { kind: 'Pod', namespace: 'default', name: `pod-${e.n}` } });
      else await child.send({ apply: podObject(e.n, e.ready, e.ip) });
      return true;
    };
  } else {
    const resources = load([...configObjs, ...podObjs]);
    const pods = resources.filter((r): r is Pod => r.kind === 'Pod');
    const programmatic = new ProgrammaticSource(resources);
    source = programmatic;
    deliver = async (e) => (await programmatic.deliver(toBatch(e, pods))).ok;
  }

  const gateway = await Gateway.start({ sources: [source], logger, scrapeIntervalMs: 0 });
  const endpointsNow = (): number => [...(gateway.runtime?.pools.values() ?? [])].reduce((n, p) => n + p.members.endpoints.length, 0);
  /** Waits (up to 30 s) until the gateway holds one endpoint per ready pod: every change arrived. */
  const settled = async (): Promise<boolean> => {
    const deadline = performance.now() + 30_000;
    while (endpointsNow() !== cluster.readyPods) {
      if (performance.now() > deadline) return false;
      await sleep(20);
    }
    return true;
  };
  const startSettled = await settled();
  const startEndpoints = endpointsNow();

  // Warm-up: JIT the apply path with a few events, then let the process settle.
  for (let i = 0; i < 20; i++) {
    await deliver(cluster.next());
    await sleep(INTERVAL_MS);
  }
  for (const k of Object.keys(cluster.counts) as Array<keyof Cluster['counts']>) cluster.counts[k] = 0;
  await settled();
  await sleep(WARMUP_S * 1000);

  const idle = await measure(SECONDS, async (until) => {
    // The same timer cadence as the churn phase, delivering nothing: the baseline is the process
    // plus the timer (and, kubernetes, open watches with their bookmarks), so the difference is
    // the events' own cost.
    while (performance.now() < until) await sleep(INTERVAL_MS);
  });

  const logBefore = { lines: logSink.lines, bytes: logSink.bytes, byMessage: new Map([...logSink.byMessage].map(([k, v]) => [k, { ...v }])) };
  let events = 0;
  let failed = 0;
  let deliverMsTotal = 0;
  let deliverMsMax = 0;
  const apiCpu0 = api === undefined ? 0 : await api.send({ cpu: true });
  const churn = await measure(SECONDS, async (until) => {
    let next = performance.now();
    while (performance.now() < until) {
      next += INTERVAL_MS;
      const t = performance.now();
      if (!(await deliver(cluster.next()))) failed++;
      const ms = performance.now() - t;
      deliverMsTotal += ms;
      deliverMsMax = Math.max(deliverMsMax, ms);
      events++;
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
    }
  });
  const apiCpuMs = api === undefined ? undefined : (await api.send({ cpu: true })) - apiCpu0;
  const endSettled = await settled();
  const endEndpoints = endpointsNow();
  await gateway.close();
  api?.stop();
  if (kubeDir !== undefined) await rm(kubeDir, { recursive: true, force: true });

  const logDuring: Record<string, { lines: number; bytes: number }> = {};
  for (const [msg, v] of logSink.byMessage) {
    const b = logBefore.byMessage.get(msg) ?? { lines: 0, bytes: 0 };
    if (v.lines > b.lines) logDuring[msg] = { lines: v.lines - b.lines, bytes: v.bytes - b.bytes };
  }
  const round = (n: number, d = 2): number => Math.round(n * 10 ** d) / 10 ** d;
  process.stdout.write(
    `${JSON.stringify(
      {
        setup: { source: values.source, pods: PODS, pools: POOLS, intervalMs: INTERVAL_MS, seconds: SECONDS, node: process.version },
        endpoints: { atStart: startEndpoints, atEnd: endEndpoints, readyPodsAtEnd: cluster.readyPods, everyChangeArrived: startSettled && endSettled },
        idle: { cpuPercentOfOneCore: round(idle.percent), cpuMs: round(idle.cpuMs, 0) },
        churn: { cpuPercentOfOneCore: round(churn.percent), cpuMs: round(churn.cpuMs, 0), events, failed, kinds: cluster.counts },
        churnCostPercentOfOneCore: round(churn.percent - idle.percent),
        cpuPerEventMs: round((churn.cpuMs - (idle.cpuMs * churn.wallMs) / idle.wallMs) / Math.max(1, events), 3),
        // Programmatic: the batch applied (store, discovery, log). Kubernetes: the write to the API server (the watch delivers later).
        deliverMs: { mean: round(deliverMsTotal / Math.max(1, events), 3), max: round(deliverMsMax, 3) },
        ...(apiCpuMs === undefined ? {} : { fakeApiServerCpuPercentOfOneCore: round((100 * apiCpuMs) / churn.wallMs), fakeApiServerNote: 'another process, not in the numbers above' }),
        logDuringChurn: { lines: logSink.lines - logBefore.lines, bytes: logSink.bytes - logBefore.bytes, byMessage: logDuring },
      },
      null,
      2,
    )}\n`,
  );
}
