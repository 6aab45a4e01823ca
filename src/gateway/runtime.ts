import type { PoolConfig, ServiceConfig, Snapshot } from '../config/snapshot.js';
import type { Endpoint } from '../core/endpoint.js';
import { poolEndpoints, serviceEndpoints } from '../endpoints/discovery.js';
import type { EndpointRegistry } from '../endpoints/registry.js';
import { buildProfile, POLICIES } from '../scheduling/policies.js';
import type { SchedulerProfile } from '../scheduling/profile.js';
import type { PluginRegistry } from '../scheduling/registry.js';

/** A pool ready to schedule on: its live endpoints and the profile its policy compiles to. */
export interface PoolRuntime {
  readonly config: PoolConfig;
  readonly endpoints: readonly Endpoint[];
  readonly profile: SchedulerProfile;
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

/**
 * Resolves a snapshot against the live endpoint registry. Endpoints that disappear from every pool
 * are dropped from the registry; ones that stay keep their in-flight counts.
 */
export function buildRuntime(snapshot: Snapshot, endpoints: EndpointRegistry, plugins: PluginRegistry): Runtime {
  const used = new Set<string>();
  const pools = new Map<string, PoolRuntime>();
  for (const pool of snapshot.pools.values()) {
    const eps = poolEndpoints(snapshot.pods, pool.namespace, pool.selector, pool.targetPorts).map((i) => endpoints.acquire(i));
    for (const e of eps) used.add(e.key);
    pools.set(pool.key, { config: pool, endpoints: eps, profile: buildProfile(pool.routingStrategy, POLICIES[pool.routingStrategy], plugins) });
  }
  const services = new Map<string, ServiceRuntime>();
  for (const listener of snapshot.listeners.values()) {
    for (const rule of listener.routes.rules()) {
      for (const b of rule.backends.items) {
        if (b.type !== 'service') continue;
        const key = serviceRuntimeKey(b.service, b.targetPort);
        if (services.has(key)) continue;
        const eps = serviceEndpoints(snapshot.pods, b.service.namespace, b.service.selector, b.targetPort).map((i) => endpoints.acquire(i));
        for (const e of eps) used.add(e.key);
        services.set(key, { config: b.service, endpoints: eps, profile: buildProfile('service', POLICIES.DEFAULT, plugins) });
      }
    }
  }
  endpoints.retainOnly(used);
  return { snapshot, pools, services };
}
