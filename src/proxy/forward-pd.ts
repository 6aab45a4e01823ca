import type { Dispatcher } from 'undici';
import type { Endpoint } from '../core/endpoint.js';
import { asGatewayError, GatewayError } from '../core/errors.js';
import { handshakeTimeout, isServerFault, legError, type Decision, type Outcome, type PairBlame, type PdPlan, type PrefillOutcome } from '../gateway/index.js';
import { decodeResponse } from './decode.js';
import { forward, relay, type ForwardInput } from './forward.js';
import { pdLegRequestHeaders } from './headers.js';
import { sendJson } from './respond.js';
import { RequestScope } from './scope.js';
import { UpstreamAttempt } from './upstream.js';
import { upstreamFailure } from './upstream-errors.js';
import type { Deadline, Watched } from './watchdog.js';

/** A prefill answer is read whole up to this size (it is one token and KV parameters); the rest is discarded. */
const MAX_PREFILL_ANSWER_BYTES = 1024 * 1024;
/**
 * With logprobs asked, an SGLang prefill answer carries every input token's logprob (~25 bytes
 * each: 2.5 MB for a 100k-token prompt); a larger answer is not merged.
 */
const MAX_LOGPROB_ANSWER_BYTES = 16 * 1024 * 1024;
/** Of a failed leg's error answer, this much is read for its message. */
const MAX_ERROR_MESSAGE_BYTES = 8 * 1024;

/**
 * After the decode answer is complete, the prefill leg's answer gets this long before it is
 * cancelled: SGLang's prefill answers once its KV was sent, before the decode's first token, so
 * a healthy one has answered long before; this only bounds a prefill that lost its partner.
 */
const PREFILL_GRACE_MS = 5_000;

/** The pair failed before any byte reached the client: it may be retried with a fresh pair. */
class PairFailed extends Error {
  constructor(
    readonly error: GatewayError,
    readonly blame: PairBlame,
  ) {
    super(error.message);
  }
}

/**
 * One prefill/decode pair's shared state: its scope (stopping it cancels both legs), what
 * stopped it, and the prefill leg's own scope (a prefill can end without ending the pair).
 */
class Pair {
  readonly scope = new RequestScope();
  /** The prefill leg alone: stopped with the pair, or by its own timeouts, or when no longer needed. */
  readonly prefill = new RequestScope();
  blame: PairBlame | undefined;
  /** The prefill refused the request (4xx): the client's answer, once the decode leg is stopped. */
  refused: { readonly status: number; readonly body: Buffer } | undefined;
  /** The client has its answer from the decode leg: the pair stands, whatever the prefill leg does now. */
  committed = false;
  /** The data plane ended the prefill leg itself (the decode's answer made it moot): not the leg's failure. */
  prefillCancelled = false;

  constructor() {
    this.scope.signal.addEventListener('abort', () => this.prefill.stop(this.scope.stopped ?? new GatewayError('upstream_unavailable', 'pair stopped')), { once: true });
  }

  fail(error: GatewayError, blame: PairBlame): void {
    if (this.scope.stopped !== undefined || this.committed) return;
    this.blame = blame;
    this.scope.stop(error);
  }

  /** The decode leg passed a timeout: before the client's answer began, the pair fails; after, the stream ends. */
  decodeTimedOut(error: GatewayError, decode: Endpoint): void {
    const handshake = error.code === 'kv_handshake_timeout';
    const named = handshake ? error : legError('decode', decode, error);
    if (this.committed) this.scope.stop(named);
    else this.fail(named, handshake ? 'both' : 'decode');
  }

  /** The prefill leg is no longer needed (the decode answered on its own, or finished long ago). */
  cancelPrefill(why: string, prefill: Endpoint): void {
    this.prefillCancelled = true;
    this.prefill.stop(legError('prefill', prefill, new GatewayError('upstream_unavailable', why)));
  }
}

/**
 * A disaggregated request (issue 12; SGLang docs/advanced_features/pd_disaggregation.md, python/sglang/srt/disaggregation; llm-d's P/D connector): its prefill and decode legs, the decode
 * answer streamed to the client. Each pair runs under its own scope, tied to the request's, so a
 * leg that fails (connect error, non-2xx, reset, a timeout, the KV handshake deadline) cancels
 * the other at once, and a client that leaves cancels both. The client's response starts only
 * with the decode leg's first byte, so until then a failed pair is retried once with a fresh
 * pair; after it, an SSE stream ends with one error event. The error names the leg that failed.
 * A request timeout (HTTPRoute `timeouts.request`, BackendTrafficPolicy) bounds the whole of it,
 * retry included.
 */
