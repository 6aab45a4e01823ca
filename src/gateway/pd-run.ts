import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import type { HeaderEdit } from '../core/headers.js';
import { MAX_ATTEMPTS } from '../scheduling/types.js';
import { answerShare, isServerFault, retryAfterMs } from './blame.js';
import { prefillInputLogprobs, wantsLogprobs } from './logprob-merge.js';
import { handshakeTimeout, legError, onPrefillAnswer, onPrefillFailure, type PairBlame, type PdPlan, type PrefillOutcome } from './pd.js';
import { handleInternals, type HandleInternals, type PdFacts, type RequestHandle } from './request.js';
import type { Decision } from './request-types.js';
import { requestDeadline, type RequestDeadline } from './timeouts.js';

/** A prefill answer is read whole up to this size (it is one token and KV parameters); the rest is discarded. */
export const MAX_PREFILL_ANSWER_BYTES = 1024 * 1024;
/**
 * With logprobs asked, an SGLang prefill answer carries every input token's logprob (~25 bytes
 * each: 2.5 MB for a 100k-token prompt); a larger answer is not merged.
 */
export const MAX_LOGPROB_ANSWER_BYTES = 16 * 1024 * 1024;
/** Of a failed decode leg's error answer, this much is read for its message. */
export const MAX_ERROR_MESSAGE_BYTES = 8 * 1024;
/**
 * After the decode answer is complete, the prefill leg's answer gets this long before it is
 * cancelled: SGLang's prefill answers once its KV was sent, before the decode's first token, so
 * a healthy one has answered long before; this only bounds a prefill that lost its partner.
 */
export const PREFILL_GRACE_MS = 5_000;

export type PdLeg = 'prefill' | 'decode';

/** One leg the data plane is to send: to `endpoint`, the client's method and target, this body and these header edits. */
export interface LegRequest {
  readonly leg: PdLeg;
  readonly endpoint: Endpoint;
  readonly body: Buffer | null;
  /** Edits of the client's headers (after the PD leg filter: credentials, ids, trace context, body description). */
  readonly headers: readonly HeaderEdit[];
  /** The answer is streamed (idle time counts per chunk). */
  readonly stream: boolean;
  /** The KV handshake: the leg's first body byte must come within `withinMs` of its dispatch, else it fails with `error()`. */
  readonly firstByte: { readonly withinMs: number; readonly error: () => GatewayError } | undefined;
  /** Prefill: its answer is read whole, at most this many bytes kept (the rest read and discarded). */
  readonly readLimit: number;
}

/** What the data plane does to a pair's legs when the machine says so (aborting their exchanges). */
export interface PairControl {
  /** Abort both legs with `error`. */
  stopPair(error: GatewayError): void;
  /** Abort the prefill leg alone with `error`. */
  stopPrefill(error: GatewayError): void;
}

/** The data plane's next move within a pair, as the machine answers an event. */
export type PairStep =
  /** Send this leg now (vLLM: the decode leg after the prefill answered). */
  | { readonly kind: 'send'; readonly leg: LegRequest }
  /** Answer the client with this JSON (a refusal; `raw` is the server's answer, for the byte count). */
  | { readonly kind: 'answer'; readonly status: number; readonly body: unknown; readonly raw: Buffer }
  /** Relay the decode leg's answer to the client; a failure mid-body is worded by `name`. */
  | { readonly kind: 'relay'; readonly name: (failure: GatewayError) => GatewayError }
  /** Read at most `limit` bytes of the decode leg's error answer, then report `decodeErrorBody`. */
  | { readonly kind: 'read-error'; readonly limit: number }
  /** Read the decode answer's first body chunk, then report `decodeFirstByte` (or `decodeFailed`). */
  | { readonly kind: 'first-byte' }
  /** Wait until the prefill leg's answer was reported, then report `decodeFirstByte` again. */
  | { readonly kind: 'await-prefill' }
  /** Nothing to do now (SGLang: the decode leg runs on). */
  | { readonly kind: 'wait' }
  /** The pair failed: report it to `PdRun.pairFailed`, then ask `PdRun.next`. */
  | { readonly kind: 'failed' }
  /** The request was stopped (client gone, its deadline): it ends with `error`. */
  | { readonly kind: 'stopped'; readonly error: GatewayError };

/** What a request does next: run a pair, run on one endpoint (no pair to disaggregate), or fail. */
export type PdNext =
  | { readonly kind: 'pair'; readonly pair: PdPair }
  | { readonly kind: 'single'; readonly decision: Decision }
  | { readonly kind: 'fail'; readonly error: GatewayError };

