import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';

/**
 * How long the gateway waits for a model server, by phase. Defaults are documented in
 * docs/configuration.md ("Timeouts") with the reasons; `infergate serve` flags override them.
 */
export interface UpstreamTimeouts {
  /**
   * A streamed request's response headers. vLLM, SGLang and Triton's OpenAI frontend send the
   * SSE headers right after validating and tokenising the request, before queueing it, so a
   * healthy server answers in well under a second. Default 30 000 ms.
   */
  readonly streamHeadersMs: number;
  /**
   * A non-streamed request's answer: the server sends nothing until the whole completion is
   * done. Default 300 000 ms: 4k tokens at 50 ms each under load is 200 s.
   */
  readonly responseMs: number;
  /**
   * Silence between two chunks of a streamed response. A request queued inside a busy server
   * gets its headers and then nothing until it is scheduled; the gateway holds requests when
   * every server is queueing, so such waits stay short. Default 60 000 ms.
   */
  readonly streamIdleMs: number;
  /**
   * Silence after which a request on an endpoint that stopped answering is ended with a clean
   * error instead of waiting for the other timeouts, where its silence is evidence (see
   * `silenceCondemns`). Default 5 000 ms: a healthy server answers its /metrics every scrape and
   * sends a stream's headers right after tokenising.
   */
  readonly unavailableIdleMs: number;
  /**
   * How long the gateway waits for a client that reads nothing of its answer (its writes to the
   * client are held back: the socket's buffers are full) before it ends the request
   * (`client_stalled`), aborting the upstream exchange and freeing the endpoint's slot. Every
   * read that lets a write through starts the wait again, so a slow reader is not cut, only one
   * that stopped. Default 60 000 ms: nginx's `send_timeout` (60 s between two successive writes),
   * and as long as the gateway waits for a silent model server (`streamIdleMs`); Envoy's stream
   * idle timeout is 300 s but counts both directions, and holding a GPU slot that long for a
   * client that reads nothing is the waste this bounds.
   */
  readonly clientStallMs: number;
}

export const DEFAULT_TIMEOUTS: UpstreamTimeouts = { streamHeadersMs: 30_000, responseMs: 300_000, streamIdleMs: 60_000, unavailableIdleMs: 5_000, clientStallMs: 60_000 };

/**
 * Whether an attempt's silence for `unavailableIdleMs` says its endpoint stopped answering, so
 * the attempt may be ended early. Only where silence is evidence:
 *
 * - the endpoint's scrapes fail (`healthy` false): its /metrics, served by the same process as
 *   its completions, went silent too — whatever the phase;
 * - it was ejected by passive health (requests failing) and this is a stream still waiting for
 *   its response headers, which a serving engine sends before it queues the request.
 *
 * Never for an ejected endpoint's non-streamed answer (it legitimately sends nothing until the
 * whole completion is done, minutes for a long one) nor a stream after its headers (queueing, a
 * long prompt's prefill or a preemption can pause it for seconds).
 */
export function silenceCondemns(endpoint: Endpoint, attempt: { readonly streaming: boolean; readonly headersReceived: boolean }, now: number): boolean {
  if (!endpoint.healthy) return true;
  return attempt.streaming && !attempt.headersReceived && !endpoint.available(now);
}

/** A whole-request deadline (HTTPRoute `timeouts.request`, BackendTrafficPolicy) and the setting it comes from. */
export interface RequestDeadline {
  /** `performance.now()` at which the request times out. */
  readonly at: number;
  readonly ms: number;
  readonly setting: string;
}

/** The deadline of a decision's `timeout`, counted from `now` (`performance.now()`); undefined when it has none. */
export function requestDeadline(timeout: { readonly ms: number; readonly setting: string } | undefined, now: number = performance.now()): RequestDeadline | undefined {
  return timeout === undefined ? undefined : { at: now + timeout.ms, ms: timeout.ms, setting: timeout.setting };
}

/**
 * What a data plane knows of one upstream exchange in flight, as plain facts (all times
 * `performance.now()` ms). The phase-timeout policy below reads nothing else, so every data plane
 * (the proxy's undici attempts, a sidecar's legs, an ext_proc stream) times alike.
 */