export async function forwardPd(input: ForwardInput): Promise<Outcome> {
  let decision = input.decision;
  const timeout = decision.timeout;
  const deadline: Deadline | undefined = timeout === undefined ? undefined : { at: performance.now() + timeout.ms, ms: timeout.ms, setting: timeout.setting };
  for (let pair = 0; ; pair++) {
    const plan = decision.pd;
    if (plan === undefined) return forward({ ...input, decision }, deadline);
    try {
      return await runPair(input, decision, plan, deadline);
    } catch (err) {
      if (!(err instanceof PairFailed)) throw err;
      // A request that was stopped (client gone, deadline) judges no one: its legs were cut.
      const stopped = input.scope.stopped;
      if (stopped !== undefined) throw stopped;
      // The core judges the blamed leg(s) and keeps them out of the retry.
      input.handle.pairFailed(err.blame, err.error);
      // A failure that is no server's (the request cannot be sent) fails a fresh pair the same way.
      if (pair > 0 || !isServerFault(err.error.code)) throw err.error;
      try {
        decision = input.handle.retryPair();
      } catch {
        throw err.error;
      }
    }
  }
}

/** The legs' shared context: the request's watchdog registrations, ended with the pair. */
interface Legs {
  readonly input: ForwardInput;
  readonly decision: Decision;
  readonly plan: PdPlan;
  readonly pair: Pair;
  readonly deadline: Deadline | undefined;
  /** Watches an attempt until the returned function is called (or the pair ends). */
  readonly watch: (w: Watched) => () => void;
}

/** One pair: SGLang sends both legs at once; vLLM runs the prefill, then the decode. */
async function runPair(input: ForwardInput, decision: Decision, plan: PdPlan, deadline: Deadline | undefined): Promise<Outcome> {
  const pair = new Pair();
  // The client left, or the request was stopped: both legs end with it.
  const onRequestStop = (): void => pair.scope.stop(input.scope.stopped ?? legError('decode', plan.decode, asGatewayError(new Error('stopped'))));
  input.scope.signal.addEventListener('abort', onRequestStop, { once: true });
  const watched = new Set<Watched>();
  const watch = (w: Watched): (() => void) => {
    watched.add(w);
    input.watchdog.watch(w);
    return () => {
      watched.delete(w);
      input.watchdog.unwatch(w);
    };
  };
  const legs: Legs = { input, decision, plan, pair, deadline, watch };
  try {
    if (plan.protocol === 'sglang') {
      const prefill = sendPrefill(legs);
      // Read later (or never, when the decode leg fails first): never an unhandled rejection.
      prefill.catch(() => undefined);
      let outcome: Outcome;
      try {
        outcome = await sendDecode(legs, plan.decodeBody ?? plan.prefillBody, true, plan.awaitPrefillAnswer ? prefill : undefined);
      } catch (err) {
        // The prefill refused the request and stopped the pair: its answer is the client's.
        if (pair.refused !== undefined && err instanceof PairFailed) return refuse(input, pair.refused);
        throw err;
      }
      // The decode endpoint is done; the request still waits (bounded) for the prefill's answer.
      input.handle.decodeDone();
      await settledWithin(prefill, PREFILL_GRACE_MS);
      return outcome;
    }
    const prefilled = await sendPrefill(legs);
    if (prefilled.kind === 'refused') return refuse(input, prefilled);
    if (prefilled.kind === 'fail') throw new PairFailed(prefilled.error, pair.blame ?? 'prefill');
    // A decode that got kv_transfer_params reads the KV first (the handshake deadline applies);
    // one running the whole request alone is an ordinary request.
    if (prefilled.kind === 'alone') return await sendDecode(legs, prefilled.body, false);
    return await sendDecode(legs, prefilled.body ?? decision.body, true);
  } finally {
    input.scope.signal.removeEventListener('abort', onRequestStop);
    for (const w of watched) input.watchdog.unwatch(w);
    // Whatever is still out (a prefill answer still draining) is no longer needed.
    pair.cancelPrefill('no longer needed', plan.prefill);
    pair.scope.stop(legError('prefill', plan.prefill, asGatewayError(new Error('no longer needed'))));
  }
}

/** Sends a prefill's refusal (4xx, OpenAI-shaped where it could be read) to the client. */
function refuse(input: ForwardInput, refused: { readonly status: number; readonly body: Buffer }): Outcome {
  let body: unknown;
  try {
    body = JSON.parse(refused.body.toString('utf8'));
  } catch {
    body = { error: { message: `the model server refused the request (${refused.status})`, type: 'invalid_request_error', param: null, code: null } };
  }
  sendJson(input.res, refused.status, body, input.handle.id, input.closeConnection());
  return { status: refused.status, bytesOut: refused.body.length };
}

