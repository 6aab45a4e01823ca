/**
 * Pod churn (not a test): what a cluster's pod events cost the gateway core. One process runs the
 * real core (Gateway: config store, compiler, endpoint discovery, logging) with `--pools`
 * InferencePools (each with its InferenceModel and a route on one Gateway) selecting `--pods` pods
 * between them, fed by a programmatic ConfigSource. It measures the CPU the process uses
 * (process.cpuUsage: user + system, as % of one core) twice, back to back in the same run:
 *
 * - idle: the same setup, no events, for `--seconds`;
 * - churn: one pod change every `--interval-ms` for `--seconds` (a Kubernetes watch delivers one
 *   event per batch): ready → unready and back, a new pod IP, a delete, a re-add.
 *
 * and prints one JSON object: both percentages, their difference (what the churn costs), the CPU
 * per event, how many events applied, and the log lines and bytes each kind of event wrote.
 * Scraping is off (no model servers: `--scrape-interval 0`), so the numbers are the
 * configuration path alone. The issue's budget: churn under 5 % of one core at 1,000 pods, 50 pools
 * and one change every 100 ms.
 *
 *   npx tsc -p tsconfig.json
 *   node dist/bench/k8s/pod-churn.js [--pods 1000] [--pools 50] [--interval-ms 100] [--seconds 60]
 *
 * CPU time, not wall time, is measured, so other processes on the machine slow the run but do not
 * inflate the numbers much; the idle baseline absorbs the timers' own cost.
 */
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { parseDocuments } from '../../src/api/index.js';
import type { Pod, Resource } from '../../src/api/types.js';
import type { ApplyOutcome, ConfigBatch, ConfigSink, ConfigSource } from '../../src/config/source.js';
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
  },
});
const PODS = Number(values.pods);
const POOLS = Number(values.pools);
const INTERVAL_MS = Number(values['interval-ms']);
const SECONDS = Number(values.seconds);
const WARMUP_S = Number(values['warmup-seconds']);

/** The cluster's configuration: one Gateway, and per pool an InferencePool, an InferenceModel and an HTTPRoute. */
function configYaml(): string {
  const docs = [
    `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: infergate
  listeners: [{name: http, protocol: HTTP, port: 8080}]`,
  ];
  for (let i = 0; i < POOLS; i++) {
    docs.push(`apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool-${i}}
spec:
  selector: {matchLabels: {app: model-${i}}}
  targetPorts: [{number: 8000}]
  endpointPickerRef: {name: epp-${i}, port: {number: 9002}}`);
    docs.push(`apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: model-${i}}
spec:
  modelName: model-${i}
  criticality: Standard
  poolRef: {group: inference.networking.k8s.io, kind: InferencePool, name: pool-${i}}`);
    docs.push(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route-${i}}
spec:
  parentRefs: [{name: gw}]
  rules:
    - matches: [{headers: [{name: x-model, value: model-${i}}]}]
      backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool-${i}}]`);
  }
  return docs.join('\n---\n');
}

function ipOf(n: number, generation: number): string {
  return `10.${(generation % 200) + 1}.${Math.floor(n / 250)}.${(n % 250) + 1}`;
}

/** Every pod, parsed once through the project's loader (the shape a Kubernetes source delivers). */
function basePods(): Pod[] {
  const docs: string[] = [];
  for (let n = 0; n < PODS; n++) {
    docs.push(`apiVersion: v1