/** Facts the machine asks the data plane for. */
export interface PdRunFacts {
  /** Why the request was stopped (client gone, its deadline, shutdown); undefined while it runs. */
  readonly requestStopped: () => GatewayError | undefined;
}

/**
 * A disaggregated request in the core (issue 12; SGLang docs/advanced_features/pd_disaggregation.md,
 * python/sglang/srt/disaggregation; llm-d's P/D connector): which pair runs, what a failed pair
 * blames, whether it is retried with a fresh pair (once, before any byte reached the client, for
 * a failure that is evidence against a server), and the request's one deadline, retry included.
 * Each pair is a PdPair. The data plane only carries bytes:
 *
 * ```
 * run = new PdRun(handle, decision, facts)
 * loop: next(control) → pair | single | fail
 *   pair: prefill() / decode() → LegRequest; report prefillHeaders, prefillAnswered | prefillFailed,
 *         decodeAnswered → first-byte | read-error | relay, decodeFirstByte, decodeFailed,
 *         timedOut, requestStopped, decodeDone → grace; end()
 *   failed → pairFailed(pair), loop
 * ```
 */
export class PdRun {
  readonly #handle: RequestHandle;
  readonly #h: HandleInternals;
  readonly #facts: PdRunFacts;
  readonly #pd: PdFacts = { fallback: undefined, inputLogprobs: undefined, failedPairs: [] };
  /** Endpoints of pairs whose KV handshake never completed: avoided by a retry when it can be. */
  readonly #suspects = new Set<Endpoint>();
  #next: { readonly decision: Decision } | { readonly error: GatewayError };
  #pairs = 0;
  /** The whole request's deadline, counted once from the start: a retry does not extend it. */
  readonly deadline: RequestDeadline | undefined;

  constructor(handle: RequestHandle, decision: Decision, facts: PdRunFacts) {
    this.#handle = handle;
    this.#h = handleInternals(handle);
    this.#facts = facts;
    this.#h.attachPd(this.#pd);
    this.#next = { decision };
    this.deadline = requestDeadline(decision.timeout);
  }

  /** The next step: a pair driven through `control`, one endpoint (`decision.pd` undefined), or the request's failure. */
  next(control: PairControl): PdNext {
    const next = this.#next;
    if ('error' in next) return { kind: 'fail', error: next.error };
    const plan = next.decision.pd;
    if (plan === undefined) return { kind: 'single', decision: next.decision };
    this.#pairs++;
    const pair = new PdPair(this.#handle, this.#pd, next.decision, plan, control, this.#facts);
    return { kind: 'pair', pair };
  }

  /**
   * `pair` failed before any byte reached the client. A stopped request judges no one (its legs
   * were cut). Otherwise the blamed leg(s) are judged (see PairFailure) and a failure that is
   * evidence against a server gets one fresh pair, the blamed endpoints left out; `next` says
   * which.
   */
  pairFailed(pair: PdPair): void {
    const stopped = this.#facts.requestStopped();
    if (stopped !== undefined) {
      this.#next = { error: stopped };
      return;
    }
    if (pair.failedPrefill !== undefined) this.#failed.add(pair.failedPrefill);
    const { error, blame } = pair.failure ?? { error: new GatewayError('upstream_unavailable', 'the prefill/decode pair failed'), blame: 'decode' as const };
    this.#judge(pair.plan, blame, error);
    // One retry (a pair is one attempt: MAX_ATTEMPTS in all). A failure that is no server's (the
    // request cannot be sent) would fail a fresh pair the same way.
    if (this.#pairs >= MAX_ATTEMPTS || !isServerFault(error.code)) {
      this.#next = { error };
      return;
    }
    try {
      this.#next = { decision: this.#reschedule() };
    } catch {
      this.#next = { error };
    }
  }

  /**
   * Judges a failed pair: `decode` counts against the decode endpoint; `prefill` was judged when
   * its leg ended; `both` (a KV handshake that never completed: either side may have hung)
   * against both, so the one that keeps failing with every partner is ejected by passive health
   * (its partners' successes elsewhere reset their counts); `none` (a refusal) judges no one. Only
   * evidence counts (blame.ts). Both legs are released.
   */
  #judge(plan: PdPlan, blame: PairBlame, failure: GatewayError): void {
    // Logged with the request, so a retried request shows the pair that failed and why.
    this.#pd.failedPairs.push({ prefillPod: plan.prefill.podName, decodePod: plan.decode.podName, blame, error: failure.message.slice(0, 300) });
    if (blame === 'decode') {
      this.#failed.add(plan.decode);
      this.#h.endDecode(failure.code);
    }
    if (blame === 'both') {
      this.#h.endDecode(failure.code);
      this.#h.endPrefill((e) => this.#h.judgeFailure(e, failure.code));
      this.#suspects.add(plan.prefill);
      this.#suspects.add(plan.decode);
    }
    this.#h.endDecode();
    this.#h.release('prefill');
  }

