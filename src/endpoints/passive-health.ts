import type { Endpoint } from '../core/endpoint.js';

/**
 * Passive health (Envoy's outlier detection is the model): an endpoint whose requests fail
 * several times in a row is ejected for a while, whatever its /metrics say — an engine whose
 * metrics answer while its completions hang looks idle and would otherwise attract traffic.
 *
 * Only evidence that the server misbehaved counts (the caller decides what is evidence:
 * gateway/blame.ts); ejection never removes more than `maxEjectionPercent` of a pool; and an
 * endpoint that answers fast but uselessly (429, or far more 5xx/404 than its peers) is backed
 * off: scheduled only when nothing else is (docs/routing.md, "Passive health").
 */
export interface PassiveHealthOptions {
  /** Consecutive failed requests that eject an endpoint. Default 5 (Envoy's `consecutive_5xx`). */
  readonly consecutiveFailures: number;
  /** First ejection, in ms; each further ejection lasts one more base. Default 30 000 (Envoy's `base_ejection_time`). */
  readonly baseEjectionMs: number;
  /** Longest ejection, in ms. Default 300 000 (Envoy's `max_ejection_time`). */
  readonly maxEjectionMs: number;
  /**
   * Most of a pool (per prefill/decode role) that may be ejected at once, in percent, rounded
   * down but at least one endpoint when the group has two or more (a group of one is never
   * ejected: the panic rule would schedule it anyway). Default 50. Envoy's
   * `max_ejection_percent` defaults to 10 %, which in pools of 2–4 pods means one ejection at
   * most anyway; 50 % keeps half a pool serving whatever a burst of failures says, so no client
   * input and no correlated fault can take a whole pool out of rotation.
   */
  readonly maxEjectionPercent: number;
  /**
   * Back-off after a 429 that names no `Retry-After`: this many ms for the first, doubling for
   * each further 429 in a row, at most `maxBackoffMs`. Default 1 000.
   */
  readonly baseBackoffMs: number;
  /** Longest back-off (a `Retry-After` is honoured up to this), in ms. Default 60 000. */
  readonly maxBackoffMs: number;
  /**
   * An endpoint whose share of failed outcomes (5xx, 404, no answer: `statusShare`; a moving
   * average over its recent outcomes) exceeds the lowest share among its peers by at least this much is backed off for
   * `outlierBackoffMs`. Default 0.5: a pod failing every request beside pods that serve.
   */
  readonly outlierErrorGap: number;
  /** Back-off of an error-rate outlier, in ms. Default 10 000. */
  readonly outlierBackoffMs: number;
}

export const DEFAULT_PASSIVE_HEALTH: PassiveHealthOptions = {
  consecutiveFailures: 5,
  baseEjectionMs: 30_000,
  maxEjectionMs: 300_000,
  maxEjectionPercent: 50,
  baseBackoffMs: 1_000,
  maxBackoffMs: 60_000,
  outlierErrorGap: 0.5,
  outlierBackoffMs: 10_000,
};

/** Weight of one answer in an endpoint's moving error share (about the last 10 answers count). */
const ERROR_SHARE_WEIGHT = 0.1;
/**
 * Outcomes an endpoint must have before its error share is judged, and a peer before it is compared
 * with: a few, so that a server failing everything at once (it looks idle and draws most requests
 * meanwhile) is caught within about ten requests. A chance run of a client's bad requests on one
 * healthy server is kept from counting by MIN_OUTLIER_SHARE and the cap on what is set aside.
 *
 * A peer that has fewer outcomes but requests in flight counts too, with the share of the outcomes
 * it has (0 for none): it is serving what it was given. Without this, a server failing every
 * request in a millisecond drew every request until its slower peers had finished three each —
 * on a busy machine or with long generations, dozens to hundreds of failed requests.
 */
const MIN_OUTCOMES = 8;
const MIN_PEER_OUTCOMES = 3;
/**
 * The least error share that can make an outlier: a server failing (nearly) everything. A healthy
 * server's failures are its clients' mistakes, a share its peers see too.
 */
const MIN_OUTLIER_SHARE = 0.8;

export interface PassiveHealthEvents {
  readonly onEjected?: (endpoint: Endpoint, failures: number, forMs: number, reason: string) => void;
  readonly onReturned?: (endpoint: Endpoint) => void;
  /** An ejection was due but would have taken more than `maxEjectionPercent` of a pool. */
  readonly onEjectionCapped?: (endpoint: Endpoint, reason: string) => void;
  readonly onBackoff?: (endpoint: Endpoint, forMs: number, reason: string) => void;
}

/**
 * The groups of endpoints an endpoint is judged with: per pool it belongs to, the endpoints that
 * can take the same requests (its role's). Ejection caps and error-share comparisons use them.
 */
