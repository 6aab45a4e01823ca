import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import type { PluginHandle, Scorer, SchedulingRequest, TypedName } from '../types.js';

export const KV_CACHE_SCORER = 'kv-cache-utilization-scorer';

/**
 * Prefers endpoints with free KV cache: `1 − utilisation`, where utilisation is the scraped value
 * plus the prompt tokens sent since that scrape over the server's KV capacity (when it reports
 * it). Stale metrics count as full (0). Endpoints without metrics get the mean score of those
 * with fresh metrics (1 when none has): nothing is known about their KV, so this scorer must not
 * favour or penalise them; the queue and in-flight scorers judge them by the gateway's own count.
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
    let sum = 0;
    let known = 0;
    endpoints.forEach((e, i) => {
      if (e.metrics === undefined) return;
      const stale = e.metricsAgeMs(now) > this.#handle.stalenessMs;
      out[i] = stale ? 0 : 1 - e.estimatedKvUsage();
      if (stale) return;
      sum += out[i] as number;
      known++;
    });
    const neutral = known === 0 ? 1 : sum / known;
    endpoints.forEach((e, i) => {
      if (e.metrics === undefined) out[i] = neutral;
    });
  }
}

export function createKvCacheScorer(name: string, parameters: Readonly<Record<string, unknown>>, handle: PluginHandle): KvCacheScorer {
  z.object({}).strict().parse(parameters);
  return new KvCacheScorer(name, handle);
}
