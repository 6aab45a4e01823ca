import { MultiTurnWorkload } from './multi-turn.js';
import type { WorkloadParams } from './params.js';
import { loraWorkload, randomWorkload } from './random.js';
import { sharedPrefixWorkload } from './shared-prefix.js';
import type { Workload } from './types.js';

export * from './types.js';
export * from './params.js';
export { MultiTurnWorkload } from './multi-turn.js';
export { loraWorkload, randomWorkload, zipfWeights } from './random.js';
export { permutation, sharedPrefixWorkload } from './shared-prefix.js';
export { StaticWorkload } from './static.js';
export { CHARS_PER_TOKEN, deriveSeed, keyedRandom, keyedText, syntheticText } from './text.js';

/**
 * A fresh workload for resolved parameters. `model` is the base model name (lora uses its adapter
 * names instead). The same (params, seed, model) always yields the same request sequence.
 */
export function createWorkload(params: WorkloadParams, seed: number, model: string): Workload {
  switch (params.type) {
    case 'shared-prefix':
      return sharedPrefixWorkload(params, seed, model);
    case 'multi-turn':
      return new MultiTurnWorkload(params, seed, model);
    case 'random':
      return randomWorkload(params, seed, model);
    case 'lora':
      return loraWorkload(params, seed);
  }
}
