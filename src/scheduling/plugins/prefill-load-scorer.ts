import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import type { Scorer, SchedulingRequest, TypedName } from '../types.js';
import { scoreLowerIsBetter } from './lower-is-better.js';

export const PREFILL_LOAD_SCORER = 'prefill-load-scorer';

/**
 * Prefers endpoints with less prompt work still pending from this gateway: the estimated prompt
 * tokens of requests dispatched there that have not produced their first byte yet (minus what the
 * prefix index expects cached). Concurrent prefills on one engine share its step budget, so they
 * delay each other's first token; round-robin avoids that by accident (it spaces arrivals per
 * engine evenly), an in-flight count does not (it also counts long decodes). Exact and immediate:
 * the gateway sees every dispatch and every first byte. Min-max over the candidates.
 */
export class PrefillLoadScorer implements Scorer {
  readonly typedName: TypedName;
  readonly category = 'distribution' as const;

  constructor(name: string) {
    this.typedName = { type: PREFILL_LOAD_SCORER, name };
  }

  score(_request: SchedulingRequest, endpoints: readonly Endpoint[], out: Float64Array): void {
    scoreLowerIsBetter(endpoints.map((e) => e.pendingPrefillTokens), out);
  }
}

export function createPrefillLoadScorer(name: string, parameters: Readonly<Record<string, unknown>>): PrefillLoadScorer {
  z.object({}).strict().parse(parameters);
  return new PrefillLoadScorer(name);
}
