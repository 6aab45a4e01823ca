import { ACTIVE_PORTS_ANNOTATION, BOOTSTRAP_PORT_ANNOTATION, type ModelServerRuntime, type Pod } from '../api/types.js';
import type { Endpoint, EndpointInit, EndpointRole, MetricsDialect } from '../core/endpoint.js';
import { resolveDialect } from './metrics/index.js';
import type { EndpointRegistry } from './registry.js';

/** Upstream's per-pod engine label (`vllm`, `sglang`, `trtllm-serve`, `triton-tensorrt-llm`); wins over the pool's runtime. */
export const ENGINE_TYPE_LABEL = 'inference.networking.k8s.io/engine-type';

// Label matching lives with the resource model (the Kubernetes source filters Pods with it too).
export { selectorMatches } from '../api/labels.js';
import { selectorMatches } from '../api/labels.js';

/**
 * A pod is terminating once the API server set its `metadata.deletionTimestamp` (a graceful
 * deletion began; it may stay Ready for its whole grace period): it takes no new requests, and the
 * requests it has in flight complete (an endpoint leaving discovery does not abort them).
 */
export function podIsTerminating(pod: Pod): boolean {
  return pod.metadata.deletionTimestamp !== undefined;
}

/**
 * A pod serves traffic when it has an IP, is Running (or reports no phase, as hand-written pods
 * do), is not reported unready and is not terminating.
 */
export function podIsServing(pod: Pod): boolean {
  if (pod.status.podIP === undefined || pod.status.podIP === '') return false;
  if (podIsTerminating(pod)) return false;
  if (pod.status.phase !== undefined && pod.status.phase !== 'Running') return false;
  return pod.status.ready !== false;
}

function activePorts(pod: Pod): ReadonlySet<number> | undefined {
  const raw = pod.metadata.annotations[ACTIVE_PORTS_ANNOTATION];
  if (raw === undefined) return undefined;
  return new Set(
    raw
      .split(',')
      .map((s) => Number.parseInt(s.trim(), 10))
      .filter((n) => Number.isInteger(n)),
  );
}

/** What endpoints an InferencePool or a Service port draws from the pods. */
export type DiscoveryTarget =
  | {
      readonly kind: 'pool';
      /** Unique among targets, e.g. `pool:default/my-pool`. */
      readonly key: string;
      readonly namespace: string;
      readonly selector: Readonly<Record<string, string>>;
      readonly targetPorts: readonly number[];
      readonly runtime: ModelServerRuntime;
      /** The pool names its runtime (annotation or traffic policy) rather than defaulting to vLLM. */
      readonly runtimeConfigured: boolean;
      /** Pod label whose value `prefill` or `decode` gives the endpoint's role (PD pools). */
      readonly roleLabel?: string;
    }
  | {
      readonly kind: 'service';
      readonly key: string;
      readonly namespace: string;
      readonly selector: Readonly<Record<string, string>>;
      /** A number, or the name of a container port. */
      readonly targetPort: number | string;
    };

export { BOOTSTRAP_PORT_ANNOTATION } from '../api/types.js';

/**
 * The role a pod's role label gives it in a prefill/decode pool: `prefill` or `decode` (any case;
 * RoleBasedGroup and SGLang use these), or `both` (llm-d's name for a pod that can do either).
 * Anything else, or no label, is no role: such a pod is not routable in a PD pool.
 */
export function roleOf(pod: Pod, roleLabel: string | undefined): EndpointRole | undefined {
  if (roleLabel === undefined) return 'both';
  const v = pod.metadata.labels[roleLabel]?.toLowerCase();
  return v === 'prefill' || v === 'decode' || v === 'both' ? v : undefined;
}

