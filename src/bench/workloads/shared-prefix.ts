import type { Random } from '../../core/weighted.js';
import type { SharedPrefixParams } from './params.js';
import { StaticWorkload } from './static.js';
import { keyedRandom, keyedText } from './text.js';
import type { RequestSpec } from './types.js';

/** A seeded Fisher–Yates permutation of 0..n−1. */
export function permutation(n: number, random: Random): number[] {
  const out = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = out[i] as number;
    out[i] = out[j] as number;
    out[j] = t;
  }
  return out;
}

/**
 * The generated-shared-prefix workload (inference-perf `shared_prefix`, SGLang
 * `generated-shared-prefix`): G groups × U users. Every request of group g carries the same
 * system prompt (S tokens) and its user's own question (Q tokens); the output is O tokens. One
 * pass is the G×U prompts, in a seeded random order unless `ordered`; later passes repeat it.
 * Prompts are cached per group so a 150 × 5 × 7,200-token suite is built once, not per request.
 */
export function sharedPrefixWorkload(params: SharedPrefixParams, seed: number, model: string): StaticWorkload {
  const size = params.groups * params.usersPerGroup;
  const order = params.ordered ? undefined : permutation(size, keyedRandom(seed, 'shared-prefix', 'order'));
  const systems = new Map<number, string>();
  const system = (g: number): string => {
    let text = systems.get(g);
    if (text === undefined) {
      text = keyedText(params.systemTokens, seed, 'shared-prefix', 'system', g);
      systems.set(g, text);
    }
    return text;
  };
  return new StaticWorkload('shared-prefix', size, (seq): RequestSpec => {
    const slot = seq % size;
    const index = order === undefined ? slot : (order[slot] as number);
    const group = Math.floor(index / params.usersPerGroup);
    const user = index % params.usersPerGroup;
    const question = keyedText(params.questionTokens, seed, 'shared-prefix', 'question', group, user);
    return {
      seq,
      model,
      maxTokens: params.outputTokens,
      group,
      user,
      messages: [
        { role: 'system', content: system(group) },
        { role: 'user', content: question },
      ],
    };
  });
}
