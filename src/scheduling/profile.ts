import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import type { Random } from '../core/weighted.js';
import type { Filter, Picker, Plugin, ProfileResult, RunnableProfile, SchedulingRequest, WeightedScorer } from './types.js';

/**
 * One scheduling pass: filters in order, then weighted scorers, then the picker. The profile
 * enforces the scoring contract (clamp to [0, 1], multiply by weight, sum) so plugins stay pure,
 * and keeps each scorer's raw score of the winner for the log line.
 */
export class SchedulerProfile implements RunnableProfile {
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

  /** Describes the composition, e.g. `queue-scorer x2, kv-cache-utilization-scorer x2 -> max-score-picker`. */
  describe(): string {
    const parts = [...this.#filters.map((f) => f.typedName.type), ...this.#scorers.map((s) => `${s.scorer.typedName.type} x${s.weight}`)];
    return `${parts.length === 0 ? 'no scorers' : parts.join(', ')} -> ${this.#picker.typedName.type}`;
  }

  /** Every plugin instance of the profile (request-control hooks are found among them). */
  plugins(): Plugin[] {
    return [...this.#filters, ...this.#scorers.map((s) => s.scorer), this.#picker];
  }

  eligible(request: SchedulingRequest, candidates: readonly Endpoint[]): readonly Endpoint[] {
    let endpoints = candidates;
    for (const filter of this.#filters) endpoints = filter.filter(request, endpoints);
    return endpoints;
  }

  run(request: SchedulingRequest, candidates: readonly Endpoint[], random: Random): ProfileResult {
    let endpoints = candidates;
    for (const filter of this.#filters) {
      endpoints = filter.filter(request, endpoints);
      if (endpoints.length === 0) throw new GatewayError('no_ready_endpoint', `no endpoint left after filter ${filter.typedName.name}`);
    }
    if (endpoints.length === 0) throw new GatewayError('no_ready_endpoint', 'no ready endpoint in the pool');

    const n = endpoints.length;
    const total = new Float64Array(n);
    const raw = this.#scorers.map(() => new Float64Array(n));
    this.#scorers.forEach(({ scorer, weight }, k) => {
      const scratch = raw[k] as Float64Array;
      scorer.score(request, endpoints, scratch);
      for (let i = 0; i < n; i++) {
        const s = scratch[i] as number;
        const clamped = s < 0 || Number.isNaN(s) ? 0 : s > 1 ? 1 : s;
        scratch[i] = clamped;
        total[i] = (total[i] as number) + weight * clamped;
      }
    });
    const picked = this.#picker.pick(endpoints, total, random);
    const index = new Map(endpoints.map((e, i) => [e, i] as const));
    const first = index.get(picked[0] as Endpoint) ?? 0;
    const breakdown: Record<string, number> = {};
    this.#scorers.forEach(({ scorer }, k) => {
      breakdown[scorer.typedName.name] = Math.round((raw[k]?.[first] ?? 0) * 1000) / 1000;
    });
    return { endpoints: picked, scores: picked.map((e) => total[index.get(e) ?? 0] ?? 0), breakdown };
  }
}
