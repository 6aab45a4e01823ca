import type { Dispatcher } from 'undici';
import type { Endpoint } from '../core/endpoint.js';
import { asGatewayError, GatewayError } from '../core/errors.js';
import { handshakeTimeout, legError, type Decision, type Outcome, type PdPlan, type PrefillOutcome } from '../gateway/index.js';
import { decodeResponse } from './decode.js';
import { forward, relay, type ForwardInput } from './forward.js';
import { upstreamRequestHeaders } from './headers.js';
import { sendJson } from './respond.js';
import { RequestScope } from './scope.js';
import { UpstreamAttempt } from './upstream.js';
import { upstreamFailure } from './upstream-errors.js';
import type { Watched } from './watchdog.js';

/** A prefill answer is read whole up to this size (it is one token and KV parameters); the rest is discarded. */
const MAX_PREFILL_ANSWER_BYTES = 1024 * 1024;
/** Of a failed leg's error answer, this much is read for its message. */
const MAX_ERROR_MESSAGE_BYTES = 8 * 1024;

/** Which leg broke a pair: its endpoint is not tried again; `both` (the handshake) blames neither. */
type Blame = 'prefill' | 'decode' | 'both';

/** The pair failed before any byte reached the client: it may be retried with a fresh pair. */
class PairFailed extends Error {
  constructor(
    readonly error: GatewayError,
    readonly blame: Blame,
  ) {
    super(error.message);
  }
}

/** One prefill/decode pair's shared state: its scope (stopping it cancels both legs) and what stopped it. */
class Pair {
  readonly scope = new RequestScope();
  blame: Blame | undefined;
  /** The decode leg's first byte reached the client: the pair stands, whatever the prefill leg does now. */
  committed = false;

  fail(error: GatewayError, blame: Blame): void {
    if (this.scope.stopped !== undefined || this.committed) return;
    this.blame = blame;
    this.scope.stop(error);
  }
}

/**
 * A disaggregated request (issue 12; PROTOCOLS.md §g): its prefill and decode legs, the decode
 * answer streamed to the client. Each pair runs under its own scope, tied to the request's, so a
 * leg that fails (connect error, non-2xx, reset, a timeout, the KV handshake deadline) cancels
 * the other at once, and a client that leaves cancels both. The client's response starts only
 * with the decode leg's first byte, so until then a failed pair is retried once with a fresh
 * pair; after it, an SSE stream ends with one error event. The error names the leg that failed.
 */
export async function forwardPd(input: ForwardInput): Promise<Outcome> {
  let decision = input.decision;
  for (let pair = 0; ; pair++) {
    const plan = decision.pd;
    if (plan === undefined) return forward({ ...input, decision });
    try {
      return await runPair(input, decision, plan);
    } catch (err) {
      if (!(err instanceof PairFailed)) throw err;
      // The leg that failed is not tried again (and a decode failure counts against its health;
      // the prefill leg's was recorded when it ended). A handshake that never completed blames neither.
      if (err.blame === 'decode') input.handle.attemptFailed(err.error);
      if (err.blame === 'both') input.handle.avoid([plan.prefill, plan.decode]);
      if (pair > 0 || input.scope.stopped !== undefined) throw err.error;
      try {
        decision = input.handle.retryPair();
      } catch {
        throw err.error;
      }
    }
  }
}

/** One pair: SGLang sends both legs at once; vLLM runs the prefill, then the decode. */
async function runPair(input: ForwardInput, decision: Decision, plan: PdPlan): Promise<Outcome> {
  const pair = new Pair();
  const pairScope = pair.scope;
  // The client left, or the request was stopped: both legs end with it.
  const onRequestStop = (): void => pairScope.stop(input.scope.stopped ?? legError('decode', plan.decode, asGatewayError(new Error('stopped'))));
  input.scope.signal.addEventListener('abort', onRequestStop, { once: true });
  const watched: Watched[] = [];
  const watch = (w: Watched): void => {
    watched.push(w);
    input.watchdog.watch(w);
  };
  try {
    if (plan.protocol === 'sglang') {
      const prefill = sendPrefill(input, decision, plan, pair, watch);
      // Read later (or never, when the decode leg fails first): never an unhandled rejection.
      prefill.catch(() => undefined);
      const outcome = await sendDecode(input, decision, plan, plan.decodeBody ?? plan.prefillBody, pair, watch, plan.awaitPrefillAnswer ? prefill : undefined);
      await prefill.catch(() => undefined);
      return outcome;
    }
    const prefilled = await sendPrefill(input, decision, plan, pair, watch);
    if (prefilled.kind === 'refused') {
      sendJson(input.res, prefilled.status, JSON.parse(prefilled.body.toString('utf8')) as unknown, input.handle.id, input.closeConnection());
      return { status: prefilled.status, bytesOut: prefilled.body.length };
    }
    if (prefilled.kind === 'fail') throw new PairFailed(prefilled.error, 'prefill');
    return await sendDecode(input, decision, plan, prefilled.body ?? decision.body, pair, watch);
  } finally {
    input.scope.signal.removeEventListener('abort', onRequestStop);
    for (const w of watched) input.watchdog.unwatch(w);
    // Whatever is still out (a prefill answer still draining) is no longer needed.
    pairScope.stop(legError('prefill', plan.prefill, asGatewayError(new Error('no longer needed'))));
  }
}

