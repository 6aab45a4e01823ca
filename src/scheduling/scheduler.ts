import type { Endpoint } from '../core/endpoint.js';
import type { Random } from '../core/weighted.js';
import type { SchedulerProfile } from './profile.js';
import { isDataProducer, type DataProducer, type Plugin, type ProfileHandler, type ProfileResult, type SchedulingRequest, type SchedulingResult } from './types.js';

/**
 * Runs a pool's scheduling profiles for one request, as its profile handler directs, and returns
 * every profile's result plus the primary one (upstream's scheduler shape):
 *
 * ```
 * loop:  handler.pick(request, profiles, results so far) → profiles to run (none: stop)
 *        each profile: filters → weighted scorers → picker     (results[profile] = ProfileResult)
 * done:  handler.processResults(request, results) → primary profile name
 * ```
 *
 * A profile that finds no endpoint throws its GatewayError (503 `no_ready_endpoint`), which ends
 * the cycle. The handler bounds the rounds; the scheduler stops after `MAX_ROUNDS` in any case so
 * a handler bug cannot loop forever.
 */
export class Scheduler {
  readonly #handler: ProfileHandler;
  readonly #profiles: ReadonlyMap<string, SchedulerProfile>;
  readonly #producers: readonly DataProducer[];

  constructor(handler: ProfileHandler, profiles: readonly SchedulerProfile[]) {
    this.#handler = handler;
    this.#profiles = new Map(profiles.map((p) => [p.name, p]));
    this.#producers = this.plugins().filter(isDataProducer);
  }

  /**
   * Runs the plugins' data producers for `request` (types.ts `DataProducer`); undefined when none
   * has asynchronous work, so a pool without them adds no promise to the request's path.
   */
  prepare(request: SchedulingRequest): Promise<void> | undefined {
    let pending: Promise<void>[] | undefined;
    for (const p of this.#producers) {
      const work = p.prepareRequestData(request);
      if (work !== undefined) (pending ??= []).push(work);
    }
    if (pending === undefined) return undefined;
    return pending.length === 1 ? pending[0] : Promise.all(pending).then(() => undefined);
  }

  get handler(): ProfileHandler {
    return this.#handler;
  }

  get profiles(): ReadonlyMap<string, SchedulerProfile> {
    return this.#profiles;
  }

  /** Every plugin instance (handler and profiles' plugins), each once. */
  plugins(): Plugin[] {
    const all = new Set<Plugin>([this.#handler]);
    for (const p of this.#profiles.values()) for (const plugin of p.plugins()) all.add(plugin);
    return [...all];
  }

  /** `profile: composition` per profile, for logs and /debug/endpoints. */
  describe(): string {
    const parts = [...this.#profiles.values()].map((p) => (this.#profiles.size === 1 ? p.describe() : `${p.name}: ${p.describe()}`));
    return parts.join('; ');
  }

  schedule(request: SchedulingRequest, candidates: readonly Endpoint[], random: Random): SchedulingResult {
    const results = new Map<string, ProfileResult>();
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const next = this.#handler.pick(request, this.#profiles, results, candidates);
      if (next.length === 0) break;
      for (const profile of next) results.set(profile.name, profile.run(request, candidates, random));
    }
    const primaryProfile = this.#handler.processResults(request, results);
    const primary = results.get(primaryProfile);
    if (primary === undefined) throw new Error(`profile handler ${this.#handler.typedName.name} named primary profile "${primaryProfile}", which did not run`);
    return { profiles: results, primaryProfile, primary };
  }
}

/** Rounds of profile runs per request at most (upstream's handlers use one or two). */
const MAX_ROUNDS = 8;
