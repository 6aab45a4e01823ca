import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import type { Scorer, SchedulingRequest, TypedName } from '../types.js';

export const PREFILL_LOAD_SCORER = 'prefill-load-scorer';

const Parameters = z
  .object({
    /**
     * Pending prompt tokens that halve the score. Default 2048: about one scheduler step's prefill
     * budget (vLLM `max_num_batched_tokens` 2048), so a pending prefill that fits in one step costs
     * little and one that needs several costs a lot.
     */
    halfScoreTokens: z.number().positive().default(2048),
  })
  .strict();

/**
 * Prefers endpoints with less prompt work still pending from this gateway: the estimated prompt
 * tokens of requests dispatched there that have not produced their first byte yet (minus what the
 * prefix index expects cached). Concurrent prefills on one engine share its step budget, so they
 * delay each other's first token; round-robin avoids that by accident (it spaces arrivals per
 * engine evenly), an in-flight count does not (it also counts long decodes). Exact and immediate:
 * the gateway sees every dispatch and every first byte.
 *
 * Score `1 / (1 + pending / halfScoreTokens)`, absolute rather than min-max over the candidates:
 * 40 pending question tokens on a pod that caches the prompt must not count as much as 4,000
 * pending prompt tokens elsewhere (min-max made them equal and broke prefix affinity).
 */
export class PrefillLoadScorer implements Scorer {
  readonly typedName: TypedName;
  readonly category = 'distribution' as const;
  readonly #half: number;

  constructor(name: string, halfScoreTokens = 2048) {
    this.typedName = { type: PREFILL_LOAD_SCORER, name };
    this.#half = halfScoreTokens;
  }

  score(_request: SchedulingRequest, endpoints: readonly Endpoint[], out: Float64Array): void {
    endpoints.forEach((e, i) => {
      out[i] = 1 / (1 + Math.max(0, e.pendingPrefillTokens) / this.#half);
    });
  }
}

export function createPrefillLoadScorer(name: string, parameters: Readonly<Record<string, unknown>>): PrefillLoadScorer {
  return new PrefillLoadScorer(name, Parameters.parse(parameters).halfScoreTokens);
}
