import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { RouteRequest } from '../config/route-table.js';
import type { Endpoint } from '../core/endpoint.js';
import { asGatewayError, GatewayError } from '../core/errors.js';
import type { Ticket } from '../flowcontrol/admission.js';
import type { Decision, Pipeline, Prepared } from '../gateway/pipeline.js';
import type { Runtime } from '../gateway/runtime.js';
import type { Logger } from '../observability/logger.js';
import type { GatewayMetrics } from '../observability/metrics.js';
import { blockHashes, TOKENS_PER_BLOCK } from '../prefix/block-hash.js';
import type { PrefixIndex } from '../prefix/index.js';
import { withAnswer } from '../prefix/prompt-text.js';
import { PREFIX_MATCH } from '../scheduling/plugins/prefix-cache-scorer.js';
import { forward, type ForwardOutcome } from './forward.js';
import { readBody } from './read-body.js';
import { sendError, sendJson } from './respond.js';

export interface HandlerDeps {
  readonly pipeline: Pipeline;
  readonly dispatcher: Dispatcher;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly prefixIndex: PrefixIndex;
  /** The runtime for new requests; undefined until the first config loads. */
  readonly runtime: () => Runtime | undefined;
}

function routeRequest(req: IncomingMessage): RouteRequest {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const hostHeader = req.headers.host ?? '';
  // Strip the port; keep IPv6 literals intact.
  const host = (hostHeader.startsWith('[') ? hostHeader.slice(0, hostHeader.indexOf(']') + 1) : hostHeader.split(':')[0] ?? '').toLowerCase();
  return { method: req.method ?? 'GET', path: q === -1 ? url : url.slice(0, q), query: q === -1 ? '' : url.slice(q + 1), host, headers: req.headers };
}

/**
 * Builds the request handler of one listening port:
 * route → backend → body → prepare → admit → schedule → forward → account.
 * Every request ends in exactly one `Request Handled` log line and one metrics record.
 */
export function createHandler(port: number, deps: HandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void handle(port, deps, req, res);
  };
}

async function handle(port: number, deps: HandlerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const startedAt = performance.now();
  const incomingId = req.headers['x-request-id'];
  const requestId = typeof incomingId === 'string' && incomingId !== '' ? incomingId : randomUUID();
  const outcome: ForwardOutcome = { endpoint: undefined, attempts: 0, upstreamStatus: undefined, ttftMs: undefined, bytesOut: 0, interrupted: undefined, usage: undefined, answer: undefined };
  let prepared: Prepared | undefined;
  let decision: Decision | undefined;
  let ticket: Ticket | undefined;
  let ruleId: string | undefined;
  let failure: GatewayError | undefined;
  const rr = routeRequest(req);
  // Aborted when the client goes away before the response is complete (leaves the queue too).
  const gone = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) gone.abort();
  };
  res.on('close', onClose);

  try {
    const runtime = deps.runtime();
    if (runtime === undefined) throw new GatewayError('no_ready_endpoint', 'the gateway has no configuration loaded yet');
    if (rr.method === 'GET' && rr.path === '/v1/models') {
      const models = runtime.snapshot.listeners.get(port)?.models ?? [];
      const created = Math.floor(runtime.snapshot.createdAt.getTime() / 1000);
      sendJson(res, 200, { object: 'list', data: models.map((id) => ({ id, object: 'model', created, owned_by: 'infergate' })) }, requestId);
      return;
    }
    const rule = deps.pipeline.route(runtime, port, rr);
    ruleId = rule.id;
    const target = deps.pipeline.backend(rule);
    const body = await readBody(req, rule.bufferLimitBytes);
    prepared = deps.pipeline.prepare(runtime, target, body, req.headers, requestId);
    ticket = await deps.pipeline.admit(prepared, gone.signal);
    const scheduledAt = performance.now();
    try {
      decision = deps.pipeline.schedule(prepared);
    } finally {
      deps.metrics.observeScheduling(prepared.backendName, (performance.now() - scheduledAt) / 1000);
    }
    const p = prepared;
    const t = ticket;
    await forward(
      {
        req,
        res,
        requestId,
        prepared: p,
        decision,
        rule,
        startedAt,
        dispatcher: deps.dispatcher,
        collectAnswer: p.pool?.usesPrefix === true,
        onDispatch: (endpoint) => {
          if (p.request.prefixHashes.length > 0) deps.prefixIndex.record(endpoint, p.request.prefixHashes);
          // The endpoint now carries this request's load: the next queued request may be decided.
          t.done();
        },
        onRelease: () => p.pool?.gate.wake(),
        prefillTokens: (endpoint) => {
          const matched = p.request.state.read(PREFIX_MATCH)?.matched.get(endpoint) ?? 0;
          return Math.max(0, p.request.promptTokens - matched * TOKENS_PER_BLOCK);
        },
      },
      outcome,
    );
    recordAnswer(deps.prefixIndex, prepared, outcome);
  } catch (err) {
    failure = asGatewayError(err);
    if (failure.code === 'client_gone') outcome.interrupted = 'client_gone';
    // A refused body may still be arriving: close the connection rather than parse the rest.
    const close = failure.code === 'body_too_large';
    sendError(res, failure, { requestId, sse: prepared?.stream === true, close });
    if (close) req.resume();
    if (failure.code === 'internal_error') deps.logger.error({ requestId, err }, 'internal error');
  } finally {
    ticket?.done();
    res.off('close', onClose);
    account(deps, { port, rr, requestId, ruleId, startedAt, prepared, decision, ticket, failure, outcome, status: res.statusCode });
  }
}

