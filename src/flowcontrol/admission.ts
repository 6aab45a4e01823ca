import type { Criticality } from '../api/types.js';
import type { Endpoint } from '../core/endpoint.js';
import { GatewayError } from '../core/errors.js';
import { isSaturated, type SaturationThresholds } from './saturation.js';

export interface AdmissionOptions extends SaturationThresholds {
  /** Requests held for the pool at most; more are refused with 429. Default 1000. */
  readonly maxRequests: number;
  /** Longest wait in the queue; longer is refused with 503. Default 60 s. */
  readonly ttlMs: number;
  /** `reject`: Sheddable requests get 429 while the pool is saturated; `queue`: they wait last. */
  readonly sheddable: 'reject' | 'queue';
  /** How often a waiting queue re-checks saturation when nothing else wakes it. */
  readonly recheckMs: number;
}

export const DEFAULT_ADMISSION = { maxRequests: 1000, ttlMs: 60_000, sheddable: 'reject' } as const;

const BANDS = ['Critical', 'Standard', 'Sheddable'] as const satisfies readonly Criticality[];

/** A request let through; call `done` once it holds an endpoint (or failed), so the next may go. */
export interface Ticket {
  /** Milliseconds spent waiting (0 when admitted at once). */
  readonly waitedMs: number;
  done(): void;
}

interface Waiter {
  readonly band: Criticality;
  readonly enqueuedAt: number;
  readonly resolve: (t: Ticket) => void;
  readonly reject: (e: GatewayError) => void;
  timer: NodeJS.Timeout | undefined;
  cleanup: () => void;
}

/**
 * The gate in front of one pool. While some endpoint is not queueing and nobody waits, requests
 * pass at once. While every endpoint is queueing, Critical and Standard requests wait (Critical
 * first, FIFO within a band) and are let through one at a time as capacity frees, each after the previous one has
 * taken an endpoint, so the next decision sees its load. Sheddable requests are refused with 429
 * while no endpoint has headroom on queue or KV (or wait last, by option); a full queue refuses with 429; a wait past the TTL ends with 503; a
 * client that goes away leaves the queue. Refusals carry `Retry-After` from the recent drain rate.
 */
export class AdmissionGate {
  readonly #bands: Record<Criticality, Waiter[]> = { Critical: [], Standard: [], Sheddable: [] };
  #options: AdmissionOptions;
  /**
   * The endpoint groups saturation is judged over: the pool's endpoints, or for a prefill/decode
   * pool each role that must have headroom (the pool is saturated when any of them is).
   */
  #groups: () => readonly (readonly Endpoint[])[];
  readonly #now: () => number;
  #inHandoff = false;
  #recheck: NodeJS.Timeout | undefined;
  /** Exponentially weighted dispatches per second, for Retry-After. */
  #drainRate = 0;
  #lastDrainAt = 0;

  constructor(groups: () => readonly (readonly Endpoint[])[], options: AdmissionOptions, now: () => number = () => performance.now()) {
    this.#groups = groups;
    this.#options = options;
    this.#now = now;
  }

  /** A reload keeps the queue and its waiters; it only changes the rules and the endpoint list. */
  reconfigure(groups: () => readonly (readonly Endpoint[])[], options: AdmissionOptions): void {
    this.#groups = groups;
    this.#options = options;
    this.wake();
  }

  get size(): number {
    return this.#bands.Critical.length + this.#bands.Standard.length + this.#bands.Sheddable.length;
  }

  sizeOf(band: Criticality): number {
    return this.#bands[band].length;
  }

  /** True while requests are held: every endpoint is queueing. */
  saturated(): boolean {
    const now = this.#now();
    return this.#groups().some((g) => isSaturated(g, this.#options, now, 'queue'));
  }

  /** True while Sheddable requests are refused: no endpoint has headroom on queue or KV. */
  shedding(): boolean {
    const now = this.#now();
    return this.#groups().some((g) => isSaturated(g, this.#options, now, 'shed'));
  }

