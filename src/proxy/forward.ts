import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Dispatcher } from 'undici';
import type { RuleConfig } from '../config/snapshot.js';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import type { Decision, Prepared } from '../gateway/pipeline.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { sendError } from './respond.js';
import { ResponseObserver, type Usage } from './response-observer.js';

/** What happened upstream, for the `Request Handled` log line. */
export interface ForwardOutcome {
  /** The endpoint that answered (or the last one tried). */
  endpoint: Endpoint | undefined;
  attempts: number;
  /** Upstream status, when one arrived. */
  upstreamStatus: number | undefined;
  /** Milliseconds from request start to the first response body byte. */
  ttftMs: number | undefined;
  bytesOut: number;
  /** Set when the response was cut short after it started (client gone, reset, timeout). */
  interrupted: string | undefined;
  /** Token counts from the response, when it carried them. */
  usage: Usage | undefined;
  /** The answer text, when the observer was asked to collect it. */
  answer: string | undefined;
}

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

/** Maps a failure to the gateway error the client sees. */
function upstreamError(err: unknown, signal: AbortSignal, endpoint: Endpoint): GatewayError {
  if (signal.aborted && signal.reason instanceof AbortReason && signal.reason.why === 'timeout') {
    return new GatewayError('upstream_timeout', 'upstream did not complete within the request timeout (BackendTrafficPolicy timeout.http.requestTimeout)');
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
  readonly requestId: string;
  readonly prepared: Prepared;
  readonly decision: Decision;
  readonly rule: RuleConfig;
  readonly startedAt: number;
  readonly dispatcher: Dispatcher;
  /** Collect the answer text (for the prefix index). */
  readonly collectAnswer: boolean;
  /** After an attempt has taken its endpoint (counted in its in-flight load). */
  readonly onDispatch: (endpoint: Endpoint) => void;
  /** After an attempt has released its endpoint. */
  readonly onRelease: (endpoint: Endpoint) => void;
  /** Prompt tokens the endpoint must compute (the prompt minus what it is believed to cache). */
  readonly prefillTokens: (endpoint: Endpoint) => number;
}

/**
 * Sends the request to the decision's endpoint and streams the answer back chunk by chunk with
 * backpressure (a slow client slows the upstream read; nothing is buffered whole). If the
 * connection is refused or reset before any response byte, it retries once on the next fallback
 * endpoint. A client that goes away aborts the upstream request. The request timeout covers the
 * whole exchange. Throws GatewayError for failures before the response started; failures after
 * it are reported in the outcome (the SSE stream gets an error event, other bodies are cut).
 */
export async function forward(input: ForwardInput, outcome: ForwardOutcome): Promise<void> {
  const { req, res, decision, prepared, rule } = input;
  const targetModel = prepared.targetModel ?? '';
  const tokens = prepared.request.promptTokens;
  const controller = new AbortController();
  const { signal } = controller;
  const onClose = (): void => {
    if (!res.writableFinished) controller.abort(new AbortReason('client_gone'));
  };
  res.on('close', onClose);
  const timer = rule.requestTimeoutMs === undefined ? undefined : setTimeout(() => controller.abort(new AbortReason('timeout')), rule.requestTimeoutMs);
  timer?.unref();

  const headers = upstreamRequestHeaders(req.headers, {
    requestId: input.requestId,
    clientAddress: req.socket.remoteAddress,
    bodyLength: prepared.body?.length,
    modifier: rule.requestHeaders,
  });
  const path = req.url ?? '/';
  const candidates = decision.endpoints.slice(0, 2);

  try {
    for (let attempt = 0; attempt < candidates.length; attempt++) {
      const endpoint = candidates[attempt] as Endpoint;
      outcome.endpoint = endpoint;
      outcome.attempts = attempt + 1;
      endpoint.acquire(targetModel, tokens);
      const prefill = { tokens: input.prefillTokens(endpoint), done: false };
      endpoint.pendingPrefillTokens += prefill.tokens;
      input.onDispatch(endpoint);
      try {
        let upstream: Dispatcher.ResponseData;
        try {
          upstream = await input.dispatcher.request({
            origin: endpoint.origin,
            path,
            method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
            headers,
            body: prepared.body ?? null,
            signal,
          });
        } catch (err) {
          if (signal.aborted && signal.reason instanceof AbortReason && signal.reason.why === 'client_gone') {
            outcome.interrupted = 'client_gone';
            return;
          }
          const code = errorCode(err);
          const retriable = code !== undefined && RETRIABLE.has(code) && !signal.aborted;
          if (retriable && attempt + 1 < candidates.length) continue;
          throw upstreamError(err, signal, endpoint);
        }
        outcome.upstreamStatus = upstream.statusCode;
        await streamResponse(upstream, input, outcome, signal, endpoint, () => endPrefill(endpoint, prefill));
        return;
      } finally {
        endPrefill(endpoint, prefill);
        endpoint.release(targetModel, tokens);
        input.onRelease(endpoint);
      }
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    res.off('close', onClose);
  }
}

/** The prefill is over at the first response byte (or when the attempt ends without one). */
function endPrefill(endpoint: Endpoint, prefill: { tokens: number; done: boolean }): void {
  if (prefill.done) return;
  prefill.done = true;
  endpoint.pendingPrefillTokens -= prefill.tokens;
}

async function streamResponse(
  upstream: Dispatcher.ResponseData,
  input: ForwardInput,
  outcome: ForwardOutcome,
  signal: AbortSignal,
  endpoint: Endpoint,
  firstByte: () => void,
): Promise<void> {
  const { res } = input;
  const contentType = String(upstream.headers['content-type'] ?? '');
  const sse = contentType.includes('text/event-stream');
  const ok = upstream.statusCode >= 200 && upstream.statusCode < 300;
  // Error bodies pass through untouched; only successful answers are read for usage and text.
  const observer = ok ? new ResponseObserver({ sse, stripUsage: sse && input.prepared.stripUsage, collectText: input.collectAnswer }) : undefined;
  const headers = clientResponseHeaders(upstream.headers, input.requestId, input.rule.responseHeaders);
  // Stripping the usage event changes the length; the response is then sent chunked.
  if (observer !== undefined && input.prepared.stripUsage && sse) delete headers['content-length'];
  res.writeHead(upstream.statusCode, headers);
  // Headers go out now, not with the first chunk, so the client sees the status early.
  res.flushHeaders();
  try {
    for await (const received of upstream.body as AsyncIterable<Buffer>) {
      if (outcome.ttftMs === undefined) {
        outcome.ttftMs = performance.now() - input.startedAt;
        firstByte();
      }
      const chunk = observer === undefined ? received : observer.push(received);
      if (chunk.length === 0) continue;
      outcome.bytesOut += chunk.length;
      if (!res.write(chunk)) await once(res, 'drain', { signal });
    }
    const rest = observer?.end();
    if (rest !== undefined) {
      outcome.bytesOut += rest.length;
      res.write(rest);
    }
    outcome.usage = observer?.usage;
    if (input.collectAnswer) outcome.answer = observer?.text;
    res.end();
  } catch (err) {
    upstream.body.destroy();
    if (signal.aborted && signal.reason instanceof AbortReason && signal.reason.why === 'client_gone') {
      outcome.interrupted = 'client_gone';
      return;
    }
    const failure = upstreamError(err, signal, endpoint);
    outcome.interrupted = failure.code;
    sendError(res, failure, { requestId: input.requestId, sse });
  }
}
