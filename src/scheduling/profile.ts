import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import type { Random } from '../core/weighted.js';
import type { Filter, Picker, ScheduleResult, SchedulingRequest, WeightedScorer } from './types.js';

/**
 * One scheduling pass: filters in order, then weighted scorers, then the picker. The profile
 * enforces the scoring contract (clamp to [0, 1], multiply by weight, sum) so plugins stay pure.
 */
export class SchedulerProfile {
  readonly name: string;
  readonly #filters: readonly Filter[];
  readonly #scorers: readonly WeightedScorer[];
  readonly #picker: Picker;

  constructor(name: string, filters: readonly Filter[], scorers: readonly WeightedScorer[], picker: Picker) {
    this.name = name;
    this.#filters = filters;
    this.#scorers = scorers;
    this.#picker = picker;
  }

  /** Describes the composition, e.g. `least-inflight x1 -> max-score-picker`. */
  describe(): string {
    const parts = [
      ...this.#filters.map((f) => f.typedName.type),
      ...this.#scorers.map((s) => `${s.scorer.typedName.type} x${s.weight}`),
    ];
    return `${parts.join(', ')} -> ${this.#picker.typedName.type}`;
  }

  schedule(request: SchedulingRequest, candidates: readonly Endpoint[], random: Random): ScheduleResult {
    let endpoints = candidates;
    for (const filter of this.#filters) {
      endpoints = filter.filter(request, endpoints);
      if (endpoints.length === 0) {
        throw new GatewayError('no_ready_endpoint', `no endpoint left after filter ${filter.typedName.name}`);
      }
    }
    if (endpoints.length === 0) throw new GatewayError('no_ready_endpoint', 'no ready endpoint in the pool');

    const total = new Float64Array(endpoints.length);
    const scratch = new Float64Array(endpoints.length);
    for (const { scorer, weight } of this.#scorers) {
      scratch.fill(0);
      scorer.score(request, endpoints, scratch);
      for (let i = 0; i < endpoints.length; i++) {
        const s = scratch[i] ?? 0;
        total[i] = (total[i] ?? 0) + weight * (s < 0 ? 0 : s > 1 ? 1 : Number.isNaN(s) ? 0 : s);
      }
    }
    const picked = this.#picker.pick(endpoints, total, random);
    const index = new Map(endpoints.map((e, i) => [e, i] as const));
    return { endpoints: picked, scores: picked.map((e) => total[index.get(e) ?? 0] ?? 0) };
  }
}