/** Waits for `p` to settle, at most `ms`. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.then(noop, noop), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function noop(): void {}

/**
 * The prefill leg: sent, its answer read whole (bounded) and handed to the core, which says what
 * comes next. It runs under its own scope and watchdog entry, which end as soon as its answer is
 * read: its timeouts blame it (for vLLM they run the request on decode alone), and a finished
 * prefill never times out the decode stream it fed. The KV handshake deadline watches its answer
 * where the decode's first byte cannot (vLLM, whose decode starts after it; an unstreamed SGLang
 * answer, which comes whole at the end). For SGLang a prefill that fails stops the pair.
 */
async function sendPrefill(legs: Legs): Promise<PrefillOutcome> {
  const { input, decision, plan, pair } = legs;
  const { handle } = input;
  handle.dispatched(plan.prefill, 'prefill');
  // vLLM's prefill leg is never streamed; SGLang's is the client's own body.
  const streamed = plan.protocol === 'sglang' && decision.stream;
  const attempt = new UpstreamAttempt(plan.prefill, pair.prefill.signal, streamed);
  const handshakeHere = plan.protocol === 'vllm' || !decision.stream;
  const unwatch = legs.watch({
    attempt,
    timeouts: decision.timeouts,
    deadline: legs.deadline,
    scope: pair.prefill,
    ...(handshakeHere ? { firstByte: { at: attempt.startedAt + plan.firstByteDeadlineMs, error: () => handshakeTimeout(plan) } } : {}),
    stop: (error, whole) => (whole ? input.scope.stop(error) : pair.prefill.stop(error)),
  });
  // Not this leg's business any more: the pair failed or ended, or its answer became moot.
  const moot = (): boolean => pair.scope.stopped !== undefined || pair.prefillCancelled;
  let outcome: PrefillOutcome;
  try {
    input.dispatcher.dispatch(request(input, plan.prefill, plan.prefillBody, handle.headersFor(plan.prefillBody)), attempt);
    const response = await attempt.response;
    if (!moot()) handle.prefillStarted();
    const body = await readAll(decodeResponse(response.headers, response.body).body, plan.awaitPrefillAnswer && plan.protocol === 'sglang' ? MAX_LOGPROB_ANSWER_BYTES : MAX_PREFILL_ANSWER_BYTES);
    // A late answer of a pair already given up must not touch the next pair's accounting.
    if (moot()) return { kind: 'decode', body: undefined };
    outcome = handle.prefillAnswered(response.status, body, response.headers['retry-after']);
  } catch (err) {
    if (input.scope.stopped !== undefined) throw input.scope.stopped;
    if (moot()) return { kind: 'decode', body: undefined };
    const failure = pair.prefill.stopped ?? upstreamFailure(err, plan.prefill);
    if (failure.code === 'kv_handshake_timeout' && plan.protocol === 'sglang') {
      // Either side may have hung: the pair is at fault (RequestHandle.pairFailed judges both).
      pair.fail(failure, 'both');
      return { kind: 'fail', error: failure };
    }
    outcome = handle.prefillFailed(failure);
  } finally {
    unwatch();
  }
  if (outcome.kind === 'fail') pair.fail(outcome.error, 'prefill');
  if (outcome.kind === 'refused' && plan.protocol === 'sglang' && !pair.committed) {
    // SGLang's decode leg is running on the same body: stop it; the refusal is the client's answer.
    pair.refused = outcome;
    pair.fail(new GatewayError('upstream_unavailable', `prefill leg on ${plan.prefill.name}: refused the request (${outcome.status})`), 'none');
  }
  return outcome;
}

/**
 * The decode leg: the client's response starts only with its first body byte, and before it any
 * failure of either leg fails the pair. When it reads a prefill's KV (`awaitsKv`) and the client
 * streams, that first byte (the KV has arrived) must come within the plan's handshake deadline.
 * A decode that refuses the request (4xx) answers the client itself, and its prefill is cancelled.
 */
