import type { PoolConfig, ServiceConfig, Snapshot } from '../config/snapshot.js';
import type { Endpoint, EndpointRole } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import type { DiscoveryTarget, EndpointDiscovery, Members } from '../endpoints/discovery.js';
import { AdmissionGate, DEFAULT_ADMISSION, type AdmissionOptions } from '../flowcontrol/admission.js';
import { DEFAULT_SATURATION } from '../flowcontrol/saturation.js';
import { buildScheduler, type PluginCache, type SchedulerConfig } from '../scheduling/config.js';
import { pdPolicy, policyFor, SERVICE_POLICY, type PdRolePolicy, type PolicyName } from '../scheduling/policies.js';
import type { PluginRegistry } from '../scheduling/registry.js';
import type { Scheduler } from '../scheduling/scheduler.js';
import { isRequestControl, type PluginHandle, type RequestControl } from '../scheduling/types.js';

/**
 * The request-control hooks of a backend's plugins, sorted by hook once per configuration so a
 * request walks only the plugins that implement each (an empty list costs one length check).
 */
export interface RequestControls {
  readonly preRequest: readonly RequestControl[];
  readonly responseHeaders: readonly RequestControl[];
  readonly responseComplete: readonly RequestControl[];
  readonly logFields: readonly RequestControl[];
  /** Some plugin wants the answer text at completion. */
  readonly needsText: boolean;
}

/** A pool ready to schedule on: its live endpoints, the scheduler its policy compiles to, its gate. */
export interface PoolRuntime {
  readonly kind: 'pool';
  readonly config: PoolConfig;
  /** Every discovered endpoint, healthy or not (live: pods come and go without a new runtime). */
  readonly members: Members;
  readonly policy: PolicyName;
  readonly scheduler: Scheduler;
  readonly controls: RequestControls;
  readonly gate: AdmissionGate;
  /** Available endpoints (healthy, not ejected); all of them when none is. */
  candidates(): readonly Endpoint[];
}

/** A Service backend: plain balancing over its endpoints, no queue. */
export interface ServiceRuntime {
  readonly kind: 'service';
  readonly config: ServiceConfig;
  readonly members: Members;
  readonly scheduler: Scheduler;
  readonly controls: RequestControls;
  candidates(): readonly Endpoint[];
}

export type BackendRuntime = PoolRuntime | ServiceRuntime;

/**
 * Everything a request needs, derived once per snapshot: a request captures one Runtime at its
 * start and uses it to the end, even if a reload swaps in another.
 */
export interface Runtime {
  readonly snapshot: Snapshot;
  readonly pools: ReadonlyMap<string, PoolRuntime>;
  /** Keyed by `namespace/name|targetPort`. */
  readonly services: ReadonlyMap<string, ServiceRuntime>;
  /** What endpoint discovery must follow for this runtime. */
  readonly targets: readonly DiscoveryTarget[];
  /** Plugin instances by pool, for reuse by the next build. */
  readonly pluginCaches: ReadonlyMap<string, PluginCache>;
}

export function serviceRuntimeKey(service: ServiceConfig, targetPort: number | string): string {
  return `${service.key}|${targetPort}`;
}

export function poolTargetKey(pool: PoolConfig): string {
  return `pool:${pool.key}`;
}

function serviceTargetKey(key: string): string {
  return `service:${key}`;
}

/** What outlives snapshots: endpoints (with counters and metrics) and the pools' queues. */
export interface RuntimeDeps {
  readonly discovery: EndpointDiscovery;
  readonly plugins: PluginRegistry;
  readonly handle: PluginHandle;
  /** Gates by pool key; kept across reloads so queued requests survive them. */
  readonly gates: Map<string, AdmissionGate>;
  /** How often a waiting queue re-checks saturation (the scrape interval). */
  readonly recheckMs: number;
}

function admissionOptions(pool: PoolConfig, deps: RuntimeDeps): AdmissionOptions {
  const r = pool.routing;
  return {
    queueDepth: r?.saturation?.queueDepth ?? DEFAULT_SATURATION.queueDepth,
    kvCacheUtilization: r?.saturation?.kvCacheUtilization ?? DEFAULT_SATURATION.kvCacheUtilization,
    stalenessMs: deps.handle.stalenessMs,
    maxRequests: r?.queue?.maxRequests ?? DEFAULT_ADMISSION.maxRequests,
    ttlMs: r?.queue?.ttlMs ?? DEFAULT_ADMISSION.ttlMs,
    sheddable: r?.queue?.sheddable ?? DEFAULT_ADMISSION.sheddable,
    recheckMs: deps.recheckMs,
  };
}