kind: Pod
metadata: {name: pod-${n}, labels: {app: model-${n % POOLS}, pod-template-hash: abc123}}
spec: {containers: [{name: server, ports: [{name: http, containerPort: 8000}]}]}
status: {phase: Running, podIP: ${ipOf(n, 0)}, conditions: [{type: Ready, status: "True"}]}`);
  }
  const loaded = parseDocuments(docs.join('\n---\n'), 'pods.yaml');
  if (loaded.problems.some((p) => p.severity === 'error')) throw new Error(JSON.stringify(loaded.problems.slice(0, 3)));
  return loaded.resources as Pod[];
}

/** Deterministic draws (mulberry32), so before/after runs see the same event sequence. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
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

/** What one event does to the cluster; returns the batch a watch would deliver. */
class Cluster {
  readonly #live = new Map<number, Pod>();
  readonly #gone: number[] = [];
  readonly #unready: number[] = [];
  readonly #generation = new Map<number, number>();
  readonly #random: () => number;
  readonly counts = { unready: 0, ready: 0, newIp: 0, deleted: 0, readded: 0 };

  constructor(readonly pods: readonly Pod[], seed: number) {
    pods.forEach((p, n) => this.#live.set(n, p));
    this.#random = prng(seed);
  }

  next(): ConfigBatch {
    const r = this.#random();
    if (this.#gone.length > 0 && (r < 0.2 || this.#live.size < this.pods.length * 0.9)) {
      const n = this.#gone.splice(Math.floor(this.#random() * this.#gone.length), 1)[0] as number;
      const pod = this.#with(n, { ready: true }, true);
      this.counts.readded++;
      return upsert(pod);
    }
    const keys = [...this.#live.keys()];
    const n = keys[Math.floor(this.#random() * keys.length)] as number;
    const pod = this.#live.get(n) as Pod;
    if (r < 0.35) {
      this.#live.delete(n);
      this.#gone.push(n);
      this.counts.deleted++;
      return { upserts: [], deletes: [{ kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name }], replace: false, problems: [], ignored: 0 };
    }
    if (r < 0.5) {
      this.counts.newIp++;
      return upsert(this.#with(n, {}, true));
    }
    if (r < 0.75 && this.#unready.length > 0) {
      const m = this.#unready.splice(Math.floor(this.#random() * this.#unready.length), 1)[0] as number;
      if (this.#live.has(m)) {
        this.counts.ready++;
        return upsert(this.#with(m, { ready: true }, false));
      }
    }
    if (pod.status.ready === false) {
      this.counts.ready++;
      return upsert(this.#with(n, { ready: true }, false));
    }
    this.#unready.push(n);
    this.counts.unready++;
    return upsert(this.#with(n, { ready: false }, false));
  }

  #with(n: number, status: { ready?: boolean }, newIp: boolean): Pod {
    const base = this.#live.get(n) ?? (this.pods[n] as Pod);
    let generation = this.#generation.get(n) ?? 0;
    if (newIp) this.#generation.set(n, ++generation);
    const pod: Pod = { ...base, status: { ...base.status, ...status, podIP: ipOf(n, generation) } };
    this.#live.set(n, pod);
    return pod;
  }
}

function upsert(pod: Pod): ConfigBatch {
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

const config = parseDocuments(configYaml(), 'config.yaml');
if (config.problems.some((p) => p.severity === 'error')) throw new Error(JSON.stringify(config.problems.filter((p) => p.severity === 'error').slice(0, 3)));
const pods = basePods();
const source = new ProgrammaticSource([...config.resources, ...pods]);
const logSink = new CountingSink();
const gateway = await Gateway.start({ sources: [source], logger: createLogger('info', logSink), scrapeIntervalMs: 0 });
const cluster = new Cluster(pods, Number(values.seed));
const endpointsNow = (): number => [...(gateway.runtime?.pools.values() ?? [])].reduce((n, p) => n + p.members.endpoints.length, 0);
const startEndpoints = endpointsNow();

// Warm-up: JIT the apply path with a few events, then let the process settle.
for (let i = 0; i < 20; i++) await source.deliver(cluster.next());
for (const k of Object.keys(cluster.counts) as Array<keyof Cluster['counts']>) cluster.counts[k] = 0;
await sleep(WARMUP_S * 1000);

const idle = await measure(SECONDS, async (until) => {
  // The same timer cadence as the churn phase, delivering nothing: the baseline is the process
  // plus the timer, so the difference is the events' own cost.
  while (performance.now() < until) await sleep(INTERVAL_MS);
});

const logBefore = { lines: logSink.lines, bytes: logSink.bytes, byMessage: new Map([...logSink.byMessage].map(([k, v]) => [k, { ...v }])) };
let events = 0;
let failed = 0;
let applyMsTotal = 0;
let applyMsMax = 0;
const churn = await measure(SECONDS, async (until) => {
  let next = performance.now();
  while (performance.now() < until) {
    next += INTERVAL_MS;
    const t = performance.now();
    const outcome = await source.deliver(cluster.next());
    const ms = performance.now() - t;
    applyMsTotal += ms;
    applyMsMax = Math.max(applyMsMax, ms);
    events++;
    if (!outcome.ok) failed++;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
  }
});
await gateway.close();

const logDuring: Record<string, { lines: number; bytes: number }> = {};
for (const [msg, v] of logSink.byMessage) {
  const b = logBefore.byMessage.get(msg) ?? { lines: 0, bytes: 0 };
  if (v.lines > b.lines) logDuring[msg] = { lines: v.lines - b.lines, bytes: v.bytes - b.bytes };
}
const round = (n: number, d = 2): number => Math.round(n * 10 ** d) / 10 ** d;
process.stdout.write(
  `${JSON.stringify(
    {
      setup: { pods: PODS, pools: POOLS, intervalMs: INTERVAL_MS, seconds: SECONDS, endpointsAtStart: startEndpoints, endpointsAtEnd: endpointsNow(), node: process.version },
      idle: { cpuPercentOfOneCore: round(idle.percent), cpuMs: round(idle.cpuMs, 0) },
      churn: { cpuPercentOfOneCore: round(churn.percent), cpuMs: round(churn.cpuMs, 0), events, failed, kinds: cluster.counts },
      churnCostPercentOfOneCore: round(churn.percent - idle.percent),
      cpuPerEventMs: round((churn.cpuMs - (idle.cpuMs * churn.wallMs) / idle.wallMs) / Math.max(1, events), 3),
      applyMs: { mean: round(applyMsTotal / Math.max(1, events), 3), max: round(applyMsMax, 3) },
      logDuringChurn: { lines: logSink.lines - logBefore.lines, bytes: logSink.bytes - logBefore.bytes, byMessage: logDuring },
    },
    null,
    2,
  )}\n`,
);
