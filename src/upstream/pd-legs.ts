import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import { GatewayError } from '../core/errors.js';
import { PdRun, RequestScope, type Decision, type LegRequest, type Outcome, type PairStep, type PdPair, type RequestDeadline, type RequestHandle, type UpstreamTimeouts } from '../gateway/index.js';
import { UpstreamAttempt, type UpstreamResponse } from './attempt.js';
import { decodeResponse, type DecodedResponse } from './decode.js';
import { upstreamFailure } from './errors.js';
import { pdLegRequestHeaders } from './headers.js';
import type { Scope } from './scope.js';
import type { Watchdog, Watched } from './watchdog.js';

/** What the PD leg runner needs from its data plane (the proxy, a PD sidecar). */
export interface PdLegsInput {
  readonly handle: RequestHandle;
  readonly decision: Decision;
  /** The client's request: its method, target (path and query) and headers (filtered per leg). */
  readonly method: string;
  readonly target: string;
  readonly headers: IncomingHttpHeaders;
  readonly dispatcher: Dispatcher;
  readonly watchdog: Watchdog;
  /** The request's scope: stopping it (client gone, its deadline, shutdown) ends both legs. */
  readonly scope: Scope;
  /** Streams the decode leg's answer to the client under `scope` (the pair's); `name` words a failure mid-body. */
  readonly relay: (attempt: UpstreamAttempt, status: number, decoded: DecodedResponse, chunks: AsyncIterable<Buffer>, scope: Scope, name: (failure: GatewayError) => GatewayError) => Promise<Outcome>;
  /** Answers the client with `status` and this JSON body (a refusal). */
  readonly answer: (status: number, body: unknown) => void;
  /** Runs the request on one endpoint (the pair was not disaggregated), under the request's deadline. */
  readonly single: (decision: Decision, deadline: RequestDeadline | undefined) => Promise<Outcome>;
}

/** The pair failed before any byte reached the client: the machine may run a fresh one. */
class PairFailed extends Error {}

/** A machine step that ends the data plane's part of the pair by throwing. */
class Stop extends Error {
  constructor(readonly error: GatewayError) {
    super(error.message);
  }
}

/**
 * Carries a disaggregated request's bytes as the core's PD machine (gateway `PdRun`) directs:
 * undici dispatch of each leg it asks for (the prefill's answer read whole, bounded; the decode's
 * relayed), each leg watched for its timeouts, its events reported back. All policy (blame,
 * retry, grace, deadlines, refusals, logprob merge) is the machine's. Throws GatewayError for a
 * failure before the client's answer began.
 */
export async function runPd(input: PdLegsInput): Promise<Outcome> {
  const run = new PdRun(input.handle, input.decision, { requestStopped: () => input.scope.stopped });
  for (;;) {
    const pairScope = new RequestScope();
    const prefillScope = new RequestScope();
    const next = run.next({ stopPair: (e) => pairScope.stop(e), stopPrefill: (e) => prefillScope.stop(e) });
    if (next.kind === 'fail') throw next.error;
    if (next.kind === 'single') return input.single(next.decision, run.deadline);
    try {
      return await runPair(input, run.deadline, next.pair, pairScope, prefillScope);
    } catch (err) {
      if (err instanceof Stop) throw err.error;
      if (!(err instanceof PairFailed)) throw err;
      run.pairFailed(next.pair);
    }
  }
}

interface Legs {
  readonly input: PdLegsInput;
  readonly pair: PdPair;
  readonly pairScope: RequestScope;
  readonly prefillScope: RequestScope;
  readonly deadline: RequestDeadline | undefined;
  readonly timeouts: UpstreamTimeouts;
  /** Watches an attempt until the returned function is called (or the pair ends). */
  readonly watch: (w: Watched) => () => void;
}

async function runPair(input: PdLegsInput, deadline: RequestDeadline | undefined, pair: PdPair, pairScope: RequestScope, prefillScope: RequestScope): Promise<Outcome> {
  // The client left, or the request was stopped: both legs end with it.
  const onRequestStop = (): void => pair.requestStopped(input.scope.stopped);
  input.scope.onStop(onRequestStop);
  const watched = new Set<Watched>();
  const watch = (w: Watched): (() => void) => {
    watched.add(w);
    input.watchdog.watch(w);
    return () => {
      watched.delete(w);
      input.watchdog.unwatch(w);
    };
  };
  const legs: Legs = { input, pair, pairScope, prefillScope, deadline, timeouts: input.decision.timeouts, watch };
  try {
    const prefill = sendPrefill(legs, pair.prefill());
    if (pair.concurrent) {
      // Read later (or never, when the decode leg fails first): never an unhandled rejection.
      prefill.catch(() => undefined);
      const outcome = await sendDecode(legs, pair.decode(), prefill);
      // The decode endpoint is done; the request still waits (bounded) for the prefill's answer.
      await settledWithin(prefill, pair.decodeDone().graceMs);
      return outcome;
    }
    const step = await prefill;
    if (step.kind !== 'send') return settle(input, step);
    return await sendDecode(legs, step.leg, prefill);
  } finally {
    input.scope.offStop(onRequestStop);
    for (const w of watched) input.watchdog.unwatch(w);
    pair.end();
  }
}

