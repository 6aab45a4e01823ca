import { MAX_SCORE_PICKER } from './plugins/max-score-picker.js';
import { SINGLE_PROFILE_HANDLER } from './plugins/single-profile-handler.js';
import { SchedulerProfile } from './profile.js';
import { PluginConfigError, type PluginRegistry } from './registry.js';
import { Scheduler } from './scheduler.js';
import type { Filter, Picker, Plugin, PluginHandle, ProfileHandler, Scorer, WeightedScorer } from './types.js';

/** One plugin instance: a name the profiles refer to, its type and its parameters. */
export interface PluginSpec {
  readonly name: string;
  readonly type: string;
  readonly parameters?: Readonly<Record<string, unknown>>;
}

/** A reference from a profile to a plugin instance; `weight` applies to scorers (default 1). */
export interface PluginRef {
  readonly pluginRef: string;
  readonly weight?: number;
}

export interface ProfileSpec {
  readonly name: string;
  readonly plugins: readonly PluginRef[];
}

/**
 * A pool's scheduling configuration as data, in the shape of upstream's EndpointPickerConfig:
 * named plugin instances, profiles that refer to them (filters in order, scorers with weights, at
 * most one picker), and the profile handler. Policies (`DEFAULT`, `PREFIX_CACHE`, PD) are built
 * as values of this type from annotations and InferenceTrafficPolicy (policies.ts).
 */
export interface SchedulerConfig {
  readonly plugins: readonly PluginSpec[];
  readonly profiles: readonly ProfileSpec[];
  /** Name of the profile-handler instance; default `single-profile-handler`. */
  readonly profileHandler?: string;
}

/** Default weight of a scorer referenced without one (upstream's `DefaultScorerWeight`). */
export const DEFAULT_SCORER_WEIGHT = 1;

/**
 * Plugin instances built for earlier snapshots, reused when the same pool asks for the same
 * instance again (same name, type and parameters), so a reload that does not change a policy
 * keeps its plugins' state (a round-robin position, say).
 */
export type PluginCache = ReadonlyMap<string, Plugin>;

function signature(spec: PluginSpec): string {
  return JSON.stringify([spec.name, spec.type, spec.parameters ?? {}]);
}

const isFilter = (p: Plugin): p is Filter => typeof (p as Partial<Filter>).filter === 'function';
const isScorer = (p: Plugin): p is Scorer => typeof (p as Partial<Scorer>).score === 'function';
const isPicker = (p: Plugin): p is Picker => typeof (p as Partial<Picker>).pick === 'function' && !isHandler(p);
const isHandler = (p: Plugin): p is ProfileHandler => typeof (p as Partial<ProfileHandler>).processResults === 'function';

/**
 * Instantiates a SchedulerConfig. Everything is validated here, once per configuration: unknown
 * plugin types, invalid parameters (each factory's schema), dangling `pluginRef`s, a plugin that
 * is not a filter, scorer or picker in a profile, two pickers, a handler that is not one. Throws
 * PluginConfigError naming the plugin or profile and the field; builds nothing partially visible.
 */
export function buildScheduler(config: SchedulerConfig, registry: PluginRegistry, handle: PluginHandle, previous: PluginCache = new Map()): { scheduler: Scheduler; cache: PluginCache } {
  const instances = new Map<string, Plugin>();
  const cache = new Map<string, Plugin>();
  const specs = [...config.plugins];
  if (config.profileHandler === undefined && !specs.some((s) => s.name === SINGLE_PROFILE_HANDLER)) specs.push({ name: SINGLE_PROFILE_HANDLER, type: SINGLE_PROFILE_HANDLER });
  if (!specs.some((s) => s.type === MAX_SCORE_PICKER && s.name === MAX_SCORE_PICKER)) specs.push({ name: MAX_SCORE_PICKER, type: MAX_SCORE_PICKER });
  for (const spec of specs) {
    if (instances.has(spec.name)) throw new PluginConfigError(spec.name, 'name', 'two plugins have this name');
    const key = signature(spec);
    const plugin = previous.get(key) ?? registry.create(spec.type, handle, spec.name, spec.parameters ?? {});
    instances.set(spec.name, plugin);
    cache.set(key, plugin);
  }
  if (config.profiles.length === 0) throw new PluginConfigError('scheduler', 'profiles', 'at least one scheduling profile is required');

  const profiles = config.profiles.map((profile) => {
    const filters: Filter[] = [];
    const scorers: WeightedScorer[] = [];
    let picker: Picker | undefined;
    profile.plugins.forEach((ref, i) => {
      const where = `profile ${profile.name}`;
      const plugin = instances.get(ref.pluginRef);
      if (plugin === undefined) throw new PluginConfigError(where, `plugins[${i}].pluginRef`, `no plugin named "${ref.pluginRef}"`);
      if (isFilter(plugin)) filters.push(plugin);
      else if (isScorer(plugin)) {
        const weight = ref.weight ?? DEFAULT_SCORER_WEIGHT;
        if (!(weight >= 0) || !Number.isFinite(weight)) throw new PluginConfigError(where, `plugins[${i}].weight`, `must be a finite number ≥ 0 (got ${String(ref.weight)})`);
        if (weight > 0) scorers.push({ scorer: plugin, weight });
      } else if (isPicker(plugin)) {
        if (picker !== undefined) throw new PluginConfigError(where, `plugins[${i}].pluginRef`, `a profile has one picker; ${picker.typedName.name} is already set`);
        picker = plugin;
      } else throw new PluginConfigError(where, `plugins[${i}].pluginRef`, `${ref.pluginRef} (${plugin.typedName.type}) is not a filter, scorer or picker`);
    });
    return new SchedulerProfile(profile.name, filters, scorers, picker ?? (instances.get(MAX_SCORE_PICKER) as Picker));
  });
  const names = new Set<string>();
  for (const p of profiles) {
    if (names.has(p.name)) throw new PluginConfigError(`profile ${p.name}`, 'name', 'two profiles have this name');
    names.add(p.name);
  }

  const handlerName = config.profileHandler ?? SINGLE_PROFILE_HANDLER;
  const handler = instances.get(handlerName);
  if (handler === undefined) throw new PluginConfigError('scheduler', 'profileHandler', `no plugin named "${handlerName}"`);
  if (!isHandler(handler)) throw new PluginConfigError('scheduler', 'profileHandler', `${handlerName} (${handler.typedName.type}) is not a profile handler`);
  if (handler.typedName.type === SINGLE_PROFILE_HANDLER && profiles.length !== 1) {
    throw new PluginConfigError('scheduler', 'profileHandler', `single-profile-handler runs exactly one profile (got ${profiles.length})`);
  }
  return { scheduler: new Scheduler(handler, profiles), cache };
}
