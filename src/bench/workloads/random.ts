import { WeightedTable } from '../../core/weighted.js';
import type { LoraParams, RandomParams } from './params.js';
import { StaticWorkload } from './static.js';
import { keyedRandom, keyedText } from './text.js';

/**
 * Independent prompts with nothing shared: request `seq` gets fresh text from (seed, seq), so the
 * chance that two prompts share even their first words is negligible (a 256-word list). Shows what
 * smart routing costs when there is nothing to gain. Never repeats: asking for more than `count`
 * requests generates new prompts.
 */
export function randomWorkload(params: RandomParams, seed: number, model: string): StaticWorkload {
  return new StaticWorkload('random', params.count, (seq) => ({
    seq,
    model,
    maxTokens: params.outputTokens,
    messages: [{ role: 'user', content: keyedText(params.inputTokens, seed, 'random', seq) }],
  }));
}

/** Zipf weights 1/(i+1)^skew for n items (skew 0 ⇒ uniform). */
export function zipfWeights(n: number, skew: number): number[] {
  return Array.from({ length: n }, (_, i) => 1 / Math.pow(i + 1, skew));
}

/**
 * Requests spread over LoRA adapters: `model` is the adapter, drawn with Zipf weights of exponent
 * `skew` (the first adapter is the most popular); prompts are independent, as in `random`, so the
 * adapter is the only affinity a router can use. Each draw uses its own keyed PRNG, so request
 * `seq` names the same adapter in every run.
 */
export function loraWorkload(params: LoraParams, seed: number): StaticWorkload {
  const table = new WeightedTable(zipfWeights(params.adapters.length, params.skew).map((weight, i) => ({ item: params.adapters[i] as string, weight })));
  return new StaticWorkload('lora', params.count, (seq) => ({
    seq,
    model: table.pick(keyedRandom(seed, 'lora', 'adapter', seq)) as string,
    maxTokens: params.outputTokens,
    messages: [{ role: 'user', content: keyedText(params.inputTokens, seed, 'lora', 'prompt', seq) }],
  }));
}
