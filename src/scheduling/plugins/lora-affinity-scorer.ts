import { z } from 'zod';
import type { Endpoint } from '../../core/endpoint.js';
import type { Scorer, SchedulingRequest, TypedName } from '../types.js';

export const LORA_AFFINITY_SCORER = 'lora-affinity-scorer';

/**
 * Keeps a LoRA adapter's requests where the adapter is loaded (Gateway API Inference Extension, pkg/epp/framework/plugins/scheduling):
 * 1.0 the adapter is running there (scraped, or this gateway has requests for it in flight there);
 * 0.8 it is not, but a slot is free (`running + waiting < max_lora`); 0.6 it is waiting there;
 * 0 otherwise. A base model needs no slot: an endpoint that labels its metrics with the requested
 * name as its `model_name` scores 1.0 (upstream scores base-model requests as adapters, which
 * steers them away from endpoints whose slots are full for no reason). Neutral where an endpoint
 * publishes no LoRA metrics (SGLang, TRT-LLM, vLLM without LoRA).
 */
export class LoraAffinityScorer implements Scorer {
  readonly typedName: TypedName;
  readonly category = 'affinity' as const;

  constructor(name: string) {
    this.typedName = { type: LORA_AFFINITY_SCORER, name };
  }

  score(request: SchedulingRequest, endpoints: readonly Endpoint[], out: Float64Array): void {
    const model = request.targetModel;
    endpoints.forEach((e, i) => {
      const lora = e.metrics?.lora;
      if (lora === undefined || lora.maxLoras === 0 || e.metrics?.servedModels?.includes(model) === true) {
        out[i] = 1;
        return;
      }
      if (lora.running.includes(model) || e.inFlightByModel.has(model)) out[i] = 1;
      else if (lora.running.length + lora.waiting.length < lora.maxLoras) out[i] = 0.8;
      else if (lora.waiting.includes(model)) out[i] = 0.6;
      else out[i] = 0;
    });
  }
}

export function createLoraAffinityScorer(name: string, parameters: Readonly<Record<string, unknown>>): LoraAffinityScorer {
  z.object({}).strict().parse(parameters);
  return new LoraAffinityScorer(name);
}
