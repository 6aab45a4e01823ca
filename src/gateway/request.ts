import type { RouteRequest } from '../config/route-table.js';
import type { RuleConfig } from '../config/snapshot.js';
import type { Endpoint } from '../core/endpoint.js';
import { asGatewayError, GatewayError, type ErrorCode } from '../core/errors.js';
import type { HeaderEdit } from '../core/headers.js';
import type { PassiveHealth } from '../endpoints/passive-health.js';
import type { Ticket } from '../flowcontrol/admission.js';
import type { Logger } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { EXPECTED_CACHED_TOKENS, MAX_ATTEMPTS, type SchedulingResult } from '../scheduling/types.js';
import type { InferenceBody } from './body.js';
import { ErrorBodyNormalizer } from './error-body.js';
import { responseHeaderEdits, upstreamHeaderEdits } from './headers.js';
import { ModelRenamer } from './model-rename.js';
import type { Pipeline, Prepared } from './pipeline.js';
import { logRequest } from './request-log.js';
import { ResponseObserver, type Usage } from './response-observer.js';
import type { Runtime } from './runtime.js';
import type { UpstreamTimeouts } from './timeouts.js';

/** What a data plane knows when a request arrives. */
export interface RequestInit {
  /** The client's `x-request-id`, if it sent one. */
  readonly requestId?: string;
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly clientAddress?: string;
  /** The listener port, for the log line. */
  readonly port?: number;
}

/** Where and how to send a request: the endpoints to try in order, the body and headers. */
export interface Decision {
  /** Primary first, then fallbacks for a retry; at most MAX_ATTEMPTS; never empty. */
  readonly endpoints: readonly Endpoint[];
  /** The body to send (model rewritten, usage requested); undefined for a bodyless request. */
  readonly body: Buffer | undefined;
  /** Changes to the client's headers for the upstream request. */
  readonly headers: readonly HeaderEdit[];
  /** The client asked for an SSE stream. */
  readonly stream: boolean;
  /** Whole-request deadline, and the setting it comes from (for the error message). */
  readonly timeout: { readonly ms: number; readonly setting: string } | undefined;
  /** How long to wait for the model server, by phase. */
  readonly timeouts: UpstreamTimeouts;
}

/** What the data plane should do with the response it is about to send. */
export interface ResponsePlan {
  /** Changes to the upstream's response headers for the client. */
  readonly headers: readonly HeaderEdit[];
  /** The response is an SSE stream (an error after it started becomes an SSE error event). */
  readonly sse: boolean;
}

/** How the request ended, as the data plane saw it. */
export interface Outcome {
  /** The status the client got (or would have got: the data plane's own view). */
  readonly status: number;
  /** Bytes sent to the client. */
  readonly bytesOut: number;
  /** Set when the response was cut short after it started (client gone, upstream reset, timeout). */
  readonly interrupted?: ErrorCode;
}

/** What the gateway core needs from its owner to run requests. */
export interface RequestDeps {
  readonly pipeline: Pipeline;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly passiveHealth: PassiveHealth;
  readonly timeouts: UpstreamTimeouts;
  /** The base model of a LoRA adapter, where the pods' model lists say. */
  readonly baseModelOf: (model: string) => string | undefined;
  /** Whether a model name may become a metric label (see Gateway.knownModel). */
  readonly knownModel: (model: string) => boolean;
}

/** Failures that count against an endpoint's passive health: it did not answer properly. */
const ENDPOINT_FAILURES: ReadonlySet<string> = new Set(['upstream_unavailable', 'upstream_reset', 'upstream_timeout']);

interface Attempt {
  readonly endpoint: Endpoint;
  /** Prompt tokens counted as pending prefill on the endpoint until the first byte. */
  prefillTokens: number;
  released: boolean;
}

