import type { Endpoint } from '../core/endpoint.js';

export interface SaturationThresholds {
  /** Server queue depth at which an endpoint has no headroom. Default 5 (upstream's). */
  readonly queueDepth: number;
  /** KV-cache utilisation at which an endpoint has no headroom for Sheddable traffic. Default 0.8 (upstream's). */
  readonly kvCacheUtilization: number;
  /** Metrics older than this count as no headroom. */
  readonly stalenessMs: number;
}

export const DEFAULT_SATURATION: Omit<SaturationThresholds, 'stalenessMs'> = { queueDepth: 5, kvCacheUtilization: 0.8 };

/**
 * What "saturated" is asked for:
 * - `queue`: should the gateway hold Critical and Standard requests? Only when every endpoint is
 *   already queueing (estimated waiting at or over `queueDepth`): those requests would wait in a
 *   server queue anyway, and waiting at the gateway lets Critical go first and lets each request
 *   be placed when capacity frees. High KV utilisation alone is not a reason: vLLM runs with its
 *   KV cache mostly full by design and still admits requests; holding them then only lowers
 *   throughput (measured: 2 s of gateway queueing per request at 0.8 KV, bench shared-prefix).
 * - `shed`: may Sheddable requests be refused? When no endpoint has headroom on either signal
 *   (queue or KV), upstream's rule (Gateway API Inference Extension, pkg/epp saturation detector and flow control).
 */
export type SaturationMode = 'queue' | 'shed';

/**
 * True when no endpoint has headroom in the given sense. Stale metrics count as no headroom.
 * An endpoint without usable metrics (a page lacking the runtime's gauges: vLLM's
 * `--disable-log-stats`, a NaN gauge, SGLang without `--enable-metrics`) is judged by the
 * gateway's own view, as scoring judges it: it has headroom while fewer than `queueDepth`
 * requests from this gateway are in flight there. A pool where no endpoint has metrics is never
 * saturated (nothing to judge by, so traffic goes to the servers' own queues).
 *
 * Upstream's default detector averages `max(waiting/Q, kv/K)` over endpoints, which calls a pool
 * saturated while one endpoint sits idle next to busy ones; here one endpoint with headroom is
 * enough.
 */
export function isSaturated(endpoints: readonly Endpoint[], t: SaturationThresholds, now: number, mode: SaturationMode = 'shed'): boolean {
  let measured = 0;
  let unknownWithHeadroom = false;
  for (const e of endpoints) {
    if (!e.ready(now)) continue;
    if (e.metrics === undefined) {
      if (e.inFlight < t.queueDepth) unknownWithHeadroom = true;
      continue;
    }
    measured++;
    if (e.metricsAgeMs(now) > t.stalenessMs) continue;
    if (e.estimatedWaiting() < t.queueDepth && (mode === 'queue' || e.estimatedKvUsage() < t.kvCacheUtilization)) return false;
  }
  return measured > 0 && !unknownWithHeadroom;
}
