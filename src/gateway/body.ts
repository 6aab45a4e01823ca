import { isUtf8 } from 'node:buffer';
import { GatewayError } from '../core/errors.js';
import { isShapeRefusal, scanJsonObject, type ScannedObject } from './json-scan.js';

/** Longest accepted `model` (InferenceModel's `modelName` limit, Gateway API Inference Extension api/v1alpha2/inferencemodel_types.go). */
export const MAX_MODEL_NAME = 256;

/** A request body parsed once; `raw` is forwarded as is unless the gateway edits a top-level member. */
export interface InferenceBody {
  readonly raw: Buffer;
  readonly json: Readonly<Record<string, unknown>>;
  /** Where `raw`'s top-level members lie (keys unique, as decoded), for edits that keep every other byte. */
  readonly scanned: ScannedObject;
  readonly model: string;
  readonly stream: boolean;
}

/**
 * Parses an OpenAI-style JSON body: UTF-8 (RFC 8259 §8.1), a JSON object with a non-empty string
 * `model`, no key named twice in any object, nested at most MAX_JSON_DEPTH deep, holding at most
 * MAX_JSON_CONTAINERS objects and arrays, MAX_JSON_KEYS keys and MAX_JSON_VALUES values, and the fields the
 * gateway acts on of the type it reads them as. A model server's lenient parser (pydantic's lax
 * mode reads `"stream": "true"` or `"n": "3"` as true and 3) would otherwise read a request other
 * than the one the gateway routed, accounted and built the P/D legs for.
 * Errors are the 400s of DESIGN §1.6 with a message that says what to fix.
 */
export function parseInferenceBody(raw: Buffer): InferenceBody {
  // Node would replace invalid bytes with U+FFFD, a model server refuses them: both must read alike.
  if (!isUtf8(raw)) throw new GatewayError('invalid_json', 'request body is not valid UTF-8');
  // The scan stops at the first level past MAX_JSON_DEPTH, so a body nested millions deep is
  // refused before JSON.parse builds it (measured: 14 MB of nested arrays held the event loop 18 s),
  // and at the first value past MAX_JSON_CONTAINERS / _KEYS / _VALUES: every later walk over the
  // body (prompt text, chat turns for tokenising) works on what JSON.parse built, so is bounded too.
  // Its other findings wait until the body is known to be JSON, so invalid JSON is said as such.
  let scanned: ScannedObject | undefined;
  let scanError: unknown;
  try {
    scanned = scanJsonObject(raw);
  } catch (err) {
    if (isShapeRefusal(err)) throw err;
    scanError = err;
  }
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
  if (scanned === undefined) throw scanError;
  const obj = json as Record<string, unknown>;
  const model = obj['model'];
  if (model === undefined) throw new GatewayError('missing_model', 'request body has no "model" field');
  if (typeof model !== 'string' || model === '') {
    throw new GatewayError('missing_model', '"model" must be a non-empty string');
  }
  // Model names become log fields and metric labels: bounded, whatever a client sends.
  if (model.length > MAX_MODEL_NAME) throw new GatewayError('invalid_body', `"model" is ${model.length} characters long; at most ${MAX_MODEL_NAME} are accepted`);
  checkReadFields(obj);
  return { raw, json: obj, scanned, model, stream: obj['stream'] === true };
}

type Kind = 'boolean' | 'integer' | 'number' | 'object';

/** The fields the gateway reads beyond `model`, and the JSON types it reads them as (null means absent). */
const READ_FIELDS: ReadonlyArray<readonly [string, readonly Kind[]]> = [
  ['stream', ['boolean']],
  ['stream_options', ['object']],
  ['n', ['integer']],
  ['sampling_params', ['object']],
  ['logprobs', ['boolean', 'number']],
  ['return_logprob', ['boolean']],
];

function checkReadFields(obj: Readonly<Record<string, unknown>>): void {
  for (const [key, kinds] of READ_FIELDS) checkField(obj, key, kinds, key);
  const options = obj['stream_options'];
  if (isObject(options)) checkField(options, 'include_usage', ['boolean'], 'stream_options.include_usage');
  const sampling = obj['sampling_params'];
  if (isObject(sampling)) checkField(sampling, 'n', ['integer'], 'sampling_params.n');
}

function checkField(obj: Readonly<Record<string, unknown>>, key: string, kinds: readonly Kind[], path: string): void {
  const v = obj[key];
  if (v === undefined || v === null || kinds.some((k) => isKind(v, k))) return;
  throw new GatewayError('invalid_body', `"${path}" must be ${kinds.map((k) => (k === 'object' ? 'an object' : k === 'integer' ? 'an integer' : `a ${k}`)).join(' or ')}`);
}

function isKind(v: unknown, kind: Kind): boolean {
  if (kind === 'object') return isObject(v);
  if (kind === 'integer') return typeof v === 'number' && Number.isInteger(v);
  return typeof v === kind;
}

function isObject(v: unknown): v is Readonly<Record<string, unknown>> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
