/**
 * Bounds on what the API server may send, so a hostile or broken object is a problem, not memory.
 * Every field is in bytes or objects; tests pass smaller ones.
 */
export interface KubernetesLimits {
  /**
   * Largest object accepted, as JSON (default 1 MiB). etcd refuses requests over 1.5 MiB
   * (etcd --max-request-bytes default), so nothing a cluster stores legitimately is larger, and
   * the resources read here are a few KiB.
   */
  readonly maxObjectBytes: number;
  /** Most objects of one kind in one view (default 20,000: a large cluster's pods in the namespaces watched). */
  readonly maxObjectsPerKind: number;
  /** Objects per list page (`limit`, default 500, client-go's pager default). */
  readonly listPageSize: number;
  /** Largest list page body (default 64 MiB). */
  readonly maxPageBytes: number;
}

export const DEFAULT_LIMITS: KubernetesLimits = {
  maxObjectBytes: 1024 * 1024,
  maxObjectsPerKind: 20_000,
  listPageSize: 500,
  maxPageBytes: 64 * 1024 * 1024,
};

/** A watch line holds one object plus the event envelope. */
export function maxWatchLineBytes(limits: KubernetesLimits): number {
  return limits.maxObjectBytes + 4096;
}
