import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError, type ErrorCode } from '../core/errors.js';
import type { Decision, Outcome, RequestHandle } from '../gateway/index.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { sendError } from './respond.js';

/** Reasons an in-flight request is aborted; carried as the AbortSignal reason. */
class AbortReason extends Error {
  constructor(readonly why: 'client_gone' | 'timeout') {
    super(why);
  }
}

/** Failures worth one retry on another endpoint: nothing reached the model server's handler. */
const RETRIABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED']);
const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 3 && e instanceof Error; depth++) {
    const code = (e as Error & { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = e.cause;
  }
  return undefined;
}

function clientGone(signal: AbortSignal): boolean {
  return signal.aborted && signal.reason instanceof AbortReason && signal.reason.why === 'client_gone';
}

/** Maps a failure to the gateway error the client sees. */
function upstreamError(err: unknown, signal: AbortSignal, endpoint: Endpoint, decision: Decision): GatewayError {
  if (signal.aborted && signal.reason instanceof AbortReason && signal.reason.why === 'timeout') {
    return new GatewayError('upstream_timeout', `upstream did not complete within the request timeout (${decision.timeout?.setting ?? 'request timeout'})`);
  }
  const code = errorCode(err);
  if (code !== undefined && TIMEOUTS.has(code)) return new GatewayError('upstream_timeout', `upstream ${endpoint.name} went idle (${code})`, { cause: err });
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') {
    return new GatewayError('upstream_reset', `upstream ${endpoint.name} closed the connection`, { cause: err });
  }
  return new GatewayError('upstream_unavailable', `upstream ${endpoint.name} is unreachable (${code ?? 'error'})`, { cause: err });
}

export interface ForwardInput {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly handle: RequestHandle;
  readonly decision: Decision;
  readonly dispatcher: Dispatcher;
}

/**
 * Sends the request to the decision's endpoint and streams the answer back chunk by chunk with
 * backpressure (a slow client slows the upstream read; nothing is buffered whole). If the
 * connection is refused or reset before any response byte, it retries once on the next fallback
 * endpoint. A client that goes away aborts the upstream request. The request timeout covers the
 * whole exchange. Throws GatewayError for failures before the response started; failures after
 * it end the response (an SSE stream gets an error event, other bodies are cut) and are reported
 * in the outcome.
 */
export async function forward(input: ForwardInput): Promise<Outcome> {
  const { req, res, decision, handle } = input;
  const controller = new AbortController();
  const { signal } = controller;
  const onClose = (): void => {
    if (!res.writableFinished) controller.abort(new AbortReason('client_gone'));
  };
  res.on('close', onClose);
  const timer = decision.timeout === undefined ? undefined : setTimeout(() => controller.abort(new AbortReason('timeout')), decision.timeout.ms);
  timer?.unref();
  const headers = upstreamRequestHeaders(req.headers, decision.headers);
  const path = req.url ?? '/';

  try {
    for (let attempt = 0; attempt < decision.endpoints.length; attempt++) {
      const endpoint = decision.endpoints[attempt] as Endpoint;
      handle.dispatched(endpoint);
      let upstream: Dispatcher.ResponseData;
      try {
        upstream = await input.dispatcher.request({
          origin: endpoint.origin,
          path,
          method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
          headers,
          body: decision.body ?? null,
          signal,
        });
      } catch (err) {
        if (clientGone(signal)) return { status: 499, bytesOut: 0, interrupted: 'client_gone' };
        const code = errorCode(err);
        const retriable = code !== undefined && RETRIABLE.has(code) && !signal.aborted;
        if (retriable && attempt + 1 < decision.endpoints.length) {
          handle.attemptFailed(upstreamError(err, signal, endpoint, decision));
          continue;
        }
        throw upstreamError(err, signal, endpoint, decision);
      }
      return await streamResponse(upstream, input, signal, endpoint);
    }
    throw new GatewayError('no_ready_endpoint', 'no endpoint to try');
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    res.off('close', onClose);
  }
}

async function streamResponse(upstream: Dispatcher.ResponseData, input: ForwardInput, signal: AbortSignal, endpoint: Endpoint): Promise<Outcome> {
  const { res, handle } = input;
  const plan = handle.responseStarted(upstream.statusCode, upstream.headers);
  res.writeHead(upstream.statusCode, clientResponseHeaders(upstream.headers, plan.headers));
  // Headers go out now, not with the first chunk, so the client sees the status early.
  res.flushHeaders();
  let bytesOut = 0;
  try {
    for await (const received of upstream.body as AsyncIterable<Buffer>) {
      const chunk = handle.responseData(received);
      if (chunk.length === 0) continue;
      bytesOut += chunk.length;
      if (!res.write(chunk)) await once(res, 'drain', { signal });
    }
    const rest = handle.responseEnd();
    if (rest !== undefined) {
      bytesOut += rest.length;
      res.write(rest);
    }
    res.end();
    return { status: upstream.statusCode, bytesOut };
  } catch (err) {
    upstream.body.destroy();
    if (clientGone(signal)) return { status: 499, bytesOut, interrupted: 'client_gone' };
    const failure = upstreamError(err, signal, endpoint, input.decision);
    sendError(res, failure, { requestId: handle.id, sse: plan.sse });
    const interrupted: ErrorCode = failure.code;
    return { status: upstream.statusCode, bytesOut, interrupted };
  }
}
