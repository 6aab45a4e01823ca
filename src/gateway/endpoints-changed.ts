import type { Pod } from '../api/types.js';
import type { PoolRuntime } from './runtime.js';

/** Names listed in one "endpoints changed" line at most; the counts say how many there were. */
export const MAX_LOGGED = 10;

/** The fields of an "endpoints changed" log line. */
export interface EndpointsChangedFields {
  /** `namespace/name` of the pods added, changed or removed (at most MAX_LOGGED). */
  readonly pods: readonly string[];
  readonly podCount: number;
  /** The pools whose endpoints changed, with their endpoint count now (at most MAX_LOGGED). */
  readonly pools: ReadonlyArray<{ readonly pool: string; readonly endpoints: number }>;
  readonly poolCount: number;
  /** Service backends whose endpoints changed. */
  readonly services: number;
}

/**
 * What a pod-only batch changed, for the log: bounded whatever the batch size (a re-list can
 * carry thousands of pods), so a line costs O(MAX_LOGGED), never O(the cluster).
 */
export function endpointsChangedFields(upserts: readonly Pod[], deletes: readonly string[], pools: readonly PoolRuntime[], services: number): EndpointsChangedFields {
  const pods: string[] = [];
  for (const p of upserts) {
    if (pods.length >= MAX_LOGGED) break;
    pods.push(`${p.metadata.namespace}/${p.metadata.name}`);
  }
  for (const key of deletes) {
    if (pods.length >= MAX_LOGGED) break;
    pods.push(key);
  }
  return {
    pods,
    podCount: upserts.length + deletes.length,
    pools: pools.slice(0, MAX_LOGGED).map((p) => ({ pool: p.config.key, endpoints: p.members.endpoints.length })),
    poolCount: pools.length,
    services,
  };
}