/**
 * The candidates, best tier first: ready endpoints (answered since they appeared, scrapes
 * succeed, not ejected by passive health) that are not backed off (a 429, or failing far more
 * than their peers); else ready ones; else all of them: a cold start serves at once, a scrape
 * outage or a burst of failures must not refuse every request (Envoy's panic threshold), and a
 * pool whose every pod says it is full still gets its requests.
 * Judged per prefill/decode role, since a request needs one of each: a pool whose decode
 * endpoints are all ejected keeps them as candidates, as a pool without roles keeps all.
 */
function availableOrAll(members: Members, now: () => number): readonly Endpoint[] {
  const all = members.endpoints;
  const t = now();
  const free = (e: Endpoint): boolean => e.ready(t) && !e.backedOff(t);
  if (all.every(free)) return all;
  const tiers = [free, (e: Endpoint): boolean => e.ready(t)];
  const best = (group: readonly Endpoint[]): readonly Endpoint[] => {
    for (const ok of tiers) {
      const chosen = group.filter(ok);
      if (chosen.length > 0) return chosen;
    }
    return group;
  };
  if (all.every((e) => e.role === 'both')) return best(all);
  // A role's candidates are its own pods and `both` pods (the role filter's rule).
  const chosen = new Set<Endpoint>();
  for (const role of ['prefill', 'decode'] as const) for (const e of best(all.filter((e) => e.role === role || e.role === 'both'))) chosen.add(e);
  return all.filter((e) => chosen.has(e));
}

/**
 * The groups passive health judges `endpoint` with (its ejection cap, its error share against its
 * peers'): per pool it is a member of, the endpoints that take the same requests — the pool, or
 * in a prefill/decode pool each role's capable pods (the role filter's rule) that it is one of.
 */
export function peerGroups(runtime: Runtime | undefined, endpoint: Endpoint): Array<readonly Endpoint[]> {
  const groups: Array<readonly Endpoint[]> = [];
  for (const pool of runtime?.pools.values() ?? []) {
    const all = pool.members.endpoints;
    if (!all.includes(endpoint)) continue;
    if (all.every((e) => e.role === 'both')) {
      groups.push(all);
      continue;
    }
    for (const role of ['prefill', 'decode'] as const) {
      if (endpoint.role !== role && endpoint.role !== 'both') continue;
      groups.push(all.filter((e) => e.role === role || e.role === 'both'));
    }
  }
  return groups;
}

export function requestControls(scheduler: Scheduler): RequestControls {
  const controls = scheduler.plugins().filter(isRequestControl);
  return {
    preRequest: controls.filter((c) => c.preRequest !== undefined),
    responseHeaders: controls.filter((c) => c.responseHeaders !== undefined),
    responseComplete: controls.filter((c) => c.responseComplete !== undefined),
    logFields: controls.filter((c) => c.logFields !== undefined),
    needsText: controls.some((c) => c.needsResponseText === true && c.responseComplete !== undefined),
  };
}

/**
 * What admission judges saturation over. A prefill/decode pool is saturated when a role it needs
 * is: SGLang needs both (a decode server waits for a prefill partner); vLLM's decode servers can
 * serve alone, so only the decode role must have headroom (a saturated prefill role sends
 * requests to decode alone). Any other pool: its endpoints.
 */
function saturationGroups(pool: PoolConfig, candidates: () => readonly Endpoint[]): () => readonly (readonly Endpoint[])[] {
  if (pdProfileOf(pool) === undefined) return () => [candidates()];
  const roles: readonly EndpointRole[] = pool.runtime === 'sglang' ? ['prefill', 'decode'] : ['decode'];
  return () => {
    const all = candidates();
    return roles.map((role) => all.filter((e) => e.role === role || e.role === 'both'));
  };
}

/**
 * The pool's prefill/decode profile when the gateway serves it disaggregated: an
 * InferenceTrafficPolicy `profile.pd` on an SGLang or vLLM pool (the two PD protocols spoken).
 */
export function pdProfileOf(pool: PoolConfig): NonNullable<NonNullable<PoolConfig['trafficPolicy']>['profile']>['pd'] {
  return pool.runtime === 'trt-llm' ? undefined : pool.trafficPolicy?.profile?.pd;
}

/**
 * The scheduling configuration of a pool: a prefill/decode pool's InferenceTrafficPolicy
 * (`profile.pd`) gives two profiles and the PD handler; any other pool its routing-strategy
 * annotation and `infergate.dev/routing` tunables.
 */
