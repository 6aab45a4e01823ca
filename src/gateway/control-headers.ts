import { GatewayError } from '../core/errors.js';
import { BASE_MODEL_NAME_HEADER, MODEL_NAME_HEADER } from '../config/snapshot.js';

type Incoming = Readonly<Record<string, string | string[] | undefined>>;

/**
 * The request headers a client sends to steer the gateway, never the model server: one table for
 * every data plane. Each setting has the Gateway API Inference Extension's name (`x-gateway-*`)
 * and llm-d's newer one (`x-llm-d-*`, llm-d router v0.9+). When a request carries both, the
 * `x-gateway-*` name wins: it is the Inference Extension's own and the one this project documents;
 * the llm-d name is read as an alias. Every name here is removed from what the model server gets
 * (gateway/headers.ts), so each data plane strips them through its Decision's header edits.
 *
 * - `objective`: an InferenceObjective of the pool; its priority sets the request's band.
 * - `fairnessId`: the flow the request belongs to for fair queuing (read and bounded; admission
 *   does not use it yet).
 * - `modelRewrite`: the target model where no InferenceModel or rewrite rule names one.
 */
export const CONTROL_HEADERS = {
  objective: ['x-gateway-inference-objective', 'x-llm-d-inference-objective'],
  fairnessId: ['x-gateway-inference-fairness-id', 'x-llm-d-inference-fairness-id'],
  modelRewrite: ['x-gateway-model-name-rewrite', 'x-llm-d-model-name-rewrite'],
} as const satisfies Record<string, readonly [string, string]>;

export type ControlSetting = keyof typeof CONTROL_HEADERS;

const ALL: ReadonlySet<string> = new Set(Object.values(CONTROL_HEADERS).flat());

/** The longest fairness id accepted, in characters (a flow key, not a payload). */
export const MAX_FAIRNESS_ID = 256;

/**
 * True for a header only the gateway reads: every `x-gateway-*` header (the Inference Extension's
 * prefix, including the route-matching ones the gateway fills itself) and the llm-d names of the
 * table. Other `x-llm-d-*` headers (e.g. `x-prefiller-host-port`'s peers) are left alone: the
 * prefill/decode sidecar reads them downstream.
 */
export function isControlHeader(name: string): boolean {
  return name.startsWith('x-gateway-') || ALL.has(name);
}

/**
 * The headers Envoy routes on that the gateway's side fills: the Body-Based Router copies the
 * body's `model` (and the adapter's base model) into them before route matching (Gateway API
 * Inference Extension, body-based routing). Behind Envoy they must survive the picker's edits:
 * told to clear its route cache, Envoy matches routes again on the edited headers.
 */
const ROUTE_MATCH_HEADERS: ReadonlySet<string> = new Set([MODEL_NAME_HEADER, BASE_MODEL_NAME_HEADER]);

/** What the picker removes behind Envoy: every control header but the route-matching ones. */
export function isControlHeaderBehindEnvoy(name: string): boolean {
  return isControlHeader(name) && !ROUTE_MATCH_HEADERS.has(name);
}

/**
 * The value of a control setting: the first of its names (`x-gateway-*` first) that carries a
 * non-empty value; a repeated header counts its first value. Undefined when none does.
 */
export function controlHeader(headers: Incoming, setting: ControlSetting): { readonly name: string; readonly value: string } | undefined {
  for (const name of CONTROL_HEADERS[setting]) {
    const raw = headers[name];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (value !== undefined && value !== '') return { name, value };
  }
  return undefined;
}

/** The request's fairness id, if sent; `invalid_header` (400) over MAX_FAIRNESS_ID characters. */
export function fairnessId(headers: Incoming): string | undefined {
  const found = controlHeader(headers, 'fairnessId');
  if (found !== undefined && found.value.length > MAX_FAIRNESS_ID) throw new GatewayError('invalid_header', `${found.name} is ${found.value.length} characters long; at most ${MAX_FAIRNESS_ID} are accepted`);
  return found?.value;
}
