import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import { DECODE_PROFILE, PD_DECISION, PREFILL_PROFILE, type PdDecision } from '../scheduling/pd-keys.js';
import type { SchedulingResult } from '../scheduling/types.js';
import { openAIErrorBody } from './error-body.js';
import { wantsLogprobs } from './logprob-merge.js';
import { sglangPdBody, vllmDecodeBody, vllmPrefillBody } from './pd-body.js';
import type { Prepared } from './pipeline.js';
import { pdProfileOf, type PoolRuntime } from './runtime.js';

/**
 * How long the decode leg of a disaggregated request may take to send its first byte, beyond the
 * prompt's own prefill: the KV handshake and transfer. Default 30 s: SGLang waits 300 s
 * (`SGLANG_DISAGGREGATION_BOOTSTRAP_TIMEOUT`) before it gives up on a missing partner, which is how
 * peers end up with requests hanging for minutes (SGLang docs/advanced_features/pd_disaggregation.md, python/sglang/srt/disaggregation; llm-d's P/D connector); a real handshake is a few
 * HTTP calls and an RDMA registration, done in well under a second, so 30 s only ever fires on a
 * dead or hung leg. Configurable per pool (`infergate.dev/routing` `pd.bootstrapTimeout`).
 */
export const DEFAULT_BOOTSTRAP_TIMEOUT_MS = 30_000;

/**
 * The prefill allowance per prompt token added to the bootstrap timeout: 1 ms (1,000 tokens/s),
 * under the slowest published prefill we know (llm-d's Qwen3-32B TP2 measurement implies ~2,300
 * tokens/s), so a 100k-token prompt gets 100 s more.
 */
export const PREFILL_ALLOWANCE_MS_PER_TOKEN = 1;

/** SGLang: both legs at once, same body. vLLM (llm-d's NIXL dialect): prefill first, then decode with its KV params. */
export type PdProtocol = 'sglang' | 'vllm';

/** A disaggregated request's two legs. */
export interface PdPlan {
  readonly protocol: PdProtocol;
  readonly prefill: Endpoint;
  readonly decode: Endpoint;
  /** What the prefill leg is sent (SGLang: the same body as decode; vLLM: one token, not streamed, `do_remote_decode`). */
  readonly prefillBody: Buffer;
  /** SGLang: the decode leg's body (same as prefill). vLLM: undefined until the prefill answered. */
  readonly decodeBody: Buffer | undefined;
  /** The decode leg's first byte must arrive within this many ms of dispatch (bootstrap timeout + prefill allowance). */
  readonly firstByteDeadlineMs: number;
  /** The setting that deadline comes from, for the error message. */
  readonly deadlineSetting: string;
  /** SGLang bootstrap rooms, one per sequence. */
  readonly rooms: readonly number[];
  /**
   * The client's answer must wait for the prefill's (SGLang with logprobs asked: the prefill's
   * input-token logprobs go in front of the decode's).
   */
  readonly awaitPrefillAnswer: boolean;
}

/** What to do after the prefill leg answered or failed. */
export type PrefillOutcome =
  /** Go on: SGLang's decode leg is already running; vLLM's decode leg gets `body`. */
  | { readonly kind: 'decode'; readonly body: Buffer | undefined }
  /** vLLM: the prefill could not hand over; the decode endpoint runs the whole request with `body`. */
  | { readonly kind: 'alone'; readonly body: Buffer; readonly reason: string }
  /** The prefill refused the request (4xx): the client gets that answer (OpenAI-shaped); SGLang's decode leg is cancelled. */
  | { readonly kind: 'refused'; readonly status: number; readonly body: Buffer }
  /** The pair failed (SGLang: a leg cannot be replaced). */
  | { readonly kind: 'fail'; readonly error: GatewayError };

/** Which leg broke a pair (judged by PdRun.pairFailed, pd-run.ts): `both` for a KV handshake that never completed, `none` for a refusal. */
export type PairBlame = 'prefill' | 'decode' | 'both' | 'none';

/** The pool is a prefill/decode pool whose runtime's protocol the gateway speaks. */
export function pdProtocol(pool: PoolRuntime): PdProtocol | undefined {
  if (pdProfileOf(pool.config) === undefined) return undefined;
  return pool.config.runtime === 'sglang' ? 'sglang' : pool.config.runtime === 'vllm' ? 'vllm' : undefined;
}

/** The scheduler's per-request PD decision, if the pool made one. */
export function pdDecision(prepared: Prepared): PdDecision | undefined {
  return prepared.request.state.read(PD_DECISION);
}

/**
 * The two legs of a request the scheduler disaggregated; undefined when it runs on one endpoint
 * (not a PD pool, or the decider kept it on decode).
 */
