import { z } from 'zod';
import type { ProfileHandler, ProfileResult, RunnableProfile, TypedName } from '../types.js';

export const SINGLE_PROFILE_HANDLER = 'single-profile-handler';

/**
 * The default handler (upstream's `single-profile-handler`): a pool with one scheduling profile
 * runs it once per request, and its result is the primary one.
 */
export class SingleProfileHandler implements ProfileHandler {
  readonly typedName: TypedName;

  constructor(name: string) {
    this.typedName = { type: SINGLE_PROFILE_HANDLER, name };
  }

  pick(_request: unknown, profiles: ReadonlyMap<string, RunnableProfile>, results: ReadonlyMap<string, ProfileResult>): readonly RunnableProfile[] {
    if (results.size > 0) return [];
    const only = profiles.values().next();
    return only.done === true ? [] : [only.value];
  }

  processResults(_request: unknown, results: ReadonlyMap<string, ProfileResult>): string {
    const first = results.keys().next();
    if (first.done === true) throw new Error('single-profile-handler: no profile ran');
    return first.value;
  }
}

export function createSingleProfileHandler(name: string, parameters: Readonly<Record<string, unknown>>): SingleProfileHandler {
  z.object({}).strict().parse(parameters);
  return new SingleProfileHandler(name);
}
