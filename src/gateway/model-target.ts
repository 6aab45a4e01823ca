import type { ResponseModelName } from '../api/types.js';
import type { ModelConfig, PoolConfig, RewriteRuleConfig } from '../config/snapshot.js';
import { GatewayError } from '../core/errors.js';
import type { Random } from '../core/weighted.js';
import { MAX_MODEL_NAME } from './body.js';
import { CONTROL_HEADERS } from './control-headers.js';

/**
 * Header naming the target model outright (upstream's endpoint picker reads the same name). It
 * applies only where no configuration names the model: an InferenceModel or a rewrite rule of the
 * pool wins over it, as upstream's rewrite overrides it. It can name any model, exactly as the
 * body's `model` can, so it grants a client nothing the body does not; it is held to the body's
 * bound (MAX_MODEL_NAME) and is never forwarded (control-headers.ts: llm-d's
 * `x-llm-d-model-name-rewrite` is its alias).
 */
export const MODEL_REWRITE_HEADER = CONTROL_HEADERS.modelRewrite[0];

/** What decided the target: an InferenceModel, a rewrite rule, the header, or nothing (pass-through). */
export type TargetSource = 'inference-model' | 'rewrite' | 'header' | 'none';

export interface ModelTarget {
  /** The model the server is asked for (the body's `model` after the edit). */
  readonly target: string;
  readonly source: TargetSource;
  /** The model name the answers carry (the target, or the client's name put back). */
  readonly answerModel: string;
  /** The InferenceModelRewrite rule that drew the target, when one did. */
  readonly rule: RewriteRuleConfig | undefined;
}

/**
 * The model step of a pool request: which target the server gets and which name the answers
 * carry. Order: the pool's InferenceModel for the name, else its rewrite rules (exact, then the
 * generic one), else the header, else the client's name unchanged.
 *
 * Answers carry the served target when an InferenceModel drew it (the seeds' LoRA canary is
 * verified by reading `"model":"travel-helper-v2"` in about one answer in ten; GIE v0.3–v0.5 left
 * answers alone) and the client's name when a rewrite rule or the header did (GIE's newer endpoint
 * picker puts it back); the pool's `infergate.dev/routing` `responseModelName` overrides both.
 *
 * Throws `invalid_header` (400) when the header is longer than MAX_MODEL_NAME characters.
 */
export function resolveTarget(pool: PoolConfig, model: string, modelConfig: ModelConfig | undefined, header: string | string[] | undefined, random: Random): ModelTarget {
  if (modelConfig !== undefined) return decided(pool, model, modelConfig.targets.pick(random) ?? model, 'inference-model', undefined);
  const rule = pool.rewrites.exact.get(model) ?? pool.rewrites.generic;
  if (rule !== undefined) return decided(pool, model, rule.targets.pick(random) ?? model, 'rewrite', rule);
  const forced = headerTarget(header);
  if (forced !== undefined) return decided(pool, model, forced, 'header', undefined);
  return { target: model, source: 'none', answerModel: model, rule: undefined };
}

function decided(pool: PoolConfig, model: string, target: string, source: TargetSource, rule: RewriteRuleConfig | undefined): ModelTarget {
  const mode: ResponseModelName = pool.routing?.responseModelName ?? (source === 'inference-model' ? 'served' : 'requested');
  return { target, source, answerModel: mode === 'served' ? target : model, rule };
}

function headerTarget(header: string | string[] | undefined): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || value === '') return undefined;
  if (value.length > MAX_MODEL_NAME) throw new GatewayError('invalid_header', `${MODEL_REWRITE_HEADER} is ${value.length} characters long; at most ${MAX_MODEL_NAME} are accepted`);
  return value;
}
