import type { PoolConfig, ServiceConfig, Snapshot } from '../config/snapshot.js';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import { poolEndpoints, serviceEndpoints } from '../endpoints/discovery.js';
import type { EndpointRegistry } from '../endpoints/registry.js';
import { AdmissionGate, DEFAULT_ADMISSION, type AdmissionOptions } from '../flowcontrol/admission.js';
import { DEFAULT_SATURATION } from '../flowcontrol/saturation.js';
import { PREFIX_CACHE_SCORER } from '../scheduling/plugins/prefix-cache-scorer.js';
import { buildProfile, policyFor, POLICIES, type PolicyName } from '../scheduling/policies.js';
import type { SchedulerProfile } from '../scheduling/profile.js';
import type { PluginRegistry } from '../scheduling/registry.js';
import type { PluginHandle } from '../scheduling/types.js';

/** A pool ready to schedule on: its live endpoints, the profile its policy compiles to, its gate. */
export interface PoolRuntime {
  readonly config: PoolConfig;
  /** Every discovered endpoint, healthy or not; `candidates()` is what scheduling sees. */
  readonly endpoints: readonly Endpoint[];
  readonly policy: PolicyName;
  readonly profile: SchedulerProfile;
  /** True when the policy scores prefix affinity, so prompts are hashed and answers recorded. */
  readonly usesPrefix: boolean;
  readonly gate: AdmissionGate;
  /** Healthy endpoints; all of them when none is (a scrape outage must not refuse every request). */
  candidates(): readonly Endpoint[];
}

export interface ServiceRuntime {
  readonly config: ServiceConfig;
  readonly endpoints: readonly Endpoint[];
  readonly profile: SchedulerProfile;
}

/**
 * Everything a request needs, derived once per snapshot: a request captures one Runtime at its
 * start and uses it to the end, even if a reload swaps in another.
 */
export interface Runtime {
  readonly snapshot: Snapshot;
  readonly pools: ReadonlyMap<string, PoolRuntime>;
  /** Keyed by `namespace/name|targetPort`. */
  readonly services: ReadonlyMap<string, ServiceRuntime>;
}

export function serviceRuntimeKey(service: ServiceConfig, targetPort: number | string): string {
  return `${service.key}|${targetPort}`;
}

/** What outlives snapshots: endpoints (with counters and metrics) and the pools' queues. */
export interface RuntimeDeps {
  readonly endpoints: EndpointRegistry;
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

function healthyOrAll(endpoints: readonly Endpoint[]): readonly Endpoint[] {
  const healthy = endpoints.filter((e) => e.healthy);
  return healthy.length > 0 ? healthy : endpoints;
}

/**
 * Resolves a snapshot against the live registries. Endpoints that disappear from every pool are
 * dropped from the registry; ones that stay keep their counters and metrics. Gates of pools that
 * left the configuration refuse their waiters.
 */
export function buildRuntime(snapshot: Snapshot, deps: RuntimeDeps): Runtime {
  const used = new Set<string>();
  const pools = new Map<string, PoolRuntime>();
  for (const pool of snapshot.pools.values()) {
    const eps = poolEndpoints(snapshot.pods, pool.namespace, pool.selector, pool.targetPorts, {
      runtime: pool.runtime,
      runtimeConfigured: pool.runtimeConfigured,
      ...(pool.trafficPolicy?.profile?.pd?.pdRoleLabelName === undefined ? {} : { roleLabel: pool.trafficPolicy.profile.pd.pdRoleLabelName }),
    }).map((i) => deps.endpoints.acquire(i));
    for (const e of eps) used.add(e.key);
    const { name, spec } = policyFor(pool.routingStrategy, pool.routing);
    const profile = buildProfile(name, spec, deps.plugins, deps.handle);
    const options = admissionOptions(pool, deps);
    const candidates = (): readonly Endpoint[] => healthyOrAll(eps);
    let gate = deps.gates.get(pool.key);
    if (gate === undefined) {
      gate = new AdmissionGate(candidates, options, deps.handle.now);
      deps.gates.set(pool.key, gate);
    } else {
      gate.reconfigure(candidates, options);
    }
    pools.set(pool.key, { config: pool, endpoints: eps, policy: name, profile, usesPrefix: profile.uses(PREFIX_CACHE_SCORER), gate, candidates });
  }
  for (const [key, gate] of deps.gates) {
    if (pools.has(key)) continue;
    gate.close(new GatewayError('no_ready_endpoint', `InferencePool ${key} was removed from the configuration`));
    deps.gates.delete(key);
  }
  const services = new Map<string, ServiceRuntime>();
  for (const listener of snapshot.listeners.values()) {
    for (const rule of listener.routes.rules()) {
      for (const b of rule.backends.items) {
        if (b.type !== 'service') continue;
        const key = serviceRuntimeKey(b.service, b.targetPort);
        if (services.has(key)) continue;
        const eps = serviceEndpoints(snapshot.pods, b.service.namespace, b.service.selector, b.targetPort).map((i) => deps.endpoints.acquire(i));
        for (const e of eps) used.add(e.key);
        // A Service is plain balancing: fewest in flight, ties at random.
        services.set(key, { config: b.service, endpoints: eps, profile: buildProfile('service', { ...POLICIES.RANDOM, scorers: [{ type: 'inflight-scorer', name: 'inflight', weight: 1 }] }, deps.plugins, deps.handle) });
      }
    }
  }
  deps.endpoints.retainOnly(used);
  return { snapshot, pools, services };
}
