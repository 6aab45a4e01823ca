import type { Criticality } from '../api/types.js';
import type { Endpoint } from '../core/endpoint.js';
import type { Random } from '../core/weighted.js';
import type { PrefixIndex } from '../prefix/index.js';
import type { CycleState } from './cycle-state.js';

/** Every plugin names its type (kebab-case constant) and its instance name. */
export interface TypedName {
  readonly type: string;
  readonly name: string;
}

export interface Plugin {
  readonly typedName: TypedName;
}

/** What scheduling knows about a request. */
export interface SchedulingRequest {
  readonly requestId: string;
  /** The model the client asked for. */
  readonly model: string;
  /** The model the endpoint will be asked for (after the canary draw): base model or LoRA adapter. */
  readonly targetModel: string;
  readonly criticality: Criticality;
  /** Estimated prompt tokens (≈ characters / 4). */
  readonly promptTokens: number;
  /** Chained prefix block hashes of the prompt; empty when the pool's policy does not use them. */
  readonly prefixHashes: Uint32Array;
  readonly state: CycleState;
}

/** Shared services a plugin may use, handed to its factory. */
export interface PluginHandle {
  readonly prefixIndex: PrefixIndex;
  /** Metrics older than this are not trusted (stale endpoints count as saturated). */
  readonly stalenessMs: number;
  readonly now: () => number;
}

/** Drops endpoints unfit for the request. Returning an empty list ends the cycle with 503. */
export interface Filter extends Plugin {
  filter(request: SchedulingRequest, endpoints: readonly Endpoint[]): readonly Endpoint[];
}

/**
 * Scores candidates into `out[i]` for `endpoints[i]`, each in [0, 1] (the profile clamps anyway).
 * A scorer that cannot tell candidates apart gives them all the same score.
 */
export interface Scorer extends Plugin {
  /** Distribution scorers spread load; affinity scorers pull requests towards warm endpoints. */
  readonly category: 'distribution' | 'affinity';
  score(request: SchedulingRequest, endpoints: readonly Endpoint[], out: Float64Array): void;
}

/** Orders candidates by total score: the first is the pick, the rest are fallbacks, best first. */
export interface Picker extends Plugin {
  pick(endpoints: readonly Endpoint[], scores: Float64Array, random: Random): Endpoint[];
}

export interface WeightedScorer {
  readonly scorer: Scorer;
  readonly weight: number;
}

export interface ScheduleResult {
  /** Primary first, then fallbacks; never empty. */
  readonly endpoints: readonly Endpoint[];
  /** Total weighted score of each returned endpoint, aligned with `endpoints`. */
  readonly scores: readonly number[];
  /** The primary's score from each scorer (by instance name), before weighting. */
  readonly breakdown: Readonly<Record<string, number>>;
}