export interface PhaseFacts {
  /** The endpoint the exchange went to (its health decides whether silence is evidence). */
  readonly endpoint: Endpoint;
  /** When the request was dispatched. */
  readonly startedAt: number;
  /** When the response headers arrived; undefined before. */
  readonly headersAt: number | undefined;
  /** When the first body bytes arrived; undefined before. */
  readonly firstDataAt: number | undefined;
  /** When anything last arrived (dispatch, headers or body bytes). */
  readonly lastDataAt: number;
  /** The exchange is paused because the client reads nothing (its writes are held back). */
  readonly waitingForClient: boolean;
  /** Since when, while `waitingForClient`. */
  readonly waitingSince: number;
  /** The answer is streamed (SSE, or asked as a stream): idle time counts per chunk. */
  readonly streaming: boolean;
}

/** The limits one exchange is held to: the phase timeouts, the request's deadline, and maybe a first-byte deadline. */
export interface PhaseLimits {
  readonly timeouts: UpstreamTimeouts;
  readonly deadline: RequestDeadline | undefined;
  /**
   * The first body byte must arrive by `at` (a disaggregated request's KV handshake); until then
   * that deadline alone times the exchange, and `error` is what it fails with.
   */
  readonly firstByte?: { readonly at: number; readonly error: () => GatewayError };
}

/** A timeout that passed: the error that ends the exchange, and whether it ends the whole request (not one leg). */
export interface PhaseVerdict {
  readonly error: GatewayError;
  /** The whole-request deadline or a stalled client: the request ends, not just a leg of a pair. */
  readonly whole: boolean;
}

/**
 * The timeout an exchange has passed at `now`, or undefined while it is on time. In order: the
 * whole-request deadline; the first-byte deadline (alone, until the first byte: a long prompt's
 * prefill and KV transfer may rightly take longer than the idle timeouts); while the client is the
 * slow side upstream silence does not count, the client gets `clientStallMs` to read
 * (`client_stalled`, blamed on the client, never the server); an endpoint that stopped answering,
 * silent for `unavailableIdleMs` where that silence is evidence (`silenceCondemns`); a stream's
 * headers within `streamHeadersMs`; a non-streamed answer within `responseMs`; at most
 * `streamIdleMs` between a stream's chunks.
 */
export function phaseTimeout(a: PhaseFacts, limits: PhaseLimits, now: number): PhaseVerdict | undefined {
  const { timeouts: t, deadline, firstByte } = limits;
  if (deadline !== undefined && now >= deadline.at) {
    return { whole: true, error: new GatewayError('upstream_timeout', `upstream did not complete within the request timeout of ${deadline.ms} ms (${deadline.setting})`) };
  }
  if (firstByte !== undefined && a.firstDataAt === undefined) return now >= firstByte.at ? { whole: false, error: firstByte.error() } : undefined;
  if (a.waitingForClient) {
    if (now - a.waitingSince < t.clientStallMs) return undefined;
    return { whole: true, error: new GatewayError('client_stalled', `the client read nothing of the answer for ${t.clientStallMs} ms (client stall timeout)`) };
  }
  const name = a.endpoint.name;
  const silentMs = now - a.lastDataAt;
  const leg = (message: string): PhaseVerdict => ({ whole: false, error: new GatewayError('upstream_timeout', message) });
  if (silentMs >= t.unavailableIdleMs && silenceCondemns(a.endpoint, { streaming: a.streaming, headersReceived: a.headersAt !== undefined }, now)) {
    const why = a.endpoint.healthy ? 'ejected after failed requests, and a stream without response headers' : 'failing /metrics scrapes';
    return leg(`model server ${name} stopped answering: it is unavailable (${why}) and sent nothing for ${t.unavailableIdleMs} ms (unavailable idle timeout)`);
  }
  if (a.headersAt === undefined && a.streaming) {
    return now - a.startedAt >= t.streamHeadersMs ? leg(`model server ${name} sent no response headers within ${t.streamHeadersMs} ms (stream headers timeout)`) : undefined;
  }
  if (!a.streaming) return now - a.startedAt >= t.responseMs ? leg(`model server ${name} did not answer within ${t.responseMs} ms (response timeout)`) : undefined;
  return silentMs >= t.streamIdleMs ? leg(`model server ${name} sent nothing for ${t.streamIdleMs} ms mid-stream (stream idle timeout)`) : undefined;
}