export function planPd(prepared: Prepared, result: SchedulingResult): PdPlan | undefined {
  const prefill = result.profiles.get(PREFILL_PROFILE)?.endpoints[0];
  const decode = result.profiles.get(DECODE_PROFILE)?.endpoints[0];
  // A pod with role `both` may win both profiles: it then serves the request alone.
  if (prefill === undefined || decode === undefined || prefill === decode) return undefined;
  return planPair(prepared, prefill, decode);
}

/**
 * The two legs of a request on this prefill and this decode endpoint, whoever chose them (the
 * scheduler, or the endpoint picker for a PD sidecar: pd-pinned.ts); undefined when the request's
 * pool is not a PD pool whose protocol the gateway speaks, or the request has no JSON body.
 */
export function planPair(prepared: Prepared, prefill: Endpoint, decode: Endpoint): PdPlan | undefined {
  const pool = prepared.backend;
  if (pool.kind !== 'pool' || prepared.body === undefined || prepared.request.body === undefined) return undefined;
  const protocol = pdProtocol(pool);
  if (protocol === undefined) return undefined;
  const pd = pool.config.trafficPolicy?.profile?.pd;
  const bootstrapMs = pool.config.routing?.pd?.bootstrapTimeoutMs ?? DEFAULT_BOOTSTRAP_TIMEOUT_MS;
  const deadline = bootstrapMs + prepared.request.promptTokens * PREFILL_ALLOWANCE_MS_PER_TOKEN;
  const setting = `KV handshake: infergate.dev/routing pd.bootstrapTimeout (${bootstrapMs} ms) + ${PREFILL_ALLOWANCE_MS_PER_TOKEN} ms per prompt token`;
  if (protocol === 'sglang') {
    const { body, rooms } = sglangPdBody(prepared.body, prepared.request.body, prefill, pd?.kvTransfer?.bootstrapPort);
    return { protocol, prefill, decode, prefillBody: body, decodeBody: body, firstByteDeadlineMs: deadline, deadlineSetting: setting, rooms, awaitPrefillAnswer: wantsLogprobs(prepared.request.body) };
  }
  return { protocol, prefill, decode, prefillBody: vllmPrefillBody(prepared.body), decodeBody: undefined, firstByteDeadlineMs: deadline, deadlineSetting: setting, rooms: [], awaitPrefillAnswer: true };
}

/** A leg's failure as the client sees it: the leg and pod are named in the message. */
export function legError(leg: 'prefill' | 'decode', endpoint: Endpoint, cause: GatewayError): GatewayError {
  return new GatewayError(cause.code, `${leg} leg on ${endpoint.name}: ${cause.message}`, { cause });
}

/**
 * The prefill leg's answer decides what happens next (SGLang docs/advanced_features/pd_disaggregation.md, python/sglang/srt/disaggregation; llm-d's P/D connector): SGLang's prefill answers
 * once its KV went to the decode server, so a 2xx is all it says and anything else fails the pair;
 * vLLM's answer carries the `kv_transfer_params` the decode leg needs, a 4xx goes to the client,
 * and a 5xx (or an answer without KV params) runs the whole request on the decode endpoint.
 */
export function onPrefillAnswer(plan: PdPlan, forwarded: Buffer, status: number, body: Buffer): PrefillOutcome {
  const ok = status >= 200 && status < 300;
  // A 4xx is the server's verdict on the request (unknown model, prompt too long): the client's answer, for both protocols.
  if (status >= 400 && status < 500) return { kind: 'refused', status, body: openAIErrorBody(status, body) ?? body };
  if (plan.protocol === 'sglang') {
    if (ok) return { kind: 'decode', body: undefined };
    return { kind: 'fail', error: legError('prefill', plan.prefill, new GatewayError('upstream_unavailable', `answered ${status}`)) };
  }
  if (!ok) return { kind: 'alone', body: forwarded, reason: `prefill answered ${status}` };
  const decodeBody = vllmDecodeBody(forwarded, body);
  return decodeBody === undefined ? { kind: 'alone', body: forwarded, reason: 'prefill answer had no kv_transfer_params' } : { kind: 'decode', body: decodeBody };
}

/** The prefill leg could not be reached or broke: vLLM runs the request on decode alone; SGLang fails the pair. */
export function onPrefillFailure(plan: PdPlan, forwarded: Buffer, error: GatewayError): PrefillOutcome {
  if (plan.protocol === 'vllm') return { kind: 'alone', body: forwarded, reason: `prefill failed: ${error.message}` };
  return { kind: 'fail', error: legError('prefill', plan.prefill, error) };
}

/** The decode leg got no first byte by the plan's deadline: the KV handshake did not complete. */
export function handshakeTimeout(plan: PdPlan): GatewayError {
  return new GatewayError('kv_handshake_timeout', `the prefill leg on ${plan.prefill.name} and the decode leg on ${plan.decode.name} did not complete their KV handshake within ${plan.firstByteDeadlineMs} ms (${plan.deadlineSetting})`);
}