/**
 * After a complete answer, the endpoint caches the prompt and the generated text; index both so
 * the conversation's next turn, which resends them, matches this endpoint in full.
 */
function recordAnswer(index: PrefixIndex, prepared: Prepared, outcome: ForwardOutcome): void {
  const endpoint = outcome.endpoint;
  if (endpoint === undefined || prepared.json === undefined || outcome.answer === undefined || outcome.answer === '') return;
  if (outcome.interrupted !== undefined || outcome.upstreamStatus !== 200) return;
  const text = withAnswer(prepared.json, outcome.answer);
  if (text !== undefined) index.record(endpoint, blockHashes(text, prepared.targetModel ?? ''));
}

interface AccountInput {
  readonly port: number;
  readonly rr: RouteRequest;
  readonly requestId: string;
  readonly ruleId: string | undefined;
  readonly startedAt: number;
  readonly prepared: Prepared | undefined;
  readonly decision: Decision | undefined;
  readonly ticket: Ticket | undefined;
  readonly failure: GatewayError | undefined;
  readonly outcome: ForwardOutcome;
  readonly status: number;
}

/** The one `Request Handled` line and metrics record every request ends with. */
function account(deps: HandlerDeps, a: AccountInput): void {
  const { outcome, prepared, failure } = a;
  const endpoint: Endpoint | undefined = outcome.endpoint;
  const durationMs = performance.now() - a.startedAt;
  // 499 (nginx's convention) when the client left before the response was complete.
  const status = outcome.interrupted === 'client_gone' ? 499 : failure?.status ?? outcome.upstreamStatus ?? a.status;
  const code = failure?.code ?? outcome.interrupted;
  const match = prepared?.request.state.read(PREFIX_MATCH);
  const usage = outcome.usage;
  deps.logger.info(
    {
      requestId: a.requestId,
      method: a.rr.method,
      path: a.rr.path,
      port: a.port,
      rule: a.ruleId,
      pool: prepared?.backendName,
      pod: endpoint?.podName,
      endpoint: endpoint?.name,
      address: endpoint?.key,
      model: prepared?.model,
      targetModel: prepared?.targetModel,
      criticality: prepared?.criticality,
      objective: prepared?.objective,
      status,
      code,
      attempts: outcome.attempts,
      queueWaitMs: a.ticket === undefined ? undefined : round(a.ticket.waitedMs),
      ttftMs: outcome.ttftMs === undefined ? undefined : round(outcome.ttftMs),
      durationMs: round(durationMs),
      promptTokens: usage?.promptTokens,
      completionTokens: usage?.completionTokens,
      cachedTokens: usage?.cachedTokens,
      score: a.decision?.scores[0] === undefined ? undefined : round(a.decision.scores[0]),
      scores: a.decision?.breakdown,
      prefixBlocks: match === undefined || endpoint === undefined ? undefined : `${match.matched.get(endpoint) ?? 0}/${match.totalBlocks}`,
      bytesOut: outcome.bytesOut,
    },
    'Request Handled',
  );
  if (prepared === undefined) return;
  deps.metrics.record({
    pool: prepared.backendName,
    model: prepared.model ?? '',
    targetModel: prepared.targetModel ?? '',
    status,
    code: code ?? '',
    durationS: durationMs / 1000,
    ttftS: outcome.ttftMs === undefined ? undefined : outcome.ttftMs / 1000,
    queueWaitS: a.ticket === undefined ? undefined : a.ticket.waitedMs / 1000,
    promptTokens: usage?.promptTokens,
    completionTokens: usage?.completionTokens,
    cachedTokens: usage?.cachedTokens,
  });
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