export type PeerGroups = (endpoint: Endpoint) => Iterable<readonly Endpoint[]>;

/**
 * Counts each endpoint's request outcomes. `failed` is evidence the server misbehaved (it could
 * not be reached, reset the connection, timed out, answered 5xx); `answered` is any answer it
 * gave (status code): a non-5xx answer resets the failure count. After `consecutiveFailures` the
 * endpoint is ejected (`Endpoint.ejectedUntil`) for `baseEjectionMs × n` (n = its ejection count,
 * capped at `maxEjectionMs`) unless that would eject more than `maxEjectionPercent` of a group it
 * belongs to (it then stays in, its count at the threshold, and the next failure tries again);
 * it returns by itself when the time is up, and a success after that clears its ejection count.
 */
export class PassiveHealth {
  readonly #options: PassiveHealthOptions;
  readonly #events: PassiveHealthEvents;
  readonly #now: () => number;
  readonly #peers: PeerGroups;

  constructor(options: PassiveHealthOptions = DEFAULT_PASSIVE_HEALTH, events: PassiveHealthEvents = {}, now: () => number = () => performance.now(), peers: PeerGroups = () => []) {
    this.#options = options;
    this.#events = events;
    this.#now = now;
    this.#peers = peers;
  }

  /** The endpoint served the request (any answer below 500 that is not judged by `answered`). */
  succeeded(endpoint: Endpoint): void {
    endpoint.consecutiveFailures = 0;
    if (endpoint.ejectedUntil !== 0 && this.#now() >= endpoint.ejectedUntil) {
      endpoint.ejectedUntil = 0;
      endpoint.ejections = 0;
      this.#events.onReturned?.(endpoint);
    }
  }

  /**
   * The endpoint answered with `status`. 5xx (but 501 and 505, which are about the request) is a
   * failure; anything else a success for ejection. 429 (and a 503 with `Retry-After`) backs it
   * off (`retryAfterMs`, its `Retry-After`, when given). `share` is what the answer adds to its
   * error share (`statusShare` unless the caller knows more: gateway/blame.ts), and a share far
   * above its peers' backs it off too.
   */
  answered(endpoint: Endpoint, status: number, retryAfterMs?: number, share: ShareOutcome = statusShare(status)): void {
    if (share !== 'none') record(endpoint, share === 'failed');
    if (isServerFaultStatus(status)) this.#failure(endpoint, `status ${status}`);
    else this.succeeded(endpoint);
    // 429, or a 503 that says when to come back: the server is full, not broken.
    if (status === 429 || (status === 503 && retryAfterMs !== undefined)) {
      endpoint.consecutiveFull++;
      const o = this.#options;
      const forMs = Math.min(o.maxBackoffMs, retryAfterMs ?? o.baseBackoffMs * 2 ** Math.min(20, endpoint.consecutiveFull - 1));
      this.#backOff(endpoint, forMs, `answered ${status} (full)`);
      return;
    }
    endpoint.consecutiveFull = 0;
    if (share === 'failed') this.#judgeShare(endpoint);
  }

  /**
   * Evidence that the endpoint misbehaved without an answer (`reason`: the error code): it could
   * not be reached, reset the connection or timed out.
   */
  failed(endpoint: Endpoint, reason: string): void {
    record(endpoint, true);
    this.#failure(endpoint, reason);
    this.#judgeShare(endpoint);
  }

  #judgeShare(endpoint: Endpoint): void {
    if (!this.#isErrorOutlier(endpoint)) return;
    const now = this.#now();
    // As for ejection: whatever its clients send, at most maxEjectionPercent of a pool is set aside.
    if (now >= endpoint.backoffUntil && !this.#maySetAside(endpoint, now)) return;
    this.#backOff(endpoint, this.#options.outlierBackoffMs, `error share ${errorShare(endpoint).toFixed(2)} far above its peers'`);
  }

  #failure(endpoint: Endpoint, reason: string): void {
    endpoint.consecutiveFailures++;
    const now = this.#now();
    if (endpoint.consecutiveFailures < this.#options.consecutiveFailures || now < endpoint.ejectedUntil) return;
    if (!this.#mayEject(endpoint, now)) {
      // Stays at the threshold: the next failure ejects it once a slot is free.
      endpoint.consecutiveFailures = this.#options.consecutiveFailures - 1;
      this.#events.onEjectionCapped?.(endpoint, reason);
      return;
    }
    endpoint.ejections++;
    const forMs = Math.min(this.#options.maxEjectionMs, this.#options.baseEjectionMs * endpoint.ejections);
    endpoint.ejectedUntil = now + forMs;
    endpoint.consecutiveFailures = 0;
    this.#events.onEjected?.(endpoint, this.#options.consecutiveFailures, forMs, reason);
  }

  /** Ejecting `endpoint` keeps every group it belongs to within `maxEjectionPercent`. */
  #mayEject(endpoint: Endpoint, now: number): boolean {
    return this.#withinCap(endpoint, (e) => now < e.ejectedUntil);
  }

  /** Backing `endpoint` off as an outlier keeps every group within `maxEjectionPercent` set aside (ejected or backed off). */
  #maySetAside(endpoint: Endpoint, now: number): boolean {
    return this.#withinCap(endpoint, (e) => now < e.ejectedUntil || now < e.backoffUntil);
  }