function bootstrapPortOf(pod: Pod): number | undefined {
  const raw = pod.metadata.annotations[BOOTSTRAP_PORT_ANNOTATION];
  const n = raw === undefined ? NaN : Number(raw);
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/**
 * The endpoints one pod gives a target. A pool: once per target port (`podIP:port`); with several
 * ports each is its own endpoint named `<pod>-rank-<i>` (data-parallel ranks, as upstream names
 * them), and the pod annotation `inference.networking.k8s.io/active-ports` limits which ports are
 * live. The metrics dialect is the pool's runtime unless the pod's engine-type label names another.
 * A Service: the numeric target port, or the container port a string target port names.
 */
export function podEndpoints(pod: Pod, target: DiscoveryTarget): EndpointInit[] {
  if (pod.metadata.namespace !== target.namespace || !podIsServing(pod)) return [];
  if (!selectorMatches(target.selector, pod.metadata.labels)) return [];
  const address = pod.status.podIP as string;
  if (target.kind === 'service') {
    const port = typeof target.targetPort === 'number' ? target.targetPort : pod.spec.containerPorts.find((p) => p.name === target.targetPort)?.containerPort;
    return port === undefined ? [] : [{ address, port, name: pod.metadata.name, podName: pod.metadata.name, labels: pod.metadata.labels }];
  }
  const active = activePorts(pod);
  const label = pod.metadata.labels[ENGINE_TYPE_LABEL];
  const fromLabel = label === undefined ? undefined : resolveDialect(label);
  const dialect: MetricsDialect = fromLabel ?? target.runtime;
  const dialectConfigured = fromLabel !== undefined || target.runtimeConfigured;
  const role = roleOf(pod, target.roleLabel);
  if (role === undefined) return [];
  const bootstrapPort = bootstrapPortOf(pod);
  const out: EndpointInit[] = [];
  target.targetPorts.forEach((port, rank) => {
    if (active !== undefined && !active.has(port)) return;
    out.push({
      address,
      port,
      name: target.targetPorts.length > 1 ? `${pod.metadata.name}-rank-${rank}` : pod.metadata.name,
      podName: pod.metadata.name,
      labels: pod.metadata.labels,
      dialect,
      dialectConfigured,
      role,
      ...(bootstrapPort === undefined ? {} : { bootstrapPort }),
    });
  });
  return out;
}

/**
 * A target's live endpoint list. Runtimes hold this object, not the list: discovery replaces
 * `endpoints` (a new frozen array) when pods change, and a request reads it once when it is
 * scheduled.
 */
export class Members {
  endpoints: readonly Endpoint[] = [];
  /** Endpoints per pod key, in the order pods were first seen. */
  readonly byPod = new Map<string, readonly Endpoint[]>();

  rebuild(): void {
    const all: Endpoint[] = [];
    for (const list of this.byPod.values()) all.push(...list);
    this.endpoints = Object.freeze(all);
  }
}

/** Endpoints that entered or left discovery altogether (no target used them before / uses them now). */
export interface EndpointDelta {
  readonly added: ReadonlySet<Endpoint>;
  readonly removed: ReadonlySet<Endpoint>;
}

export interface DiscoveryEvents {
  /**
   * After a change of some targets' endpoints (pods came, went or changed). `delta` says which
   * endpoints entered or left discovery when pods changed (`applyPods`); it is undefined after new
   * targets (`setTargets`), when any endpoint may have come or gone.
   */
  readonly onChange?: (targets: ReadonlySet<string>, delta?: EndpointDelta) => void;
  /**
   * A pod a prefill/decode pool selects has no usable role label: it gets no traffic. Reported
   * once per pod and role-label value (again only if the pod's label changes).
   */
  readonly onRoleless?: (pod: Pod, target: DiscoveryTarget & { kind: 'pool' }, value: string | undefined) => void;
}

/** Endpoints whose use count a batch changed, each with whether it was in use before the batch. */
type Touched = Map<Endpoint, boolean>;

/** Index key of a target (or a pod label): its namespace and one `label=value` pair. */
function indexKey(namespace: string, label: string, value: string): string {
  return `${namespace}\u0000${label}=${value}`;
}

/**
 * Endpoint discovery: pods × targets (pools and Service ports) → live endpoint lists. Pod changes
 * are applied incrementally: a changed pod is matched only against the targets it is in and the
 * targets whose selector shares one of its labels (targets are indexed by namespace and one
 * selector entry), so a pod event costs O(the pod's labels + the targets it matches), not
 * O(all targets or all pods). A new set of targets (a configuration change) matches every pod
 * again. Endpoints come from the registry, so an endpoint that stays keeps its counters and
 * metrics whatever changes around it; one no target uses any more leaves the registry.
 */
export class EndpointDiscovery {
  readonly #pods = new Map<string, Pod>();
  #targets = new Map<string, DiscoveryTarget>();
  /** Targets by `indexKey(namespace, k, v)` of their selector's first entry (an empty selector matches nothing: not indexed). */
  #index = new Map<string, Set<DiscoveryTarget>>();
  readonly #members = new Map<string, Members>();
  /** Keys of the targets each pod has endpoints in. */
  readonly #podTargets = new Map<string, Set<string>>();
  /**
   * The targets each endpoint is in, with how many of the target's pods place it there (two
   * pods may briefly share an IP); an endpoint in no target leaves the registry.
   */
  readonly #uses = new Map<Endpoint, Map<string, number>>();
  readonly #registry: EndpointRegistry;
  readonly #events: DiscoveryEvents;
  /** Role-less pods already reported: pod key → target key → label value reported (entries leave with their pod). */
  readonly #warned = new Map<string, Map<string, string>>();

  constructor(registry: EndpointRegistry, events: DiscoveryEvents = {}) {
    this.#registry = registry;
    this.#events = events;
  }

  /** The live members of a target; the same object for as long as the target exists. */
  members(key: string): Members {
    let m = this.#members.get(key);
    if (m === undefined) {
      m = new Members();
      this.#members.set(key, m);
    }
    return m;
  }

  /** Replaces the targets (a new configuration) and matches every pod against them. */
  setTargets(targets: readonly DiscoveryTarget[]): void {
    this.#targets = new Map(targets.map((t) => [t.key, t]));
    this.#index = new Map();
    for (const t of this.#targets.values()) {
      const first = Object.keys(t.selector)[0];
      if (first === undefined) continue;
      const key = indexKey(t.namespace, first, t.selector[first] as string);
      let set = this.#index.get(key);
      if (set === undefined) {
        set = new Set();
        this.#index.set(key, set);
      }
      set.add(t);
    }
    for (const key of this.#members.keys()) if (!this.#targets.has(key)) this.#members.delete(key);
    this.#uses.clear();
    this.#podTargets.clear();
    const ignored = new Map<Endpoint, boolean>();
    for (const target of this.#targets.values()) {
      const m = this.members(target.key);
      m.byPod.clear();
      for (const [podKey, pod] of this.#pods) this.#place(m, target, podKey, pod, ignored);
      m.rebuild();
    }
    this.#registry.retainOnly(new Set([...this.#uses.keys()].map((e) => e.key)));
    this.#events.onChange?.(new Set(this.#targets.keys()));
  }

  /**
   * Applies pod upserts and deletes (keys `namespace/name`), touching only those pods' endpoints.
   * Returns the keys of the targets whose endpoints changed.
   */
  applyPods(upserts: readonly Pod[], deletes: readonly string[]): ReadonlySet<string> {
    const changed = new Set<string>();
    if (upserts.length === 0 && deletes.length === 0) return changed;
    const touched: Touched = new Map();
    for (const key of deletes) {
      this.#pods.delete(key);
      this.#warned.delete(key);
      for (const tk of this.#podTargets.get(key) ?? []) {
        const m = this.#members.get(tk);
        if (m === undefined) continue;
        this.#release(m.byPod.get(key) ?? [], tk, touched);
        m.byPod.delete(key);
        changed.add(tk);
      }
      this.#podTargets.delete(key);
    }
    for (const pod of upserts) {
      const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
      this.#pods.set(key, pod);
      for (const target of this.#candidates(key, pod)) {
        const m = this.members(target.key);
        const had = m.byPod.get(key);
        this.#place(m, target, key, pod, touched);
        if (had !== undefined || m.byPod.has(key)) changed.add(target.key);
      }
    }
    for (const tk of changed) this.#members.get(tk)?.rebuild();
    // Judged once the whole batch is in: an endpoint released and taken again in the same batch
    // (an IP handed from one pod to another) stays the same object, counters and all.
    const delta = { added: new Set<Endpoint>(), removed: new Set<Endpoint>() };
    for (const [e, wasUsed] of touched) {
      const used = this.#uses.has(e);
      if (!used) this.#registry.drop(e);
      if (used && !wasUsed) delta.added.add(e);
      else if (!used && wasUsed) delta.removed.add(e);
    }
    if (changed.size > 0) this.#events.onChange?.(changed, delta);
    return changed;
  }

  /** Keys of the targets `endpoint` is in now (none once it left discovery). */
  targetsOf(endpoint: Endpoint): IterableIterator<string> {
    return (this.#uses.get(endpoint) ?? new Map<string, number>()).keys();
  }

  /** Every endpoint of every target, each once. */
  endpoints(): Set<Endpoint> {
    const all = new Set<Endpoint>();
    for (const m of this.#members.values()) for (const e of m.endpoints) all.add(e);
    return all;
  }

  /** The targets a pod may be in: those it is in now and those whose indexed selector entry it carries. */
  #candidates(podKey: string, pod: Pod): Set<DiscoveryTarget> {
    const out = new Set<DiscoveryTarget>();
    for (const tk of this.#podTargets.get(podKey) ?? []) {
      const t = this.#targets.get(tk);
      if (t !== undefined) out.add(t);
    }
    for (const [label, value] of Object.entries(pod.metadata.labels)) for (const t of this.#index.get(indexKey(pod.metadata.namespace, label, value)) ?? []) out.add(t);
    return out;
  }

  #place(m: Members, target: DiscoveryTarget, podKey: string, pod: Pod, touched: Touched): void {
    const inits = podEndpoints(pod, target);
    if (inits.length === 0 && target.kind === 'pool' && target.roleLabel !== undefined && podIsServing(pod) && pod.metadata.namespace === target.namespace && selectorMatches(target.selector, pod.metadata.labels)) {
      const value = pod.metadata.labels[target.roleLabel] ?? '';
      let warned = this.#warned.get(podKey);
      if (warned?.get(target.key) !== value) {
        if (warned === undefined) {
          warned = new Map();
          this.#warned.set(podKey, warned);
        }
        warned.set(target.key, value);
        this.#events.onRoleless?.(pod, target, pod.metadata.labels[target.roleLabel]);
      }
    }
    const old = m.byPod.get(podKey) ?? [];
    const next = inits.map((i) => this.#registry.acquire(i));
    // Take the new ones before releasing the old: an endpoint in both never touches zero.
    for (const e of next) {
      let uses = this.#uses.get(e);
      if (!touched.has(e)) touched.set(e, uses !== undefined);
      if (uses === undefined) {
        uses = new Map();
        this.#uses.set(e, uses);
      }
      uses.set(target.key, (uses.get(target.key) ?? 0) + 1);
    }
    this.#release(old, target.key, touched);
    let targets = this.#podTargets.get(podKey);
    if (next.length === 0) {
      m.byPod.delete(podKey);
      targets?.delete(target.key);
      if (targets?.size === 0) this.#podTargets.delete(podKey);
    } else {
      m.byPod.set(podKey, next);
      if (targets === undefined) {
        targets = new Set();
        this.#podTargets.set(podKey, targets);
      }
      targets.add(target.key);
    }
  }

  /** One placement fewer for each endpoint. */
  #release(endpoints: readonly Endpoint[], targetKey: string, touched: Touched): void {
    for (const e of endpoints) {
      const uses = this.#uses.get(e);
      if (!touched.has(e)) touched.set(e, uses !== undefined);
      if (uses === undefined) continue;
      const n = (uses.get(targetKey) ?? 0) - 1;
      if (n > 0) uses.set(targetKey, n);
      else uses.delete(targetKey);
      if (uses.size === 0) this.#uses.delete(e);
    }
  }
}