export function poolSchedulerConfig(pool: PoolConfig): { name: PolicyName; config: SchedulerConfig } {
  const pd = pdProfileOf(pool);
  if (pd === undefined) return policyFor(pool.routingStrategy, pool.routing, pool.precise);
  const ref = (name: string | undefined): PdRolePolicy | undefined => (name !== undefined && pd.trafficPolicy?.prefixCache !== undefined && name === 'prefixCache' ? 'prefixCache' : undefined);
  return pdPolicy(
    {
      prefillPolicy: ref(pd.prefillPolicyRef),
      decodePolicy: ref(pd.decodePolicyRef),
      decodeCanServeAlone: pool.runtime === 'vllm',
      ...(pool.routing?.pd?.uncachedThresholdTokens === undefined ? {} : { uncachedThresholdTokens: pool.routing.pd.uncachedThresholdTokens }),
    },
    pool.routing,
    pool.precise,
  );
}

/** A runtime built but not live: `commit` reconfigures the gates it keeps and closes the ones it drops. */
export interface BuiltRuntime {
  readonly runtime: Runtime;
  commit(): void;
}

/**
 * Builds the runtime of a snapshot: a scheduler per pool (plugins instantiated and validated; an
 * unchanged instance is reused from `previous`), a gate per pool, the discovery targets. Throws
 * (PluginConfigError naming the plugin and field) without side effects visible to requests;
 * gates are reconfigured and dropped only by `commit`.
 */
export function buildRuntime(snapshot: Snapshot, deps: RuntimeDeps, previous?: Runtime): BuiltRuntime {
  const pools = new Map<string, PoolRuntime>();
  const caches = new Map<string, PluginCache>();
  const targets: DiscoveryTarget[] = [];
  const gateChanges: Array<() => void> = [];
  for (const pool of snapshot.pools.values()) {
    const roleLabel = pdProfileOf(pool)?.pdRoleLabelName;
    const target: DiscoveryTarget = {
      kind: 'pool',
      key: poolTargetKey(pool),
      namespace: pool.namespace,
      selector: pool.selector,
      targetPorts: pool.targetPorts,
      runtime: pool.runtime,
      runtimeConfigured: pool.runtimeConfigured,
      ...(roleLabel === undefined ? {} : { roleLabel }),
    };
    targets.push(target);
    const members = deps.discovery.members(target.key);
    const { name, config } = poolSchedulerConfig(pool);
    let built;
    try {
      built = buildScheduler(config, deps.plugins, deps.handle, previous?.pluginCaches.get(pool.key));
    } catch (err) {
      throw new RuntimeBuildError(`InferencePool/${pool.name}`, err);
    }
    caches.set(pool.key, built.cache);
    const options = admissionOptions(pool, deps);
    const candidates = (): readonly Endpoint[] => availableOrAll(members, deps.handle.now);
    const groups = saturationGroups(pool, candidates);
    let gate = deps.gates.get(pool.key);
    if (gate === undefined) {
      const created = new AdmissionGate(groups, options, deps.handle.now);
      gate = created;
      gateChanges.push(() => deps.gates.set(pool.key, created));
    } else {
      const kept = gate;
      gateChanges.push(() => kept.reconfigure(groups, options));
    }
    pools.set(pool.key, { kind: 'pool', config: pool, members, policy: name, scheduler: built.scheduler, controls: requestControls(built.scheduler), gate, candidates });
  }

  const services = new Map<string, ServiceRuntime>();
  for (const listener of snapshot.listeners.values()) {
    for (const rule of listener.routes.rules()) {
      for (const b of rule.backends.items) {
        if (b.type !== 'service') continue;
        const key = serviceRuntimeKey(b.service, b.targetPort);
        if (services.has(key)) continue;
        const target: DiscoveryTarget = { kind: 'service', key: serviceTargetKey(key), namespace: b.service.namespace, selector: b.service.selector, targetPort: b.targetPort };
        targets.push(target);
        const members = deps.discovery.members(target.key);
        const { scheduler } = buildScheduler(SERVICE_POLICY, deps.plugins, deps.handle);
        services.set(key, { kind: 'service', config: b.service, members, scheduler, controls: requestControls(scheduler), candidates: () => members.endpoints });
      }
    }
  }
  const runtime: Runtime = { snapshot, pools, services, targets, pluginCaches: caches };
  return {
    runtime,
    commit: () => {
      for (const change of gateChanges) change();
      for (const [key, gate] of deps.gates) {
        if (pools.has(key)) continue;
        gate.close(new GatewayError('no_ready_endpoint', `InferencePool ${key} was removed from the configuration`));
        deps.gates.delete(key);
      }
      deps.discovery.setTargets(targets);
    },
  };
}

/** A runtime could not be built from a snapshot; `subject` names the resource at fault. */
export class RuntimeBuildError extends Error {
  constructor(
    readonly subject: string,
    cause: unknown,
  ) {
    super(`${subject}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'RuntimeBuildError';
  }
}
