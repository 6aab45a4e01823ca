import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import { MAX_ATTEMPTS, type Picker, type TypedName } from '../types.js';

export const ROUND_ROBIN_PICKER = 'round-robin-picker';

/**
 * Ignores scores and takes the candidates in turn, then the next ones as fallbacks: what a plain
 * Kubernetes Service or an ingress does. A baseline for benchmarks, not a policy to run.
 */
export class RoundRobinPicker implements Picker {
  readonly typedName: TypedName;
  #next = 0;

  constructor(name: string) {
    this.typedName = { type: ROUND_ROBIN_PICKER, name };
  }

  pick(endpoints: readonly Endpoint[]): Endpoint[] {
    const n = endpoints.length;
    if (n === 0) return [];
    const start = this.#next++ % n;
    const out: Endpoint[] = [];
    for (let i = 0; i < Math.min(n, MAX_ATTEMPTS); i++) out.push(endpoints[(start + i) % n] as Endpoint);
    return out;
  }
}

export function createRoundRobinPicker(name: string, parameters: Readonly<Record<string, unknown>>): RoundRobinPicker {
  z.object({}).strict().parse(parameters);
  return new RoundRobinPicker(name);
}