/**
 * The prefill leg: sent, its answer read whole (bounded) and handed to the core, which says what
 * comes next. For SGLang a prefill that fails stops the pair (the decode leg waits for its KV).
 */
async function sendPrefill(input: ForwardInput, decision: Decision, plan: PdPlan, pair: Pair, watch: (w: Watched) => void): Promise<PrefillOutcome> {
  const { handle } = input;
  const pairScope = pair.scope;
  handle.dispatched(plan.prefill, 'prefill');
  // vLLM's prefill leg is never streamed; SGLang's is the client's own body.
  const streamed = plan.protocol === 'sglang' && decision.stream;
  const attempt = new UpstreamAttempt(plan.prefill, pairScope.signal, streamed);
  watch({ attempt, timeouts: decision.timeouts, deadline: undefined, scope: pairScope });
  let outcome: PrefillOutcome;
  try {
    input.dispatcher.dispatch(request(input, plan.prefill, plan.prefillBody, handle.headersFor(plan.prefillBody)), attempt);
    const response = await attempt.response;
    handle.prefillStarted();
    const body = await readAll(decodeResponse(response.headers, response.body).body);
    outcome = handle.prefillAnswered(response.status, body);
  } catch (err) {
    if (input.scope.stopped !== undefined) throw input.scope.stopped;
    // Stopped because the decode leg failed first, or the pair is over: not this leg's failure.
    if (pair.blame !== undefined || pair.committed || pairScope.stopped !== undefined) return { kind: 'decode', body: undefined };
    outcome = handle.prefillFailed(upstreamFailure(err, plan.prefill));
  }
  if (outcome.kind === 'fail') pair.fail(outcome.error, 'prefill');
  return outcome;
}

/**
 * The decode leg: the client's response starts only with its first body byte (the KV has
 * arrived then), which must come within the plan's handshake deadline; before it, any failure
 * of either leg fails the pair.
 */
async function sendDecode(
  input: ForwardInput,
  decision: Decision,
  plan: PdPlan,
  body: Buffer | undefined,
  pair: Pair,
  watch: (w: Watched) => void,
  /** Wait for the prefill's answer before the client's (its logprobs go in front of the decode's). */
  prefillAnswer?: Promise<PrefillOutcome>,
): Promise<Outcome> {
  const { handle } = input;
  const pairScope = pair.scope;
  handle.dispatched(plan.decode);
  const attempt = new UpstreamAttempt(plan.decode, pairScope.signal, decision.stream);
  const started = performance.now();
  watch({ attempt, timeouts: decision.timeouts, deadline: undefined, scope: pairScope, firstByte: { at: started + plan.firstByteDeadlineMs, error: () => handshakeTimeout(plan) } });
  const legFailure = (err: unknown): PairFailed => {
    const stopped = input.scope.stopped;
    if (stopped !== undefined) throw stopped;
    const cause = pairScope.stopped;
    // Stopped by the prefill leg's failure (already blamed) or by the watchdog: that is the cause.
    if (cause !== undefined) return new PairFailed(cause, pair.blame ?? (cause.code === 'kv_handshake_timeout' ? 'both' : 'decode'));
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
    pair.fail(failure, 'decode');
    throw new PairFailed(failure, 'decode');
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
  }
  // From here the pair stands: the prefill leg's late troubles no longer concern the client.
  pair.committed = true;
  return relay({ ...input, scope: pairScope }, attempt, response.status, decoded, prepend(first, chunks), (failure) => legError('decode', plan.decode, failure));
}

function request(input: ForwardInput, endpoint: Endpoint, body: Buffer | null, edits: ReturnType<ForwardInput['handle']['headersFor']>): Dispatcher.DispatchOptions {
  return { origin: endpoint.origin, path: input.req.url ?? '/', method: (input.req.method ?? 'POST') as Dispatcher.HttpMethod, headers: upstreamRequestHeaders(input.req.headers, edits), body };
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
