import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import type { PluginHandle, Scorer, SchedulingRequest, TypedName } from '../types.js';
import { scoreLowerIsBetter } from './lower-is-better.js';

export const QUEUE_SCORER = 'queue-scorer';

/**
 * Prefers endpoints with shorter server queues: min-max over the candidates of the scraped
 * `waiting` count plus what this gateway sent since that scrape (so a burst does not all land on
 * the endpoint that looked idle one scrape ago). An endpoint whose metrics are stale is scored as
 * the worst candidate: it may be overloaded, and nothing says otherwise.
 */
export class QueueScorer implements Scorer {
  readonly typedName: TypedName;
  readonly category = 'distribution' as const;
  readonly #handle: PluginHandle;

  constructor(name: string, handle: PluginHandle) {
    this.typedName = { type: QUEUE_SCORER, name };
    this.#handle = handle;
  }

  score(_request: SchedulingRequest, endpoints: readonly Endpoint[], out: Float64Array): void {
    const now = this.#handle.now();
    const values = endpoints.map((e) => (e.metrics !== undefined && e.metricsAgeMs(now) > this.#handle.stalenessMs ? Infinity : e.estimatedWaiting()));
    let worst = 0;
    for (const v of values) if (Number.isFinite(v) && v > worst) worst = v;
    for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i] as number)) values[i] = worst + 1;
    scoreLowerIsBetter(values, out);
  }
}

export function createQueueScorer(name: string, parameters: Readonly<Record<string, unknown>>, handle: PluginHandle): QueueScorer {
  z.object({}).strict().parse(parameters);
  return new QueueScorer(name, handle);
}
