import type { Endpoint } from '../core/endpoint.js';

export interface SaturationThresholds {
  /** Server queue depth at which an endpoint has no headroom. Default 5 (upstream's). */
  readonly queueDepth: number;
  /** KV-cache utilisation at which an endpoint has no headroom. Default 0.8 (upstream's). */
  readonly kvCacheUtilization: number;
  /** Metrics older than this count as no headroom. */
  readonly stalenessMs: number;
}

export const DEFAULT_SATURATION: Omit<SaturationThresholds, 'stalenessMs'> = { queueDepth: 5, kvCacheUtilization: 0.8 };

/**
 * True when no endpoint has headroom: every healthy endpoint with metrics is at or over the queue
 * or KV threshold (estimates include what this gateway sent since the scrape), or its metrics are
 * stale. Endpoints that never published metrics are unknown and do not count; a pool where none
 * has metrics is never saturated (nothing to judge by, so traffic goes to the servers' own queues).
 *
 * Upstream's default detector averages `max(waiting/Q, kv/K)` over endpoints, which calls a pool
 * saturated while one endpoint sits idle next to busy ones; we hold requests only when no
 * endpoint could take one without queueing.
 */
export function isSaturated(endpoints: readonly Endpoint[], t: SaturationThresholds, now: number): boolean {
  let judged = 0;
  for (const e of endpoints) {
    if (!e.healthy || e.metrics === undefined) continue;
    judged++;
    if (e.metricsAgeMs(now) > t.stalenessMs) continue;
    if (e.estimatedWaiting() < t.queueDepth && e.estimatedKvUsage() < t.kvCacheUtilization) return false;
  }
  return judged > 0;
}
