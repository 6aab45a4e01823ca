import type { Endpoint } from '../core/endpoint.js';

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
