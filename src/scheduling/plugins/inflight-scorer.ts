import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import type { Scorer, SchedulingRequest, TypedName } from '../types.js';
import { scoreLowerIsBetter } from './lower-is-better.js';

export const INFLIGHT_SCORER = 'inflight-scorer';

/**
 * Prefers endpoints with fewer requests this gateway has in flight on them:
 * `(max − n) / (max − min)` over the candidates, 1.0 for all when they are equal.
 * The count is the gateway's own, exact at dispatch time, so a burst spreads at once instead of
 * waiting for the next metrics scrape; among idle endpoints it spreads requests evenly.
 */
export class InflightScorer implements Scorer {
  readonly typedName: TypedName;
  readonly category = 'distribution' as const;

  constructor(name: string) {
    this.typedName = { type: INFLIGHT_SCORER, name };
  }

  score(_request: SchedulingRequest, endpoints: readonly Endpoint[], out: Float64Array): void {
    scoreLowerIsBetter(endpoints.map((e) => e.inFlight), out);
  }
}

export function createInflightScorer(name: string, parameters: Readonly<Record<string, unknown>>): InflightScorer {
  z.object({}).strict().parse(parameters);
  return new InflightScorer(name);
}
