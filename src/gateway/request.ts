import type { RouteRequest } from '../config/route-table.js';
import type { RuleConfig } from '../config/snapshot.js';
import type { Endpoint } from '../core/endpoint.js';
import { asGatewayError, GatewayError } from '../core/errors.js';
import type { HeaderEdit } from '../core/headers.js';
import type { Ticket } from '../flowcontrol/admission.js';
import { EXPECTED_CACHED_TOKENS, MAX_ATTEMPTS, type SchedulingResult } from '../scheduling/types.js';
import type { InferenceBody } from './body.js';
import { responseHeaderEdits, upstreamHeaderEdits } from './headers.js';
import type { Prepared } from './pipeline.js';
import { logRequest, recordRewrite } from './request-log.js';
import { ResponseBody } from './response-body.js';
import type { Runtime } from './runtime.js';
import { pdDecision, planPd, type PdPlan } from './pd.js';
import { answerShare, isServerFault, retryAfterMs } from './blame.js';
import { type Decision, type Leg, type Outcome, type RequestDeps, type RequestInit, type ResponsePlan } from './request-types.js';
import { bodyTooLarge } from './body-collector.js';
import { CLIENT_GONE_STATUS, isClientGone } from './client-gone.js';
import { poolRule } from './pool-entry.js';
import type { DecideOptions } from './subset.js';

export type { Decision, Leg, Outcome, RequestDeps, RequestInit, ResponsePlan } from './request-types.js';
import type { FailedPair, PdLog } from './request-log.js';
import type { PassiveHealth } from '../endpoints/passive-health.js';
import { DECODE_PROFILE, PD_DECISION, PREFILL_PROFILE } from '../scheduling/pd-keys.js';
import { pinnedPair } from './pd-pinned.js';

/** Set by RequestHandle's static block: the one way to its internals (see handleInternals). */
let internalsOf: (handle: RequestHandle) => HandleInternals;

interface Attempt {
  readonly endpoint: Endpoint;
  readonly leg: Leg;
  /** Prompt tokens counted as pending prefill on the endpoint until the first byte. */
  prefillTokens: number;
  /** Its endpoint's passive health already heard how it went (the request's end does not judge it again). */
  judged?: boolean;
  released: boolean;
  readonly dispatchedAt: number;
  /** ms from dispatch to the response headers. */
  headersMs?: number;
  /** performance.now() when its answer ended. */
  endedAt?: number;
}

/**
 * One request's life in the gateway core, whatever data plane carries it:
 *
 * ```
 * route(port, request)        → rule (body limit)               route_not_found 404
 *   | routePool(poolKey)      → rule (Envoy already routed)     pool_not_found 503
 * decide(body, signal, {only})→ Decision                        400 / 429 / 503 / 500 refusals
 * dispatched(endpoint)        per attempt: in-flight and pending-prefill accounting, plugins' preRequest
 * served(endpointKey)         Envoy's retry landed elsewhere: accounting moves to that endpoint
 * responseStarted(status, h)  → ResponsePlan                    plugins' responseHeaders
 * responseData(chunk)         → bytes for the client           first byte: TTFT, prefill done; usage read
 * responseEnd()               → held bytes, if any
 * finished(outcome) | failed(error, outcome)                     release, plugins' responseComplete,
 *                                                               metrics, one `Request Handled` line
 * ```
 *
 * Every accounting step lives here, so the standalone proxy and an Envoy ext_proc server account
 * identically. Exactly one of `finished` / `failed` must be called; later calls are ignored.
 */
export class RequestHandle {
  readonly id: string;
  readonly startedAt = performance.now();
  readonly #init: RequestInit;
  readonly #deps: RequestDeps;
  readonly #runtime: Runtime | undefined;
  #rule: RuleConfig | undefined;
  #parsed: InferenceBody | undefined;
  #prepared: Prepared | undefined;
  #result: SchedulingResult | undefined;
  #ticket: Ticket | undefined;
  #attempt: Attempt | undefined;
  #prefill: Attempt | undefined;
  #attempts = 0;
  #pd: PdPlan | undefined;
  /** A disaggregated request's run (pd-run.ts): its fallback, failed pairs and merged logprobs. */
  #pdFacts: PdFacts | undefined;
  readonly #failedEndpoints = new Set<Endpoint>();
  #body: ResponseBody | undefined;
  #upstreamStatus: number | undefined;
  /** The answer's `Retry-After`, in ms, when it named one. */
  #retryAfterMs: number | undefined;
  #ttftMs: number | undefined;
  #ended = false;
  /** The endpoint keys the data plane limited the choice to (DecideOptions.only). */
  #only: ReadonlySet<string> | undefined;
  /** A PD sidecar's pinned pair (decidePinned): the endpoint picker chose it; never scheduled again. */
  #pinned = false;

