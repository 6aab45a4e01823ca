import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { RouteRequest } from '../config/route-table.js';
import { asGatewayError, GatewayError } from '../core/errors.js';
import type { Decision, Pipeline } from '../gateway/pipeline.js';
import type { Runtime } from '../gateway/runtime.js';
import type { Logger } from '../observability/logger.js';
import { forward, type ForwardOutcome } from './forward.js';
import { readBody } from './read-body.js';
import { sendError, sendJson } from './respond.js';

export interface HandlerDeps {
  readonly pipeline: Pipeline;
  readonly dispatcher: Dispatcher;
  readonly logger: Logger;
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
 * Builds the request handler of one listening port: route → body → decide → forward → log.
 * Every request ends in exactly one `Request Handled` log line.
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
  const outcome: ForwardOutcome = { endpoint: undefined, attempts: 0, upstreamStatus: undefined, ttftMs: undefined, bytesOut: 0, interrupted: undefined };
  let decision: Decision | undefined;
  let ruleId: string | undefined;
  let failure: GatewayError | undefined;
  const rr = routeRequest(req);

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
    decision = deps.pipeline.decide(runtime, target, body, requestId);
    await forward({ req, res, requestId, decision, rule, startedAt, dispatcher: deps.dispatcher }, outcome);
  } catch (err) {
    failure = asGatewayError(err);
    // A refused body may still be arriving: close the connection rather than parse the rest.
    const close = failure.code === 'body_too_large';
    sendError(res, failure, { requestId, sse: decision?.stream === true, close });
    if (close) req.resume();
    if (failure.code === 'internal_error') deps.logger.error({ requestId, err }, 'internal error');
  } finally {
    const endpoint = outcome.endpoint;
    deps.logger.info(
      {
        requestId,
        method: rr.method,
        path: rr.path,
        port,
        rule: ruleId,
        backend: decision?.backendName,
        pod: endpoint?.podName,
        endpoint: endpoint?.name,
        address: endpoint?.key,
        model: decision?.model,
        targetModel: decision?.targetModel,
        criticality: decision?.criticality,
        // 499 (nginx's convention) when the client left before the response was complete.
        status: outcome.interrupted === 'client_gone' ? 499 : failure?.status ?? outcome.upstreamStatus ?? res.statusCode,
        code: failure?.code ?? outcome.interrupted,
        attempts: outcome.attempts,
        score: decision?.scores[0],
        ttftMs: outcome.ttftMs === undefined ? undefined : round(outcome.ttftMs),
        durationMs: round(performance.now() - startedAt),
        bytesOut: outcome.bytesOut,
      },
      'Request Handled',
    );
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
