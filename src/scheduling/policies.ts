import type { RoutingStrategy } from '../api/types.js';
import { SchedulerProfile } from './profile.js';
import { createRegistry, type PluginRegistry } from './registry.js';
import { createInflightScorer, INFLIGHT_SCORER } from './plugins/inflight-scorer.js';
import { createMaxScorePicker, MAX_SCORE_PICKER } from './plugins/max-score-picker.js';
import type { Filter, Picker, Scorer, WeightedScorer } from './types.js';

/** A registry holding every built-in plugin. */
export function builtinRegistry(): PluginRegistry {
  const registry = createRegistry();
  registry.register(INFLIGHT_SCORER, createInflightScorer);
  registry.register(MAX_SCORE_PICKER, createMaxScorePicker);
  return registry;
}

/** A policy is data: plugin types with weights, instantiated through a registry. */
export interface PolicySpec {
  readonly filters: readonly string[];
  readonly scorers: ReadonlyArray<{ readonly type: string; readonly weight: number }>;
  readonly picker: { readonly type: string; readonly parameters?: Readonly<Record<string, unknown>> };
}

/**
 * The policies behind the `routing-strategy` annotation. Until live metrics land (issue 4) both
 * strategies balance on the gateway's own in-flight count with a random tie-break; the strategy
 * is recorded so the pool keeps its name for when the metric and prefix scorers join.
 */
export const POLICIES: Readonly<Record<RoutingStrategy, PolicySpec>> = {
  DEFAULT: {
    filters: [],
    scorers: [{ type: INFLIGHT_SCORER, weight: 1 }],
    picker: { type: MAX_SCORE_PICKER },
  },
  PREFIX_CACHE: {
    filters: [],
    scorers: [{ type: INFLIGHT_SCORER, weight: 1 }],
    picker: { type: MAX_SCORE_PICKER },
  },
};

export function buildProfile(name: string, spec: PolicySpec, registry: PluginRegistry): SchedulerProfile {
  const filters = spec.filters.map((type) => registry.create(type) as Filter);
  const scorers: WeightedScorer[] = spec.scorers.map((s) => ({ scorer: registry.create(s.type) as Scorer, weight: s.weight }));
  const picker = registry.create(spec.picker.type, spec.picker.type, spec.picker.parameters ?? {}) as Picker;
  return new SchedulerProfile(name, filters, scorers, picker);
}
