import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import type { Random } from '../../core/weighted.js';
import { MAX_ATTEMPTS, type Picker, type TypedName } from '../types.js';

export const MAX_SCORE_PICKER = 'max-score-picker';

const Parameters = z
  .object({
    /** Endpoints returned: the pick plus fallbacks for retries. Default MAX_ATTEMPTS (2). */
    maxNumOfEndpoints: z.number().int().min(1).max(64).default(MAX_ATTEMPTS),
  })
  .strict();

/**
 * Highest total score wins; ties break at random (shuffle, then a stable sort), so equal endpoints
 * share load instead of the first one taking everything. Returns up to `maxNumOfEndpoints`, best
 * first, the rest serving as fallbacks when the pick refuses the connection.
 */
export class MaxScorePicker implements Picker {
  readonly typedName: TypedName;
  readonly #max: number;

  constructor(name: string, maxNumOfEndpoints: number) {
    this.typedName = { type: MAX_SCORE_PICKER, name };
    this.#max = maxNumOfEndpoints;
  }

  pick(endpoints: readonly Endpoint[], scores: Float64Array, random: Random): Endpoint[] {
    const order = endpoints.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      const t = order[i] as number;
      order[i] = order[j] as number;
      order[j] = t;
    }
    order.sort((a, b) => (scores[b] ?? 0) - (scores[a] ?? 0));
    return order.slice(0, this.#max).map((i) => endpoints[i] as Endpoint);
  }
}

export function createMaxScorePicker(name: string, parameters: Readonly<Record<string, unknown>>): MaxScorePicker {
  const p = Parameters.parse(parameters);
  return new MaxScorePicker(name, p.maxNumOfEndpoints);
}