  /** Endpoints that failed this request (beside those the handle knows): left out of a retry. */
  readonly #failed = new Set<Endpoint>();

  /** A fresh pair: suspects avoided while another pair exists; when one is the only pod of its role, the retry may use it. */
  #reschedule(): Decision {
    // The fresh pair starts clean: the failed pair's fallback (vLLM decode-alone) is not its own.
    this.#pd.fallback = undefined;
    this.#pd.inputLogprobs = undefined;
    const failed = [...this.#failed];
    const suspects = [...this.#suspects];
    const tries = [new Set([...failed, ...suspects]), new Set([...failed, ...suspects.filter((e) => e.role !== 'prefill')]), new Set([...failed, ...suspects.filter((e) => e.role !== 'decode')])];
    for (let i = 0; ; i++) {
      try {
        return this.#h.reschedule(tries[i] as Set<Endpoint>);
      } catch (err) {
        if (i + 1 >= tries.length || suspects.length === 0 || !(err instanceof GatewayError) || err.code !== 'no_ready_endpoint') throw err;
      }
    }
  }
}

/** Why a pair failed and whom it blames. */
export interface PairFailure {
  readonly error: GatewayError;
  readonly blame: PairBlame;
}

/**
 * One prefill/decode pair (SGLang: both legs at once, same body; vLLM: the prefill, then the
 * decode with its `kv_transfer_params` or alone). The client's answer starts only with the decode
 * leg's first byte, so until then any failure of either leg fails the pair (and the other leg is
 * cancelled at once); after it, the pair stands and the prefill's late troubles concern no one.
 */
export class PdPair {
  readonly plan: PdPlan;
  /** SGLang: send both legs at once; vLLM: the prefill first, the decode as its answer says. */
  readonly concurrent: boolean;
  readonly #handle: RequestHandle;
  readonly #h: HandleInternals;
  readonly #pd: PdFacts;
  readonly #decision: Decision;
  readonly #control: PairControl;
  readonly #facts: PdRunFacts;
  #stopped: GatewayError | undefined;
  #prefillStopped: GatewayError | undefined;
  #blame: PairBlame | undefined;
  /** The prefill refused the request (4xx): the client's answer, once the decode leg is stopped. */
  #refused: { readonly status: number; readonly body: Buffer } | undefined;
  /** The client has its answer from the decode leg: the pair stands, whatever the prefill does now. */
  #committed = false;
  /** The prefill was ended by the machine (the decode's answer made it moot): not the leg's failure. */
  #prefillCancelled = false;
  #prefillOutcome: PrefillOutcome | undefined;
  #failure: PairFailure | undefined;
  #failedPrefill: Endpoint | undefined;

  /** Created by `PdRun.next` (its `pd` facts are the handle's, not a data plane's). */
  constructor(handle: RequestHandle, pd: PdFacts, decision: Decision, plan: PdPlan, control: PairControl, facts: PdRunFacts) {
    this.#handle = handle;
    this.#h = handleInternals(handle);
    this.#pd = pd;
    this.#decision = decision;
    this.plan = plan;
    this.concurrent = plan.protocol === 'sglang';
    this.#control = control;
    this.#facts = facts;
  }

  /** Why the pair failed, once it did (a `failed` or `answer` step). */
  get failure(): PairFailure | undefined {
    return this.#failure;
  }

  /** The prefill endpoint, when its leg failed (a retry leaves it out). */
  get failedPrefill(): Endpoint | undefined {
    return this.#failedPrefill;
  }

  /** True once the client's answer comes from this pair's decode leg. */
  get committed(): boolean {
    return this.#committed;
  }