async function sendDecode(
  legs: Legs,
  body: Buffer | undefined,
  awaitsKv: boolean,
  /** Wait for the prefill's answer before the client's (its logprobs go in front of the decode's). */
  prefillAnswer?: Promise<PrefillOutcome>,
): Promise<Outcome> {
  const { input, decision, plan, pair } = legs;
  const { handle } = input;
  const pairScope = pair.scope;
  handle.dispatched(plan.decode);
  const attempt = new UpstreamAttempt(plan.decode, pairScope.signal, decision.stream);
  legs.watch({
    attempt,
    timeouts: decision.timeouts,
    deadline: legs.deadline,
    scope: pairScope,
    ...(awaitsKv && decision.stream ? { firstByte: { at: attempt.startedAt + plan.firstByteDeadlineMs, error: () => handshakeTimeout(plan) } } : {}),
    stop: (error, whole) => (whole ? input.scope.stop(error) : pair.decodeTimedOut(error, plan.decode)),
  });
  const legFailure = (err: unknown): PairFailed => {
    const stopped = input.scope.stopped;
    if (stopped !== undefined) throw stopped;
    const cause = pairScope.stopped;
    // Stopped by the prefill leg's failure (already blamed) or by a timeout (blamed when it fired).
    if (cause !== undefined) return new PairFailed(cause, pair.blame ?? 'decode');
    const failure = legError('decode', plan.decode, upstreamFailure(err, plan.decode));
    pair.fail(failure, 'decode');
    return new PairFailed(failure, 'decode');
  };
  let response;
  try {
    input.dispatcher.dispatch(request(input, plan.decode, body ?? null, handle.headersFor(body ?? Buffer.alloc(0))), attempt);
    response = await attempt.response;
  } catch (err) {
    throw legFailure(err);
  }
  const decoded = decodeResponse(response.headers, response.body);
  if (response.status >= 500) {
    // The server's own words say why (an SGLang decode whose prefill partner died says so).
    const said = await readAll(decoded.body, MAX_ERROR_MESSAGE_BYTES).catch(() => Buffer.alloc(0));
    const failure = legError('decode', plan.decode, new GatewayError('upstream_unavailable', `answered ${response.status}${reason(said)}`));
    // An SGLang decode that fails before its first byte usually failed its KV handshake (an
    // unreachable bootstrap, a dead prefill): the pair is at fault, and passive health's
    // consecutive counting ejects whichever pod keeps failing with every partner.
    const blame = plan.protocol === 'sglang' ? 'both' : 'decode';
    pair.fail(failure, blame);
    // A pair stopped first (the prefill failed or refused) keeps that cause and blame.
    throw new PairFailed(pairScope.stopped ?? failure, pair.blame ?? blame);
  }
  if (response.status >= 400) {
    // The decode server refused the request (overloaded, invalid): that is the client's answer,
    // and a prefill waiting for this partner would only wait for its own timeout. Unless the pair
    // was stopped meanwhile (the prefill refused it too): then that answer stands.
    if (pairScope.stopped !== undefined) throw legFailure(new Error('pair stopped'));
    pair.committed = true;
    pair.cancelPrefill(`the decode leg answered ${response.status}`, plan.prefill);
    return relay({ ...input, scope: pairScope }, attempt, response.status, decoded, decoded.body);
  }
  // Hold the client's response until the first byte: until then the pair can still be replaced.
  const chunks = decoded.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let first: IteratorResult<Buffer>;
  try {
    first = await chunks.next();
  } catch (err) {
    throw legFailure(err);
  }
  if (prefillAnswer !== undefined) {
    const prefilled = await prefillAnswer.catch((err: unknown) => ({ kind: 'fail', error: asGatewayError(err) }) as const);
    if (prefilled.kind === 'fail') throw legFailure(prefilled.error);
    if (prefilled.kind === 'refused') throw legFailure(new GatewayError('upstream_unavailable', 'refused by the prefill'));
  }
  if (pairScope.stopped !== undefined) throw legFailure(new Error('pair stopped'));
  // From here the pair stands: the prefill leg's late troubles no longer concern the client.
  pair.committed = true;
  return relay({ ...input, scope: pairScope }, attempt, response.status, decoded, prepend(first, chunks), (failure) => legError('decode', plan.decode, failure));
}

function request(input: ForwardInput, endpoint: Endpoint, body: Buffer | null, edits: ReturnType<ForwardInput['handle']['headersFor']>): Dispatcher.DispatchOptions {
  return { origin: endpoint.origin, path: input.target, method: (input.req.method ?? 'POST') as Dispatcher.HttpMethod, headers: pdLegRequestHeaders(input.req.headers, edits), body };
}

/** Reads a body whole, keeping at most `limit` bytes (the rest is read and discarded). */
async function readAll(body: AsyncIterable<Buffer>, limit = MAX_PREFILL_ANSWER_BYTES): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.length <= limit) parts.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(parts);
}

/** `: <message>` from an error body in any server shape (OpenAI nested or flat, `detail`, text), or ''. */
function reason(body: Buffer): string {
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

async function* prepend(first: IteratorResult<Buffer>, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (first.done === true) return;
  yield first.value;
  for (let next = await rest.next(); next.done !== true; next = await rest.next()) yield next.value;
}