/** A step that ends the pair for the data plane: an answer, a failure, a stop. */
function settle(input: PdLegsInput, step: PairStep): Outcome {
  if (step.kind === 'answer') {
    input.answer(step.status, step.body);
    return { status: step.status, bytesOut: step.raw.length };
  }
  if (step.kind === 'stopped') throw new Stop(step.error);
  if (step.kind === 'failed') throw new PairFailed('pair failed');
  throw new Error(`unexpected PD step ${step.kind}`);
}

/** Dispatches one leg under `scope`, watched; the first byte deadline counted from its dispatch. */
function dispatch(legs: Legs, leg: LegRequest, scope: RequestScope, stop: (error: GatewayError, whole: boolean) => void): { attempt: UpstreamAttempt; unwatch: () => void } {
  const { input } = legs;
  const attempt = new UpstreamAttempt(leg.endpoint, scope, leg.stream);
  const firstByte = leg.firstByte;
  const unwatch = legs.watch({
    attempt,
    timeouts: legs.timeouts,
    deadline: legs.deadline,
    scope,
    ...(firstByte === undefined ? {} : { firstByte: { at: attempt.startedAt + firstByte.withinMs, error: firstByte.error } }),
    stop,
  });
  const options: Dispatcher.DispatchOptions = { origin: leg.endpoint.origin, path: input.target, method: input.method as Dispatcher.HttpMethod, headers: pdLegRequestHeaders(input.headers, leg.headers), body: leg.body };
  input.dispatcher.dispatch(options, attempt);
  return { attempt, unwatch };
}

/** The prefill leg: sent, its answer read whole (bounded) and reported; resolves with the machine's next step. */
async function sendPrefill(legs: Legs, leg: LegRequest): Promise<PairStep> {
  const { input, pair } = legs;
  let unwatch: () => void = noop;
  try {
    const sent = dispatch(legs, leg, legs.prefillScope, (error, whole) => (whole ? input.scope.stop(error) : pair.timedOut('prefill', error)));
    unwatch = sent.unwatch;
    const response = await sent.attempt.response;
    pair.prefillHeaders();
    const body = await readAll(decodeResponse(response.headers, response.body).body, leg.readLimit);
    return pair.prefillAnswered(response.status, body, response.headers['retry-after']);
  } catch (err) {
    return pair.prefillFailed(upstreamFailure(err, leg.endpoint));
  } finally {
    unwatch();
  }
}

/** The decode leg: the client's answer starts only with its first body byte (the machine says when). */
async function sendDecode(legs: Legs, leg: LegRequest, prefill: Promise<PairStep>): Promise<Outcome> {
  const { input, pair, pairScope } = legs;
  let sent: { attempt: UpstreamAttempt; unwatch: () => void };
  let response: UpstreamResponse;
  try {
    sent = dispatch(legs, leg, pairScope, (error, whole) => (whole ? input.scope.stop(error) : pair.timedOut('decode', error)));
    response = await sent.attempt.response;
  } catch (err) {
    return settle(input, pair.decodeFailed(upstreamFailure(err, leg.endpoint)));
  }
  const decoded = decodeResponse(response.headers, response.body);
  let step = pair.decodeAnswered(response.status);
  let chunks: AsyncIterable<Buffer> = decoded.body;
  if (step.kind === 'read-error') {
    const said = await readAll(decoded.body, step.limit).catch(() => Buffer.alloc(0));
    step = pair.decodeErrorBody(response.status, said);
  } else if (step.kind === 'first-byte') {
    const rest = decoded.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    let first: IteratorResult<Buffer> | undefined;
    try {
      first = await rest.next();
    } catch (err) {
      step = pair.decodeFailed(upstreamFailure(err, leg.endpoint));
    }
    if (first !== undefined) {
      step = pair.decodeFirstByte();
      if (step.kind === 'await-prefill') {
        await prefill.catch(noop);
        step = pair.decodeFirstByte();
        if (step.kind === 'await-prefill') step = pair.decodeFailed(new GatewayError('upstream_unavailable', 'the prefill leg ended without an answer'));
      }
      chunks = prepend(first, rest);
    }
  }
  if (step.kind === 'relay') return input.relay(sent.attempt, response.status, decoded, chunks, pairScope, step.name);
  // The body is abandoned with the pair (its end aborts the exchange).
  return settle(input, step);
}

/** Waits for `p` to settle, at most `ms`. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.then(noop, noop), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function noop(): void {}

/** Reads a body whole, keeping at most `limit` bytes (the rest is read and discarded). */
async function readAll(body: AsyncIterable<Buffer>, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size + chunk.length <= limit) parts.push(chunk);
    size += chunk.length;
  }
  return Buffer.concat(parts);
}

async function* prepend(first: IteratorResult<Buffer>, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (first.done === true) return;
  yield first.value;
  for (let next = await rest.next(); next.done !== true; next = await rest.next()) yield next.value;
}