  /** The prefill leg to send now (accounted as dispatched). Its handshake deadline applies where the decode's first byte cannot say (vLLM; an unstreamed SGLang answer). */
  prefill(): LegRequest {
    const { plan } = this;
    const stream = this.#decision.stream;
    this.#handle.dispatched(plan.prefill, 'prefill');
    const handshakeHere = plan.protocol === 'vllm' || !stream;
    return {
      leg: 'prefill',
      endpoint: plan.prefill,
      body: plan.prefillBody,
      headers: this.#h.headersFor(plan.prefillBody),
      // vLLM's prefill leg is never streamed; SGLang's is the client's own body.
      stream: plan.protocol === 'sglang' && stream,
      firstByte: handshakeHere ? { withinMs: plan.firstByteDeadlineMs, error: () => handshakeTimeout(plan) } : undefined,
      readLimit: plan.awaitPrefillAnswer && plan.protocol === 'sglang' ? MAX_LOGPROB_ANSWER_BYTES : MAX_PREFILL_ANSWER_BYTES,
    };
  }

  /** SGLang's decode leg, sent with the prefill. */
  decode(): LegRequest {
    return this.#decodeLeg(this.plan.decodeBody ?? this.plan.prefillBody, true);
  }

  /** A decode that reads a prefill's KV (`awaitsKv`) and streams must send its first byte within the handshake deadline. */
  #decodeLeg(body: Buffer | undefined, awaitsKv: boolean): LegRequest {
    const { plan } = this;
    this.#handle.dispatched(plan.decode);
    return {
      leg: 'decode',
      endpoint: plan.decode,
      body: body ?? null,
      headers: this.#h.headersFor(body ?? Buffer.alloc(0)),
      stream: this.#decision.stream,
      firstByte: awaitsKv && this.#decision.stream ? { withinMs: plan.firstByteDeadlineMs, error: () => handshakeTimeout(plan) } : undefined,
      readLimit: MAX_ERROR_MESSAGE_BYTES,
    };
  }