  /**
   * Resolves when the request may be scheduled; rejects with the refusal's GatewayError. `signal`
   * (or a function giving it, called only if the request must wait) takes a waiting request out.
   */
  admit(band: Criticality, signal: AbortSignal | (() => AbortSignal)): Promise<Ticket> {
    if (band === 'Sheddable' && this.#options.sheddable === 'reject' && this.shedding()) {
      return Promise.reject(new GatewayError('request_shed', 'the pool is saturated and the request is Sheddable', { retryAfterSeconds: this.#retryAfter() }));
    }
    if (this.size === 0 && !this.#inHandoff && !this.saturated()) return Promise.resolve(this.#immediate());
    if (this.size >= this.#options.maxRequests) {
      return Promise.reject(new GatewayError('queue_full', `the pool's queue holds its limit of ${this.#options.maxRequests} requests`, { retryAfterSeconds: this.#retryAfter() }));
    }
    return new Promise<Ticket>((resolve, reject) => {
      const abort = typeof signal === 'function' ? signal() : signal;
      const waiter: Waiter = { band, enqueuedAt: this.#now(), resolve, reject, timer: undefined, cleanup: () => undefined };
      const leave = (err: GatewayError): void => {
        const list = this.#bands[band];
        const i = list.indexOf(waiter);
        if (i === -1) return;
        list.splice(i, 1);
        waiter.cleanup();
        reject(err);
      };
      waiter.timer = setTimeout(
        () => leave(new GatewayError('queue_timeout', `waited ${Math.round(this.#options.ttlMs / 1000)} s in the queue without capacity freeing`, { retryAfterSeconds: this.#retryAfter() })),
        this.#options.ttlMs,
      );
      const onAbort = (): void => leave(new GatewayError('client_gone', 'the client went away while queued'));
      abort.addEventListener('abort', onAbort, { once: true });
      waiter.cleanup = () => {
        if (waiter.timer !== undefined) clearTimeout(waiter.timer);
        abort.removeEventListener('abort', onAbort);
      };
      this.#bands[band].push(waiter);
      this.#armRecheck();
      this.wake();
    });
  }

  /** Capacity may have freed (a request finished, a scrape arrived): let the next waiter go if so. */
  wake(): void {
    if (this.#inHandoff || this.size === 0) return;
    if (this.saturated()) {
      this.#armRecheck();
      return;
    }
    const waiter = this.#next();
    if (waiter === undefined) return;
    waiter.cleanup();
    this.#inHandoff = true;
    const waitedMs = this.#now() - waiter.enqueuedAt;
    this.#countDrain();
    let released = false;
    waiter.resolve({
      waitedMs,
      done: () => {
        if (released) return;
        released = true;
        this.#inHandoff = false;
        this.wake();
      },
    });
  }

  #immediate(): Ticket {
    this.#countDrain();
    return { waitedMs: 0, done: () => undefined };
  }

  #next(): Waiter | undefined {
    // Band order; a Sheddable request that queued (before saturation, or by option) goes last.
    for (const band of BANDS) {
      const w = this.#bands[band].shift();
      if (w !== undefined) return w;
    }
    return undefined;
  }

  #armRecheck(): void {
    if (this.#recheck !== undefined) return;
    this.#recheck = setTimeout(() => {
      this.#recheck = undefined;
      this.wake();
      if (this.size > 0) this.#armRecheck();
    }, this.#options.recheckMs);
    this.#recheck.unref();
  }

  #countDrain(): void {
    const now = this.#now();
    const dt = Math.max(1, now - this.#lastDrainAt) / 1000;
    this.#lastDrainAt = now;
    // One event per dt seconds is a rate of 1/dt; smooth over roughly the last 20 events.
    this.#drainRate = this.#drainRate === 0 ? 1 / dt : 0.95 * this.#drainRate + 0.05 / dt;
  }

  /** Seconds until the queue ahead has likely drained: queued / recent drain rate, 1–60. */
  #retryAfter(): number {
    if (this.#drainRate <= 0) return 1;
    return Math.min(60, Math.max(1, Math.ceil((this.size + 1) / this.#drainRate)));
  }

  /** Refuses every waiter (shutdown, or the pool left the configuration). */
  close(reason: GatewayError): void {
    if (this.#recheck !== undefined) clearTimeout(this.#recheck);
    for (const band of BANDS) {
      for (const w of this.#bands[band].splice(0)) {
        w.cleanup();
        w.reject(reason);
      }
    }
  }
}
