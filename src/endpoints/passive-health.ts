import type { Endpoint } from '../core/endpoint.js';

/**
 * Passive health (Envoy's outlier detection is the model): an endpoint whose requests fail
 * several times in a row is ejected for a while, whatever its /metrics say — an engine whose
 * metrics answer while its completions hang looks idle and would otherwise attract traffic.
 */
export interface PassiveHealthOptions {
  /** Consecutive failed requests that eject an endpoint. Default 5 (Envoy's `consecutive_5xx`). */
  readonly consecutiveFailures: number;
  /** First ejection, in ms; each further ejection lasts one more base. Default 30 000 (Envoy's `base_ejection_time`). */
  readonly baseEjectionMs: number;
  /** Longest ejection, in ms. Default 300 000 (Envoy's `max_ejection_time`). */
  readonly maxEjectionMs: number;
}

export const DEFAULT_PASSIVE_HEALTH: PassiveHealthOptions = { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000 };

export interface PassiveHealthEvents {
  readonly onEjected?: (endpoint: Endpoint, failures: number, forMs: number, reason: string) => void;
  readonly onReturned?: (endpoint: Endpoint) => void;
}

/**
 * Counts each endpoint's request outcomes. A failure is an upstream that could not be reached,
 * reset the connection, timed out or answered 5xx; any other answer is a success and resets the
 * count. After `consecutiveFailures` the endpoint is ejected (`Endpoint.ejectedUntil`) for
 * `baseEjectionMs × n` (n = its ejection count, capped at `maxEjectionMs`); it returns by itself
 * when the time is up, and a success after that clears its ejection count.
 */
export class PassiveHealth {
  readonly #options: PassiveHealthOptions;
  readonly #events: PassiveHealthEvents;
  readonly #now: () => number;

  constructor(options: PassiveHealthOptions = DEFAULT_PASSIVE_HEALTH, events: PassiveHealthEvents = {}, now: () => number = () => performance.now()) {
    this.#options = options;
    this.#events = events;
    this.#now = now;
  }

  succeeded(endpoint: Endpoint): void {
    endpoint.consecutiveFailures = 0;
    if (endpoint.ejectedUntil !== 0 && this.#now() >= endpoint.ejectedUntil) {
      endpoint.ejectedUntil = 0;
      endpoint.ejections = 0;
      this.#events.onReturned?.(endpoint);
    }
  }

  failed(endpoint: Endpoint, reason: string): void {
    endpoint.consecutiveFailures++;
    const now = this.#now();
    if (endpoint.consecutiveFailures < this.#options.consecutiveFailures || now < endpoint.ejectedUntil) return;
    endpoint.ejections++;
    const forMs = Math.min(this.#options.maxEjectionMs, this.#options.baseEjectionMs * endpoint.ejections);
    endpoint.ejectedUntil = now + forMs;
    endpoint.consecutiveFailures = 0;
    this.#events.onEjected?.(endpoint, this.#options.consecutiveFailures, forMs, reason);
  }
}
