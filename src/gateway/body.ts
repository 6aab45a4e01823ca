import { GatewayError } from '../core/errors.js';

/** Longest accepted `model` (InferenceModel's `modelName` limit, PROTOCOLS.md §f.4). */
export const MAX_MODEL_NAME = 256;

/** A request body parsed once; `raw` is forwarded as is unless the model changes. */
export interface InferenceBody {
  readonly raw: Buffer;
  readonly json: Readonly<Record<string, unknown>>;
  readonly model: string;
  readonly stream: boolean;
}

/**
 * Parses an OpenAI-style JSON body: it must be a JSON object with a non-empty string `model`.
 * Errors are the 400s of DESIGN §1.6 with a message that says what to fix.
 */
export function parseInferenceBody(raw: Buffer): InferenceBody {
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new GatewayError('invalid_json', `request body is not valid JSON: ${detail}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new GatewayError('invalid_body', 'request body must be a JSON object');
  }
  const obj = json as Record<string, unknown>;
  const model = obj['model'];
  if (model === undefined) throw new GatewayError('missing_model', 'request body has no "model" field');
  if (typeof model !== 'string' || model === '') {
    throw new GatewayError('missing_model', '"model" must be a non-empty string');
  }
  // Model names become log fields and metric labels: bounded, whatever a client sends.
  if (model.length > MAX_MODEL_NAME) throw new GatewayError('invalid_body', `"model" is ${model.length} characters long; at most ${MAX_MODEL_NAME} are accepted`);
  return { raw, json: obj, model, stream: obj['stream'] === true };
}