  /** Not the prefill's business any more: the pair failed or ended, or its answer became moot. */
  #moot(): boolean {
    return this.#stopped !== undefined || this.#prefillCancelled;
  }

  /** The prefill leg's response headers arrived. */
  prefillHeaders(): void {
    if (!this.#moot()) this.#h.legHeaders();
  }

  /** The prefill leg answered `status` with `body` (read whole, bounded by `readLimit`) and its `Retry-After` header. */
  prefillAnswered(status: number, body: Buffer, retryAfter?: string | string[]): PairStep {
    // A late answer of a pair already given up must not touch the next pair's accounting.
    if (this.#moot()) return this.#afterPrefill({ kind: 'decode', body: undefined });
    const prepared = this.#h.prepared;
    if (prepared?.body === undefined) throw new Error('prefillAnswered() without a disaggregated decision');
    const plan = this.plan;
    this.#h.endPrefill((e) => this.#h.passiveHealth.answered(e, status, retryAfterMs(retryAfter), answerShare(status, e, prepared.targetModel, false)));
    const outcome = onPrefillAnswer(plan, prepared.body, status, body);
    if (outcome.kind === 'alone') this.#pd.fallback = outcome.reason;
    // Logprob merge: SGLang's prefill computed the input tokens' logprobs; they go in front of the decode's.
    if (outcome.kind === 'decode' && plan.protocol === 'sglang' && wantsLogprobs(prepared.request.body)) this.#pd.inputLogprobs = prefillInputLogprobs(body);
    if (outcome.kind === 'fail') this.#failedPrefill = plan.prefill;
    return this.#afterPrefill(this.#judged(outcome));
  }

  /** The prefill leg could not be reached, broke, or was aborted (`error`: the data plane's reading of it). */
  prefillFailed(error: GatewayError): PairStep {
    const stopped = this.#facts.requestStopped();
    if (stopped !== undefined) {
      this.#prefillOutcome = { kind: 'fail', error: stopped };
      return { kind: 'stopped', error: stopped };
    }
    if (this.#moot()) return this.#afterPrefill({ kind: 'decode', body: undefined });
    const prepared = this.#h.prepared;
    if (prepared?.body === undefined) throw new Error('prefillFailed() without a disaggregated decision');
    const plan = this.plan;
    // A timeout of its own (the machine stopped it) says more than the aborted exchange.
    const failure = this.#prefillStopped ?? error;
    if (failure.code === 'kv_handshake_timeout' && plan.protocol === 'sglang') {
      // Either side may have hung: the pair is at fault (PdRun judges both).
      this.#fail(failure, 'both');
      return this.#afterPrefill({ kind: 'fail', error: failure });
    }
    this.#h.endPrefill((e) => this.#h.judgeFailure(e, failure.code));
    this.#failedPrefill = plan.prefill;
    const outcome = onPrefillFailure(plan, prepared.body, failure);
    if (outcome.kind === 'alone') this.#pd.fallback = outcome.reason;
    return this.#afterPrefill(this.#judged(outcome));
  }

  /** What an outcome does to the pair: a failure stops it; an SGLang refusal stops the decode leg and becomes the client's answer. */
  #judged(outcome: PrefillOutcome): PrefillOutcome {
    if (outcome.kind === 'fail') this.#fail(outcome.error, 'prefill');
    if (outcome.kind === 'refused' && this.plan.protocol === 'sglang' && !this.#committed) {
      this.#refused = outcome;
      this.#fail(new GatewayError('upstream_unavailable', `prefill leg on ${this.plan.prefill.name}: refused the request (${outcome.status})`), 'none');
    }
    return outcome;
  }

  /** SGLang: the decode leg runs on (or was stopped). vLLM: the outcome says the next leg or the answer. */
  #afterPrefill(outcome: PrefillOutcome): PairStep {
    this.#prefillOutcome = outcome;
    if (this.concurrent) return { kind: 'wait' };
    switch (outcome.kind) {
      case 'refused':
        return refusal(outcome.status, outcome.body);
      case 'fail':
        this.#failure = { error: outcome.error, blame: this.#blame ?? 'prefill' };
        return { kind: 'failed' };
      // A decode that runs the whole request alone is an ordinary request (no handshake).
      case 'alone':
        return { kind: 'send', leg: this.#decodeLeg(outcome.body, false) };
      case 'decode':
        return { kind: 'send', leg: this.#decodeLeg(outcome.body ?? this.#decision.body, true) };
    }
  }

  /** The decode leg failed before its answer could be relayed (`error`: the data plane's reading of it). */
  decodeFailed(error: GatewayError): PairStep {
    const stopped = this.#facts.requestStopped();
    if (stopped !== undefined) return { kind: 'stopped', error: stopped };
    const cause = this.#stopped;
    // Stopped by the prefill leg's failure (already blamed) or by a timeout (blamed when it fired).
    if (cause !== undefined) return this.#failed({ error: cause, blame: this.#blame ?? 'decode' });
    const failure = legError('decode', this.plan.decode, error);
    this.#fail(failure, 'decode');
    return this.#failed({ error: failure, blame: 'decode' });
  }

  /** The pair failed; an SGLang pair stopped by the prefill's refusal answers the client with it. */
  #failed(failure: PairFailure): PairStep {
    this.#failure = failure;
    if (this.concurrent && this.#refused !== undefined) return refusal(this.#refused.status, this.#refused.body);
    return { kind: 'failed' };
  }

  /** The decode leg's response headers arrived with `status`. */
  decodeAnswered(status: number): PairStep {
    if (status >= 500) return { kind: 'read-error', limit: MAX_ERROR_MESSAGE_BYTES };
    if (status >= 400) {
      // The decode server refused the request (overloaded, invalid): that is the client's answer,
      // and a prefill waiting for this partner would only wait for its own timeout. Unless the
      // pair was stopped meanwhile (the prefill refused it too): then that answer stands.
      if (this.#stopped !== undefined) return this.decodeFailed(new GatewayError('upstream_unavailable', 'pair stopped'));
      this.#committed = true;
      this.#cancelPrefill(`the decode leg answered ${status}`);
      return { kind: 'relay', name: (failure) => failure };
    }
    // Hold the client's response until the first byte: until then the pair can still be replaced.
    return { kind: 'first-byte' };
  }

  /** The decode leg answered 5xx; `said` is the start of its body (at most `read-error`'s limit). */
  decodeErrorBody(status: number, said: Buffer): PairStep {
    // The server's own words say why (an SGLang decode whose prefill partner died says so).
    const failure = legError('decode', this.plan.decode, new GatewayError('upstream_unavailable', `answered ${status}${reason(said)}`));
    // An SGLang decode that fails before its first byte usually failed its KV handshake (an
    // unreachable bootstrap, a dead prefill): the pair is at fault, and passive health's
    // consecutive counting ejects whichever pod keeps failing with every partner.
    const blame: PairBlame = this.plan.protocol === 'sglang' ? 'both' : 'decode';
    this.#fail(failure, blame);
    // A pair stopped first (the prefill failed or refused) keeps that cause and blame.
    return this.#failed({ error: this.#stopped ?? failure, blame: this.#blame ?? blame });
  }

  /** The decode answer's first body chunk was read (or the body ended): relay it, or wait for the prefill's logprobs, or fail. */
  decodeFirstByte(): PairStep {
    if (this.plan.awaitPrefillAnswer && this.concurrent) {
      const prefilled = this.#prefillOutcome;
      if (prefilled === undefined) return { kind: 'await-prefill' };
      if (prefilled.kind === 'fail') return this.decodeFailed(prefilled.error);
      if (prefilled.kind === 'refused') return this.decodeFailed(new GatewayError('upstream_unavailable', 'refused by the prefill'));
    }
    if (this.#stopped !== undefined) return this.decodeFailed(new GatewayError('upstream_unavailable', 'pair stopped'));
    // From here the pair stands: the prefill leg's late troubles no longer concern the client.
    this.#committed = true;
    const decode = this.plan.decode;
    return { kind: 'relay', name: (failure) => legError('decode', decode, failure) };
  }

  /** SGLang: the decode answer is complete. Its endpoint stops carrying the load; the prefill's answer gets `graceMs` before it is cancelled. */
  decodeDone(): { readonly graceMs: number } {
    this.#h.release('main');
    return { graceMs: PREFILL_GRACE_MS };
  }

  /**
   * A leg passed one of its own timeouts (not the request's deadline, which stops the request).
   * The prefill leg alone stops (its failure is reported as usual); the decode leg fails the pair
   * before the client's answer began (a KV handshake timeout blames both legs), and after it
   * ends the stream.
   */
  timedOut(leg: PdLeg, error: GatewayError): void {
    if (leg === 'prefill') {
      this.#stopPrefill(error);
      return;
    }
    const handshake = error.code === 'kv_handshake_timeout';
    const named = handshake ? error : legError('decode', this.plan.decode, error);
    if (this.#committed) this.#stop(named);
    else this.#fail(named, handshake ? 'both' : 'decode');
  }

  /** The request was stopped (the client left, its deadline): both legs end with it. */
  requestStopped(error: GatewayError | undefined): void {
    this.#stop(error ?? legError('decode', this.plan.decode, new GatewayError('upstream_unavailable', 'stopped')));
  }

  /** The pair is over (answered or failed): whatever is still out (a prefill answer draining) is no longer needed. */
  end(): void {
    this.#cancelPrefill('no longer needed');
    this.#stop(legError('prefill', this.plan.prefill, new GatewayError('upstream_unavailable', 'no longer needed')));
  }

  #fail(error: GatewayError, blame: PairBlame): void {
    if (this.#stopped !== undefined || this.#committed) return;
    this.#blame = blame;
    this.#stop(error);
  }

  #stop(error: GatewayError): void {
    if (this.#stopped !== undefined) return;
    this.#stopped = error;
    this.#control.stopPair(error);
    this.#stopPrefill(error);
  }

  #stopPrefill(error: GatewayError): void {
    if (this.#prefillStopped !== undefined) return;
    this.#prefillStopped = error;
    this.#control.stopPrefill(error);
  }

  #cancelPrefill(why: string): void {
    this.#prefillCancelled = true;
    this.#stopPrefill(legError('prefill', this.plan.prefill, new GatewayError('upstream_unavailable', why)));
  }
}

/** A server's refusal (4xx) as the client's answer: its JSON as sent (OpenAI-shaped where it could be read), or our own words. */
function refusal(status: number, raw: Buffer): PairStep {
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    body = { error: { message: `the model server refused the request (${status})`, type: 'invalid_request_error', param: null, code: null } };
  }
  return { kind: 'answer', status, body, raw };
}

/** `: <message>` from an error body in any server shape (OpenAI nested or flat, `detail`, text), or ''. */
export function reason(body: Buffer): string {
  if (body.length === 0) return '';
  const text = body.toString('utf8');
  let message: unknown;
  try {
    const json = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    message = typeof json.error === 'object' ? json.error.message : (json.error ?? json.message ?? json.detail);
  } catch {
    message = text;
  }
  const s = typeof message === 'string' ? message.trim() : JSON.stringify(message);
  return s === '' || s === undefined ? '' : `: ${s.length > 200 ? `${s.slice(0, 200)}…` : s}`;
}
