import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import type { PluginHandle, Scorer, SchedulingRequest, TypedName } from '../types.js';

export const KV_CACHE_SCORER = 'kv-cache-utilization-scorer';

/**
 * Prefers endpoints with free KV cache: `1 − utilisation`, where utilisation is the scraped value
 * plus the prompt tokens sent since that scrape over the server's KV capacity (when it reports
 * it). Stale metrics count as full (0). Endpoints without metrics score 1 (nothing is known, and
 * the in-flight and queue scorers still separate them).
 */
export class KvCacheScorer implements Scorer {
  readonly typedName: TypedName;
  readonly category = 'distribution' as const;
  readonly #handle: PluginHandle;

  constructor(name: string, handle: PluginHandle) {
    this.typedName = { type: KV_CACHE_SCORER, name };
    this.#handle = handle;
  }

  score(_request: SchedulingRequest, endpoints: readonly Endpoint[], out: Float64Array): void {
    const now = this.#handle.now();
    endpoints.forEach((e, i) => {
      out[i] = e.metrics === undefined ? 1 : e.metricsAgeMs(now) > this.#handle.stalenessMs ? 0 : 1 - e.estimatedKvUsage();
    });
  }
}

export function createKvCacheScorer(name: string, parameters: Readonly<Record<string, unknown>>, handle: PluginHandle): KvCacheScorer {
  z.object({}).strict().parse(parameters);
  return new KvCacheScorer(name, handle);
}