  static {
    internalsOf = (h) => h.#internals();
  }

  constructor(init: RequestInit, runtime: Runtime | undefined, deps: RequestDeps, id: string) {
    this.#init = init;
    this.#runtime = runtime;
    this.#deps = deps;
    this.id = id;
  }

  /**
   * The route rule for `port` and the request line; throws `route_not_found`. `body` (read up to
   * the port's `maxBodyBytes`) lets model-based routing match on the body's model; a body over
   * the matched rule's own limit is refused with `body_too_large`.
   */
  route(port: number, request: RouteRequest, body?: Buffer): RuleConfig {
    const runtime = this.#requireRuntime();
    const { rule, parsed } = this.#deps.pipeline.route(runtime, port, request, body, this.#deps.baseModelOf);
    this.#rule = rule;
    this.#parsed = parsed;
    if (body !== undefined && body.length > rule.bufferLimitBytes) throw bodyTooLarge(rule.bufferLimitBytes);
    return rule;
  }

  /**
   * The rule of a request Envoy already routed to the InferencePool `poolKey` (`namespace/name`),
   * for the endpoint picker: the pool is its only backend (its InferenceModels, rewrite rules,
   * criticality, admission and scheduling apply as in the proxy); no header modifiers and no
   * request timeout (Envoy's route owns those); its body limit is Gateway.poolBodyLimit(poolKey).
   * Throws `pool_not_found` (503) when the configuration holds no such pool, `no_ready_endpoint`
   * before any configuration is loaded.
   */
  routePool(poolKey: string): RuleConfig {
    const rule = poolRule(this.#requireRuntime(), poolKey, this.#deps.poolBodyLimit(poolKey));
    this.#rule = rule;
    this.#parsed = undefined;
    return rule;
  }

  /** The largest body a request on `port` may send (read no more before routing). */
  maxBodyBytes(port: number): number {
    return this.#runtime?.snapshot.listeners.get(port)?.maxBodyBytes ?? 0;
  }

  /**
   * Resolves the backend, parses the body, admits the request (it may wait in the pool's queue
   * until `signal` aborts; a function giving the signal is called only if the request queues)
   * and schedules it. Throws the refusal's GatewayError. `options.only`
   * limits the choice to those endpoint keys (subset.ts: empty or none eligible is 503
   * `no_ready_endpoint`); it holds for the request's retries too.
   */
  async decide(body: Buffer | undefined, signal: AbortSignal | (() => AbortSignal), options?: DecideOptions): Promise<Decision> {
    const runtime = this.#requireRuntime();
    const rule = this.#rule;
    if (rule === undefined) throw new Error('decide() before route()');
    this.#only = options?.only;
    const { pipeline } = this.#deps;
    const parsed = this.#parsed ?? pipeline.parseForChoice(rule, body);
    const prepared = pipeline.prepare(runtime, pipeline.backend(rule, parsed?.model, this.#deps.poolModels()), body, this.#init.headers, this.id, this.#init.path, parsed, false, this.#init.method);
    this.#prepared = prepared;
    if (prepared.rewrite !== undefined) recordRewrite(this.#deps, prepared);
    // Producers (the prompt's tokens for precise prefix scoring) work while the request queues.
    const data = pipeline.prepareData(prepared);
    this.#ticket = await pipeline.admit(prepared, signal);
    if (data !== undefined) await data;
    return this.#schedule(prepared, rule);
  }

  /**
   * A PD sidecar's entry (after `routePool`): the endpoint picker in front of it already admitted
   * and scheduled the request and prepared its body, so nothing is admitted, scheduled or
   * rewritten again (the body's model is the target as sent). `prefiller` is the request's
   * `x-prefiller-host-port`: the prefill it names is checked against the pool's prefill endpoints
   * (pinnedPrefill: never an open relay) and planned with `decode`, the sidecar's local decode
   * server (SGLang: bootstrap fields naming that prefill; vLLM: the prefill body); absent, or in a
   * pool whose PD protocol the gateway does not speak, the request runs on `decode` alone. A
   * failed pair is not retried on another pair (the picker chose this one). Throws GatewayError:
   * `invalid_header` (400), `prefill_not_allowed` (403), the body's 400s, `no_ready_endpoint`
   * (503) for a pool with no endpoint.
   */
  decidePinned(body: Buffer | undefined, prefiller: string | readonly string[] | undefined, decode: Endpoint): Decision {
    const runtime = this.#requireRuntime();
    const rule = this.#rule;
    if (rule === undefined) throw new Error('decidePinned() before routePool()');
    const { pipeline } = this.#deps;
    this.#pinned = true;
    this.#prepared = pipeline.prepare(runtime, pipeline.backend(rule), body, this.#init.headers, this.id, this.#init.path, undefined, true, this.#init.method);
    const decision = pinnedPair(this, prefiller, decode);
    this.#prepared.request.state.write(PD_DECISION, { disaggregated: decision.pd !== undefined, reason: 'pinned', uncachedOnDecode: 0 });
    return decision;
  }

  #schedule(prepared: Prepared, rule: RuleConfig, exclude?: ReadonlySet<Endpoint>): Decision {
    const scheduledAt = performance.now();
    try {
      this.#result = this.#deps.pipeline.schedule(prepared, exclude, this.#only);
    } finally {
      this.#deps.metrics.observeScheduling(prepared.backendName, (performance.now() - scheduledAt) / 1000);
    }
    // The body's per-runtime edits are decided by the endpoints that may serve it (their dialects).
    const chosen = this.#deps.pipeline.forEndpoints(prepared, mayServe(this.#result));
    this.#prepared = chosen;
    this.#pd = planPd(chosen, this.#result);
    return this.#decision(chosen, rule, this.#pd === undefined ? this.#result.primary.endpoints.slice(0, MAX_ATTEMPTS) : [this.#pd.decode]);
  }

  /** Where the request goes: `endpoints`, or the current PD plan's pair. */
  #decision(prepared: Prepared, rule: RuleConfig, endpoints: readonly Endpoint[]): Decision {
    const body = this.#pd?.decodeBody ?? prepared.body;
    return {
      endpoints,
      body,
      headers: upstreamHeaderEdits(this.#init.headers, { requestId: this.id, clientAddress: this.#init.clientAddress, bodyLength: body?.length, modifier: rule.requestHeaders, forwarder: this.#init.forwarder }),
      stream: prepared.stream,
      timeout: rule.requestTimeoutMs === undefined ? undefined : { ms: rule.requestTimeoutMs, setting: rule.requestTimeoutSetting ?? 'request timeout' },
      timeouts: this.#deps.timeouts,
      pd: this.#pd,
    };
  }

  /** A failure without an answer: counts against `endpoint` only when it is evidence (blame.ts). */
  #judgeFailure(endpoint: Endpoint, code: string): void {
    if (isServerFault(code)) this.#deps.passiveHealth.failed(endpoint, code);
  }

  /**
   * An attempt starts on `endpoint`: it now carries this request's load (in flight, and its prompt
   * as pending prefill, except on a disaggregated request's decode leg, whose prompt the prefill
   * leg computes). Ends any earlier attempt of the same leg.
   */
  dispatched(endpoint: Endpoint, leg: Leg = 'main'): void {
    this.#release(leg);
    const prepared = this.#prepared;
    if (prepared === undefined) throw new Error('dispatched() before decide()');
    const tokens = prepared.request.promptTokens;
    const cached = prepared.request.state.read(EXPECTED_CACHED_TOKENS)?.get(endpoint) ?? 0;
    const computesPrompt = leg === 'prefill' || this.#pd === undefined || this.#pdFacts?.fallback !== undefined;
    const attempt: Attempt = { endpoint, leg, prefillTokens: computesPrompt ? Math.max(0, tokens - cached) : 0, released: false, dispatchedAt: performance.now() };
    if (leg === 'prefill') this.#prefill = attempt;
    else this.#attempt = attempt;
    // Attempts count what answers the client: a pair is one attempt (its prefill leg is not another).
    if (leg !== 'prefill') this.#attempts++;
    endpoint.acquire(prepared.targetModel ?? '', tokens);
    endpoint.pendingPrefillTokens += attempt.prefillTokens;
    const profile = leg === 'prefill' ? PREFILL_PROFILE : (this.#result?.primaryProfile ?? '');
    for (const c of prepared.backend.controls.preRequest) c.preRequest?.(prepared.request, endpoint, profile);
    // The endpoint now carries this request's load: the next queued request may be decided.
    this.#ticket?.done();
  }

  /**
   * The data plane learned that `endpointKey` (`ip:port`) served the request, not the endpoint it
   * dispatched to (Envoy reports it after its own retries: `x-gateway-destination-endpoint-served`).
   * From now on the request's accounting follows that endpoint: the dispatched one is released
   * (in flight, pending prefill) without being judged (the report says nothing of why), the served
   * one carries the load until the end, and its passive health, the plugins' `responseComplete`
   * (the prefix index) and the log line name it. The same endpoint, a key that is no endpoint of
   * the request's pool, a call before `dispatched` or after the end: ignored (the key comes from
   * outside and is not trusted to name anything).
   */
  served(endpointKey: string): void {
    const current = this.#attempt;
    const prepared = this.#prepared;
    if (this.#ended || current === undefined || prepared === undefined || current.endpoint.key === endpointKey) return;
    const endpoint = prepared.backend.members.endpoints.find((e) => e.key === endpointKey);
    if (endpoint === undefined) return;
    // Envoy's retry is not another attempt of ours: the count, the times and the prompt still
    // pending (none once the first byte came) move over as they are.
    const pending = current.prefillTokens;
    this.#release('main');
    const moved: Attempt = { endpoint, leg: 'main', prefillTokens: pending, released: false, dispatchedAt: current.dispatchedAt };
    if (current.headersMs !== undefined) moved.headersMs = current.headersMs;
    this.#attempt = moved;
    endpoint.acquire(prepared.targetModel ?? '', prepared.request.promptTokens);
    endpoint.pendingPrefillTokens += pending;
    // The served endpoint computed the prompt: the plugins' indexes (prefix) learn it of that one.
    const profile = this.#result?.primaryProfile ?? '';
    for (const c of prepared.backend.controls.preRequest) c.preRequest?.(prepared.request, endpoint, profile);
  }

  /**
   * The current attempt failed before any response: released, and judged by its endpoint's
   * passive health when the failure is evidence against it (refused, reset, timed out; never a
   * request the gateway could not send). The data plane may then dispatch a fallback.
   */
  attemptFailed(error: unknown, leg: Leg = 'main'): void {
    const a = leg === 'prefill' ? this.#prefill : this.#attempt;
    if (a !== undefined && !a.released) {
      this.#judgeFailure(a.endpoint, asGatewayError(error).code);
      this.#failedEndpoints.add(a.endpoint);
      a.judged = true;
    }
    this.#release(leg);
  }

  /**
   * The upstream's response headers arrived; returns the header edits and whether it streams.
   * Sets up what the body goes through (response-body.ts): error answers made OpenAI-shaped,
   * usage read, the gateway's usage event removed, the client's model name restored.
   */
  responseStarted(status: number, headers: Readonly<Record<string, string | string[] | undefined>>): ResponsePlan {
    const prepared = this.#prepared;
    this.#upstreamStatus = status;
    this.#retryAfterMs = status === 429 || status === 503 ? retryAfterMs(headers['retry-after']) : undefined;
    const contentType = String(headers['content-type'] ?? '');
    const sse = contentType.includes('text/event-stream');
    const edits = responseHeaderEdits(this.id, this.#rule?.responseHeaders ?? null);
    if (prepared === undefined || this.#attempt === undefined) return { headers: edits, sse };
    this.#attempt.headersMs ??= performance.now() - this.#attempt.dispatchedAt;
    for (const c of prepared.backend.controls.responseHeaders) c.responseHeaders?.(prepared.request, this.#attempt.endpoint, status);
    const body = new ResponseBody(prepared, status, sse, this.#pdFacts?.inputLogprobs);
    this.#body = body;
    if (body.changesLength) edits.push({ op: 'remove', name: 'content-length' });
    if (body.normalizesError) edits.push({ op: 'set', name: 'content-type', value: 'application/json' });
    return { headers: edits, sse };
  }

  /** A response body chunk from upstream; returns the bytes to send the client (maybe fewer). */
  responseData(chunk: Buffer): Buffer {
    const first = this.#ttftMs === undefined && chunk.length > 0;
    if (first) this.firstByte();
    return this.#body === undefined ? chunk : this.#body.push(chunk, first);
  }

  /** The first response byte arrived: TTFT, and the endpoint's prefill for this request is over. */
  firstByte(): void {
    if (this.#ttftMs !== undefined) return;
    this.#ttftMs = performance.now() - this.startedAt;
    this.#body?.started(this.startedAt + this.#ttftMs);
    this.#endPrefill();
  }

  /** True once an SSE answer's `data: [DONE]` went to the client: its answer is whole. */
  get streamDone(): boolean {
    return this.#body?.done ?? false;
  }

  /** The upstream body ended; returns bytes held back until now (none: undefined). */
  responseEnd(): Buffer | undefined {
    return this.#body?.end();
  }

  /** The request is over: the client got `outcome.status`. */
  finished(outcome: Outcome): void {
    this.#end(undefined, outcome);
  }

  /** The request failed with `error`; `outcome` when part of a response was already sent. */
  failed(error: unknown, outcome?: Partial<Outcome>): void {
    this.#end(asGatewayError(error), outcome);
  }

  /** The prepared request (after `decide`), for data planes that need its model or stream flag. */
  get prepared(): Prepared | undefined {
    return this.#prepared;
  }

  /** What the PD machine drives (see HandleInternals); reached through `handleInternals`, not the data plane. */
  #internals(): HandleInternals {
    return {
      prepared: this.#prepared,
      passiveHealth: this.#deps.passiveHealth,
      attachPd: (facts) => {
        this.#pdFacts = facts;
      },
      reschedule: (exclude) => {
        const prepared = this.#prepared;
        const rule = this.#rule;
        if (prepared === undefined || rule === undefined) throw new Error('reschedule() before decide()');
        // The endpoint picker chose a pinned pair: no other is this request's to take.
        if (this.#pinned) throw new GatewayError('no_ready_endpoint', 'a pinned prefill/decode pair is not replaced');
        this.#release('main');
        this.#release('prefill');
        this.#prefill = undefined;
        return this.#schedule(prepared, rule, new Set([...this.#failedEndpoints, ...exclude]));
      },
      headersFor: (body) => upstreamHeaderEdits(this.#init.headers, { requestId: this.id, clientAddress: this.#init.clientAddress, bodyLength: body.length, modifier: this.#rule?.requestHeaders ?? null, forwarder: this.#init.forwarder }),
      legHeaders: () => {
        const a = this.#prefill;
        if (a !== undefined && a.headersMs === undefined) a.headersMs = performance.now() - a.dispatchedAt;
      },
      endPrefill: (judge) => {
        const a = this.#prefill;
        if (a === undefined || a.endedAt !== undefined) return;
        a.endedAt = performance.now();
        judge?.(a.endpoint);
        this.#release('prefill');
      },
      endDecode: (code) => {
        const d = this.#attempt;
        if (d !== undefined && code !== undefined && !d.released && d.judged !== true) this.#judgeFailure(d.endpoint, code);
        // Released judged: the request's end must not judge the decode endpoint again.
        if (d !== undefined) d.judged = true;
        this.#release('main');
      },
      pin: (decode, plan) => {
        const prepared = this.#prepared;
        const rule = this.#rule;
        if (prepared === undefined || rule === undefined) throw new Error('pin() before decide()');
        this.#pd = plan;
        return this.#decision(prepared, rule, [decode]);
      },
      release: (leg) => this.#release(leg),
      judgeFailure: (endpoint, code) => this.#judgeFailure(endpoint, code),
    };
  }

  #requireRuntime(): Runtime {
    if (this.#runtime === undefined) throw new GatewayError('no_ready_endpoint', 'the gateway has no configuration loaded yet');
    return this.#runtime;
  }

  #endPrefill(a: Attempt | undefined = this.#attempt): void {
    if (a === undefined || a.prefillTokens === 0) return;
    a.endpoint.pendingPrefillTokens -= a.prefillTokens;
    a.prefillTokens = 0;
  }

  #release(leg: Leg = 'main'): void {
    const a = leg === 'prefill' ? this.#prefill : this.#attempt;
    const prepared = this.#prepared;
    if (a === undefined || a.released || prepared === undefined) return;
    a.released = true;
    this.#endPrefill(a);
    a.endpoint.release(prepared.targetModel ?? '', prepared.request.promptTokens);
    if (prepared.backend.kind === 'pool') prepared.backend.gate.wake();
  }

  /**
   * The attempt's endpoint answered, or failed in a way that counts against it: a failure that is
   * evidence (a reset or timeout mid-answer) wins over the status it had sent; otherwise the
   * status is judged (whoever ended the exchange: a 429 still says the server is full); a request
   * that never got an answer for any other reason (the client left, the gateway refused) judges
   * no one.
   */
  #recordHealth(endpoint: Endpoint | undefined, code: string | undefined): void {
    if (endpoint === undefined) return;
    if (isServerFault(code)) this.#deps.passiveHealth.failed(endpoint, code as string);
    else if (this.#upstreamStatus !== undefined) {
      const share = answerShare(this.#upstreamStatus, endpoint, this.#prepared?.targetModel, isClientGone(code));
      this.#deps.passiveHealth.answered(endpoint, this.#upstreamStatus, this.#retryAfterMs, share);
    }
  }

  /** The prefill/decode fields of the log line: pods and roles, the decision, per-leg times. */
  #pdLog(): PdLog | undefined {
    const decision = this.#prepared === undefined ? undefined : pdDecision(this.#prepared);
    if (decision === undefined) return undefined;
    const p = this.#prefill;
    const d = this.#attempt;
    const fallback = this.#pdFacts?.fallback;
    const failedPairs = this.#pdFacts?.failedPairs ?? [];
    const decodeFirstByteAt = this.#ttftMs === undefined ? undefined : this.startedAt + this.#ttftMs;
    return {
      disaggregated: decision.disaggregated && fallback === undefined,
      reason: fallback === undefined ? decision.reason : 'prefill-fallback',
      ...(fallback === undefined ? {} : { fallback: fallback }),
      uncachedOnDecode: decision.uncachedOnDecode,
      ...(p === undefined ? {} : { prefillPod: p.endpoint.podName, prefillRole: p.endpoint.role, prefillHeadersMs: p.headersMs }),
      ...(d === undefined ? {} : { decodePod: d.endpoint.podName, decodeRole: d.endpoint.role, decodeHeadersMs: d.headersMs }),
      // SGLang: the decode's first token waits for the KV after the prefill finished; vLLM: the decode
      // leg starts after it, so its time to first byte is the wait.
      // Only a stream's first byte says when the KV arrived (an unstreamed answer comes whole at the
      // end), and only a decode that read a prefill's KV waited for one.
      ...(failedPairs.length === 0 ? {} : { failedPairs }),
      ...(p?.endedAt === undefined || decodeFirstByteAt === undefined || this.#prepared?.stream !== true || fallback !== undefined
        ? {}
        : { kvTransferWaitMs: Math.max(0, decodeFirstByteAt - Math.max(p.endedAt, d?.dispatchedAt ?? 0)) }),
    };
  }

  #end(failure: GatewayError | undefined, outcome: Partial<Outcome> | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#ticket?.done();
    // A prefill leg still out when the request ends was cancelled by the data plane: released, not judged.
    this.#release('prefill');
    this.#release();
    const prepared = this.#prepared;
    const endpoint = this.#attempt?.endpoint;
    const interrupted = isClientGone(failure) ? 'client_gone' : outcome?.interrupted;
    // 499 (nginx's convention) when the client left before the response was complete.
    const status = isClientGone(interrupted) ? CLIENT_GONE_STATUS : (outcome?.status ?? failure?.status ?? this.#upstreamStatus ?? 0);
    const complete = failure === undefined && interrupted === undefined;
    if (this.#attempt?.judged !== true) this.#recordHealth(endpoint, failure?.code ?? interrupted);
    if (prepared !== undefined && endpoint !== undefined) {
      const response = { status: this.#upstreamStatus, complete, text: complete ? this.#body?.text : undefined };
      for (const c of prepared.backend.controls.responseComplete) c.responseComplete?.(prepared.request, endpoint, response);
    }
    if (failure?.code === 'internal_error') this.#deps.logger.error({ requestId: this.id, err: failure.cause }, 'internal error');
    logRequest(this.#deps, {
      requestId: this.id,
      init: this.#init,
      rule: this.#rule,
      prepared,
      result: this.#result,
      endpoint,
      // A request that ended at its prefill leg (a vLLM refusal) still made one attempt.
      attempts: Math.max(this.#attempts, this.#prefill === undefined ? 0 : 1),
      queueWaitMs: this.#ticket?.waitedMs,
      ttftMs: this.#ttftMs,
      durationMs: performance.now() - this.startedAt,
      status,
      code: failure?.code ?? interrupted,
      detail: failure?.message ?? outcome?.detail,
      usage: this.#body?.usage,
      bytesOut: outcome?.bytesOut ?? 0,
      pd: this.#pdLog(),
      ...(this.#body?.gaps === undefined || this.#body.gaps.length === 0 ? {} : { itlS: this.#body.gaps }),
    });
  }
}

/**
 * A disaggregated request's facts kept by its run (pd-run.ts) and read by the handle for the
 * answer's body and the log line.
 */
export interface PdFacts {
  /** vLLM: why the decode endpoint ran the whole request alone; undefined while disaggregated. */
  fallback: string | undefined;
  /** SGLang with logprobs asked: the prefill's input-token logprobs, merged into the decode answer. */
  inputLogprobs: unknown[] | undefined;
  /** Pairs that failed before any byte reached the client (at most MAX_ATTEMPTS). */
  readonly failedPairs: FailedPair[];
}

/**
 * The handle's accounting as the PD machine (pd-run.ts) drives it: not part of the data planes'
 * door (index.ts does not export `handleInternals`), so a data plane reports events to the
 * machine and never accounts a leg itself.
 */
export interface HandleInternals {
  readonly prepared: Prepared | undefined;
  readonly passiveHealth: PassiveHealth;
  attachPd(facts: PdFacts): void;
  /** Both legs released, the prefill forgotten; schedules again without `exclude` and every endpoint that failed this request. Throws the scheduler's refusal. */
  reschedule(exclude: ReadonlySet<Endpoint>): Decision;
  /** The request's upstream header edits for a body of its own (a PD leg's: its own length). */
  headersFor(body: Buffer): readonly HeaderEdit[];
  /** The prefill leg's response headers arrived. */
  legHeaders(): void;
  /** The prefill leg's exchange ended (once): `judge` hears its endpoint, then it is released. */
  endPrefill(judge?: (endpoint: Endpoint) => void): void;
  /** The decode attempt ends unanswered: judged with `code` (when given, evidence, and not judged before), marked judged, released. */
  endDecode(code?: string): void;
  /** The request runs on `decode`, as the pair `plan` when given (a PD sidecar's pinned pair: pd-pinned.ts). */
  pin(decode: Endpoint, plan: PdPlan | undefined): Decision;
  release(leg: Leg): void;
  /** A failure with `code` counts against `endpoint` when it is evidence (blame.ts). */
  judgeFailure(endpoint: Endpoint, code: string): void;
}

/** The internals of `handle`, for the PD machine in this layer. */
export function handleInternals(handle: RequestHandle): HandleInternals {
  return internalsOf(handle);
}

/**
 * The endpoints a scheduling result may send the request to: the primary profile's first
 * MAX_ATTEMPTS (the endpoint and its fallbacks) and a prefill/decode pair's two.
 */
function mayServe(result: SchedulingResult): Endpoint[] {
  const out = result.primary.endpoints.slice(0, MAX_ATTEMPTS);
  for (const name of [PREFILL_PROFILE, DECODE_PROFILE]) {
    const e = result.profiles.get(name)?.endpoints[0];
    if (e !== undefined && !out.includes(e)) out.push(e);
  }
  return out;
}
