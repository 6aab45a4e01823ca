import { GatewayError } from '../core/errors.js';
import { silenceCondemns, type UpstreamTimeouts } from '../gateway/index.js';
import type { RequestScope } from './scope.js';
import type { UpstreamAttempt } from './upstream.js';

/** A whole-request deadline and the setting it comes from (for the error message). */
export interface Deadline {
  /** `performance.now()` at which the request times out. */
  readonly at: number;
  readonly ms: number;
  readonly setting: string;
}

/** One upstream attempt in flight, as the watchdog sees it. */
export interface Watched {
  readonly attempt: UpstreamAttempt;
  readonly timeouts: UpstreamTimeouts;
  readonly deadline: Deadline | undefined;
  /** Stopped with the timeout's error when one fires. */
  readonly scope: RequestScope;
  /**
   * The first body byte must arrive by then (a disaggregated request's decode leg: the KV
   * handshake and transfer); its error is the one given.
   */
  readonly firstByte?: { readonly at: number; readonly error: () => GatewayError };
  /**
   * Called instead of `scope.stop` when a timeout fires; `whole` is true for the whole-request
   * deadline (a disaggregated request's legs route their own timeouts to their pair, the
   * deadline to the request).
   */
  readonly stop?: (error: GatewayError, whole: boolean) => void;
}

/**
 * The timeout `w` has passed at `now`, as the error that ends it; undefined while it is on time.
 * In order: the whole-request deadline; an endpoint that stopped answering and has been silent
 * for `unavailableIdleMs` where that silence is evidence (the core's `silenceCondemns`); response
 * headers of a streamed request within `streamHeadersMs`; a non-streamed answer, headers and
 * body, within `responseMs`; at most `streamIdleMs` between the chunks of a stream. While the
 * client is the slow side (the exchange waits for it to read), upstream silence does not count:
 * instead the client gets `clientStallMs` to read something (`client_stalled`).
 */
export function overdue(w: Watched, now: number): GatewayError | undefined {
  const { attempt: a, timeouts: t, deadline } = w;
  if (deadline !== undefined && now >= deadline.at) {
    return new GatewayError('upstream_timeout', `upstream did not complete within the request timeout of ${deadline.ms} ms (${deadline.setting})`);
  }
  if (w.firstByte !== undefined && a.firstDataAt === undefined) {
    // Until its first byte such a leg is timed by that deadline alone: a long prompt's prefill and
    // KV transfer may rightly take longer than the stream idle timeout.
    return now >= w.firstByte.at ? w.firstByte.error() : undefined;
  }
  if (a.waitingForClient) {
    if (now - a.waitingSince < t.clientStallMs) return undefined;
    return new GatewayError('client_stalled', `the client read nothing of the answer for ${t.clientStallMs} ms (client stall timeout)`);
  }
  const name = a.endpoint.name;
  const silentMs = now - a.lastDataAt;
  if (silentMs >= t.unavailableIdleMs && silenceCondemns(a.endpoint, { streaming: a.streaming, headersReceived: a.headersAt !== undefined }, now)) {
    const why = a.endpoint.healthy ? 'ejected after failed requests, and a stream without response headers' : 'failing /metrics scrapes';
    return new GatewayError('upstream_timeout', `model server ${name} stopped answering: it is unavailable (${why}) and sent nothing for ${t.unavailableIdleMs} ms (unavailable idle timeout)`);
  }
  if (a.headersAt === undefined && a.streaming) {
    if (now - a.startedAt >= t.streamHeadersMs) return new GatewayError('upstream_timeout', `model server ${name} sent no response headers within ${t.streamHeadersMs} ms (stream headers timeout)`);
    return undefined;
  }
  if (!a.streaming) {
    if (now - a.startedAt >= t.responseMs) return new GatewayError('upstream_timeout', `model server ${name} did not answer within ${t.responseMs} ms (response timeout)`);
    return undefined;
  }
  if (silentMs >= t.streamIdleMs) return new GatewayError('upstream_timeout', `model server ${name} sent nothing for ${t.streamIdleMs} ms mid-stream (stream idle timeout)`);
  return undefined;
}

/** How often the watchdog looks at every attempt in flight; a timeout fires up to this late. */
export const WATCHDOG_INTERVAL_MS = 250;

/**
 * One coarse timer for every upstream attempt in flight, instead of timers per request and per
 * chunk: each sweep checks every attempt's phase timeouts (`overdue`) and stops the request of
 * any that passed one. The timer runs only while something is watched, and never keeps the
 * process alive.
 */
export class Watchdog {
  readonly #watched = new Set<Watched>();
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(intervalMs = WATCHDOG_INTERVAL_MS) {
    this.#intervalMs = intervalMs;
  }

  get size(): number {
    return this.#watched.size;
  }

  watch(w: Watched): void {
    this.#watched.add(w);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.sweep(performance.now()), this.#intervalMs);
      this.#timer.unref();
    }
  }

  unwatch(w: Watched): void {
    this.#watched.delete(w);
    if (this.#watched.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Stops every watched request whose attempt is overdue at `now`. */
  sweep(now: number): void {
    for (const w of this.#watched) {
      if (w.scope.stopped !== undefined) continue;
      const err = overdue(w, now);
      if (err === undefined) continue;
      if (w.stop === undefined) w.scope.stop(err);
      // A stalled client ends the whole request, not one leg of a pair.
      else w.stop(err, err.code === 'client_stalled' || (w.deadline !== undefined && now >= w.deadline.at));
    }
  }

  close(): void {
    this.#watched.clear();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