  #withinCap(endpoint: Endpoint, out: (e: Endpoint) => boolean): boolean {
    for (const group of this.#peers(endpoint)) {
      let n = 0;
      for (const e of group) if (e !== endpoint && out(e)) n++;
      if (n + 1 > maxEjected(group.length, this.#options.maxEjectionPercent)) return false;
    }
    return true;
  }

  /** Its error share is `outlierErrorGap` above that of a peer with enough outcomes, or with requests in flight. */
  #isErrorOutlier(endpoint: Endpoint): boolean {
    if (endpoint.answers < MIN_OUTCOMES) return false;
    const own = errorShare(endpoint);
    if (own < MIN_OUTLIER_SHARE) return false;
    for (const group of this.#peers(endpoint)) {
      for (const e of group) {
        if (e === endpoint || (e.answers < MIN_PEER_OUTCOMES && e.inFlight === 0)) continue;
        if (own - errorShare(e) >= this.#options.outlierErrorGap) return true;
      }
    }
    return false;
  }

  #backOff(endpoint: Endpoint, forMs: number, reason: string): void {
    const until = this.#now() + Math.max(0, forMs);
    if (until <= endpoint.backoffUntil) return;
    endpoint.backoffUntil = until;
    this.#events.onBackoff?.(endpoint, forMs, reason);
  }
}

/**
 * The endpoint's error share corrected for its warm-up (the moving average starts at 0: divided by
 * 1 − 0.9ⁿ after n outcomes, it is the plain average of few outcomes and the moving one of many).
 */
function errorShare(endpoint: Endpoint): number {
  return endpoint.answers === 0 ? 0 : endpoint.errorShare / (1 - (1 - ERROR_SHARE_WEIGHT) ** endpoint.answers);
}

/** One more outcome in the endpoint's moving error share. */
function record(endpoint: Endpoint, bad: boolean): void {
  endpoint.answers++;
  endpoint.errorShare += ERROR_SHARE_WEIGHT * ((bad ? 1 : 0) - endpoint.errorShare);
}

/**
 * What one answer adds to an endpoint's error share: a failure, a served request, or nothing.
 *
 * The outlier check compares an endpoint with its peers, which assumes they are asked alike; prefix,
 * LoRA and session affinity break that, sending one client's requests (the same long system prompt,
 * the same adapter) to one pod. So only answers that speak about the server may move its share:
 *
 * - 5xx: the server failed (501 and 505 too: a server that cannot do what its peers do is odd);
 * - 404: a model or path the pool routes to it is not there (a misconfigured or half-loaded server;
 *   the gateway discounts a 404 for a model the server's own `/v1/models` never listed);
 * - any other 4xx is the server judging the request, not itself: 400 and 422 are request validation
 *   in vLLM, SGLang and Triton (context too long, `max_tokens` below 1, bad sampling parameters), 413
 *   a body too large, 401/403 the client's credentials, 408 a slow upload, 429 load (backed off on
 *   its own). A client's bad requests concentrated on one pod must not take it out. The price: a
 *   server rejecting valid requests with 400 is not caught here (its peers' answers to the same
 *   requests would be needed to tell).
 */
export type ShareOutcome = 'failed' | 'served' | 'none';

/** `ShareOutcome` from the status alone (see the type). */
export function statusShare(status: number): ShareOutcome {
  if (status >= 500 || status === 404) return 'failed';
  return status >= 400 ? 'none' : 'served';
}

/**
 * How many of a group of `size` endpoints may be ejected at once: `percent` of it rounded down,
 * but at least one when the group has two or more; none of a group of one.
 */
export function maxEjected(size: number, percent: number): number {
  if (size < 2) return 0;
  return Math.max(1, Math.floor((size * percent) / 100));
}

/**
 * A status that is evidence the server failed: 5xx, except 501 (the server does not support the method: it is
 * the request's) and 505 (HTTP Version Not Supported: the request's too).
 */
export function isServerFaultStatus(status: number): boolean {
  return status >= 500 && status !== 501 && status !== 505;
}