/**
 * One request's life in the gateway core, whatever data plane carries it:
 *
 * ```
 * route(port, request)        → rule (body limit)               route_not_found 404
 * decide(body, signal)        → Decision                        400 / 429 / 503 / 500 refusals
 * dispatched(endpoint)        per attempt: in-flight and pending-prefill accounting, plugins' preRequest
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
  #attempts = 0;
  #observer: ResponseObserver | undefined;
  #errorBody: ErrorBodyNormalizer | undefined;
  #renamer: ModelRenamer | undefined;
  #upstreamStatus: number | undefined;
  #ttftMs: number | undefined;
  #usage: Usage | undefined;
  #ended = false;

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

  /** The largest body a request on `port` may send (read no more before routing). */
  maxBodyBytes(port: number): number {
    return this.#runtime?.snapshot.listeners.get(port)?.maxBodyBytes ?? 0;
  }

  /**
   * Resolves the backend, parses the body, admits the request (it may wait in the pool's queue
   * until `signal` aborts) and schedules it. Throws the refusal's GatewayError.
   */
  async decide(body: Buffer | undefined, signal: AbortSignal): Promise<Decision> {
    const runtime = this.#requireRuntime();
    const rule = this.#rule;
    if (rule === undefined) throw new Error('decide() before route()');
    const { pipeline, metrics } = this.#deps;
    const prepared = pipeline.prepare(runtime, pipeline.backend(rule), body, this.#init.headers, this.id, this.#init.path, this.#parsed);
    this.#prepared = prepared;
    this.#ticket = await pipeline.admit(prepared, signal);
    const scheduledAt = performance.now();
    try {
      this.#result = pipeline.schedule(prepared);
    } finally {
      metrics.observeScheduling(prepared.backendName, (performance.now() - scheduledAt) / 1000);
    }
    return {
      endpoints: this.#result.primary.endpoints.slice(0, MAX_ATTEMPTS),
      body: prepared.body,
      headers: upstreamHeaderEdits(this.#init.headers, { requestId: this.id, clientAddress: this.#init.clientAddress, bodyLength: prepared.body?.length, modifier: rule.requestHeaders }),
      stream: prepared.stream,
      timeout: rule.requestTimeoutMs === undefined ? undefined : { ms: rule.requestTimeoutMs, setting: rule.requestTimeoutSetting ?? 'request timeout' },
      timeouts: this.#deps.timeouts,
    };
  }

  /** An attempt starts on `endpoint`: it now carries this request's load. Ends any earlier attempt. */
  dispatched(endpoint: Endpoint): void {
    this.#release();
    const prepared = this.#prepared;
    if (prepared === undefined) throw new Error('dispatched() before decide()');
    const tokens = prepared.request.promptTokens;
    const cached = prepared.request.state.read(EXPECTED_CACHED_TOKENS)?.get(endpoint) ?? 0;
    const attempt: Attempt = { endpoint, prefillTokens: Math.max(0, tokens - cached), released: false };
    this.#attempt = attempt;
    this.#attempts++;
    endpoint.acquire(prepared.targetModel ?? '', tokens);
    endpoint.pendingPrefillTokens += attempt.prefillTokens;
    const profile = this.#result?.primaryProfile ?? '';
    for (const c of prepared.backend.controls.preRequest) c.preRequest?.(prepared.request, endpoint, profile);
    // The endpoint now carries this request's load: the next queued request may be decided.
    this.#ticket?.done();
  }

  /**
   * The current attempt failed before any response (refused, reset, timed out): it counts against
   * the endpoint's passive health and is released; the data plane may then dispatch a fallback.
   */
  attemptFailed(error: unknown): void {
    const a = this.#attempt;
    if (a !== undefined && !a.released) this.#deps.passiveHealth.failed(a.endpoint, asGatewayError(error).code);
    this.#release();
  }

  /**
   * The upstream's response headers arrived; returns the header edits and whether it streams.
   * Sets up what the body goes through: for a pool, an error answer becomes OpenAI-shaped; a
   * success is read for usage (the usage event the gateway asked for is removed) and, when the
   * model was rewritten, gets the client's model name back.
   */
  responseStarted(status: number, headers: Readonly<Record<string, string | string[] | undefined>>): ResponsePlan {
    const prepared = this.#prepared;
    this.#upstreamStatus = status;
    const contentType = String(headers['content-type'] ?? '');
    const sse = contentType.includes('text/event-stream');
    const edits = responseHeaderEdits(this.id, this.#rule?.responseHeaders ?? null);
    if (prepared === undefined || this.#attempt === undefined) return { headers: edits, sse };
    for (const c of prepared.backend.controls.responseHeaders) c.responseHeaders?.(prepared.request, this.#attempt.endpoint, status);
    const ok = status >= 200 && status < 300;
    if (!ok) {
      // Services are plain proxying; model servers' own error shapes become OpenAI's.
      if (prepared.backend.kind === 'pool' && !sse) {
        this.#errorBody = new ErrorBodyNormalizer(status);
        edits.push({ op: 'remove', name: 'content-length' }, { op: 'set', name: 'content-type', value: 'application/json' });
      }
      return { headers: edits, sse };
    }
    const stripUsage = sse && prepared.stripUsage;
    this.#observer = new ResponseObserver({ sse, stripUsage, collectText: prepared.backend.controls.needsText, countChunks: sse && prepared.countTokens });
    const renamed = prepared.model !== undefined && prepared.targetModel !== undefined && prepared.model !== prepared.targetModel;
    if (renamed) this.#renamer = new ModelRenamer(prepared.targetModel as string, prepared.model as string);
    // Stripping the usage event or renaming the model changes the length: the body goes chunked.
    if (stripUsage || renamed) edits.push({ op: 'remove', name: 'content-length' });
    return { headers: edits, sse };
  }

  /** A response body chunk from upstream; returns the bytes to send the client (maybe fewer). */
  responseData(chunk: Buffer): Buffer {
    if (this.#ttftMs === undefined && chunk.length > 0) this.firstByte();
    if (this.#errorBody !== undefined) return this.#errorBody.push(chunk);
    const observed = this.#observer === undefined ? chunk : this.#observer.push(chunk);
    return this.#renamer === undefined || observed.length === 0 ? observed : this.#renamer.push(observed);
  }

  /** The first response byte arrived: TTFT, and the endpoint's prefill for this request is over. */
  firstByte(): void {
    if (this.#ttftMs !== undefined) return;
    this.#ttftMs = performance.now() - this.startedAt;
    this.#endPrefill();
  }

  /** The upstream body ended; returns bytes held back until now (none: undefined). */
  responseEnd(): Buffer | undefined {
    if (this.#errorBody !== undefined) return this.#errorBody.end();
    const observer = this.#observer;
    const rest = observer?.end();
    this.#usage = observer?.usage;
    if (observer !== undefined && this.#usage === undefined && this.#prepared?.countTokens === true) {
      // No usage event (the runtime cannot be asked for one): the gateway's own count.
      this.#usage = { promptTokens: this.#prepared.request.promptTokens, completionTokens: observer.chunks, cachedTokens: undefined, estimated: true };
    }
    if (this.#renamer === undefined) return rest;
    const parts = [rest === undefined ? EMPTY : this.#renamer.push(rest), this.#renamer.end()];
    const out = Buffer.concat(parts);
    return out.length === 0 ? undefined : out;
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

  #requireRuntime(): Runtime {
    if (this.#runtime === undefined) throw new GatewayError('no_ready_endpoint', 'the gateway has no configuration loaded yet');
    return this.#runtime;
  }

  #endPrefill(): void {
    const a = this.#attempt;
    if (a === undefined || a.prefillTokens === 0) return;
    a.endpoint.pendingPrefillTokens -= a.prefillTokens;
    a.prefillTokens = 0;
  }

  #release(): void {
    const a = this.#attempt;
    const prepared = this.#prepared;
    if (a === undefined || a.released || prepared === undefined) return;
    a.released = true;
    this.#endPrefill();
    a.endpoint.release(prepared.targetModel ?? '', prepared.request.promptTokens);
    if (prepared.backend.kind === 'pool') prepared.backend.gate.wake();
  }

  /** The attempt's endpoint answered, or failed in a way that counts against it. */
  #recordHealth(endpoint: Endpoint | undefined, code: string | undefined): void {
    if (endpoint === undefined || code === 'client_gone') return;
    if (code !== undefined && ENDPOINT_FAILURES.has(code)) this.#deps.passiveHealth.failed(endpoint, code);
    else if (this.#upstreamStatus !== undefined && this.#upstreamStatus >= 500) this.#deps.passiveHealth.failed(endpoint, `status ${this.#upstreamStatus}`);
    else if (this.#upstreamStatus !== undefined) this.#deps.passiveHealth.succeeded(endpoint);
  }

  #end(failure: GatewayError | undefined, outcome: Partial<Outcome> | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#ticket?.done();
    this.#release();
    const prepared = this.#prepared;
    const endpoint = this.#attempt?.endpoint;
    const interrupted = failure?.code === 'client_gone' ? 'client_gone' : outcome?.interrupted;
    // 499 (nginx's convention) when the client left before the response was complete.
    const status = interrupted === 'client_gone' ? 499 : (outcome?.status ?? failure?.status ?? this.#upstreamStatus ?? 0);
    const complete = failure === undefined && interrupted === undefined;
    this.#recordHealth(endpoint, failure?.code ?? interrupted);
    if (prepared !== undefined && endpoint !== undefined) {
      const response = { status: this.#upstreamStatus, complete, text: complete ? this.#observer?.text : undefined };
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
      attempts: this.#attempts,
      queueWaitMs: this.#ticket?.waitedMs,
      ttftMs: this.#ttftMs,
      durationMs: performance.now() - this.startedAt,
      status,
      code: failure?.code ?? interrupted,
      usage: this.#usage,
      bytesOut: outcome?.bytesOut ?? 0,
    });
  }
}

const EMPTY = Buffer.alloc(0);

/** The refusal of a body over a listener's limit (ClientTrafficPolicy `connection.bufferLimit`). */
export function bodyTooLarge(limit: number): GatewayError {
  return new GatewayError('body_too_large', `request body exceeds the listener limit of ${limit} bytes (ClientTrafficPolicy connection.bufferLimit)`);
}
