import { Agent, type Dispatcher } from 'undici';
import type { Endpoint } from '../core/endpoint.js';
import { extractMetrics } from './metrics/index.js';

/** Scrape settings; every field has a default fit for a GPU model server. */
export interface ScrapeOptions {
  /** Time between the start of two scrapes of one endpoint. Default 50 ms (upstream's refresh). */
  readonly intervalMs?: number;
  /** A scrape slower than this fails. Default 1000 ms: a server too busy to render its metrics
   *  within a second is already saturated. */
  readonly timeoutMs?: number;
  /** Consecutive failed scrapes before the endpoint leaves the candidate set. Default 3. */
  readonly unhealthyAfter?: number;
}

/** What the scraper reports: a health change, or a change in what a page's problems are. */
export interface ScrapeEvents {
  readonly onHealthChange?: (endpoint: Endpoint, healthy: boolean, reason: string | undefined) => void;
  readonly onProblems?: (endpoint: Endpoint, problems: readonly string[]) => void;
  /** After every successful scrape (metrics updated on the endpoint). */
  readonly onScrape?: (endpoint: Endpoint) => void;
  /** The endpoint had no configured runtime and its page showed another dialect, now used. */
  readonly onDialectDetected?: (endpoint: Endpoint, from: string, to: string) => void;
}

/** The metrics path of each dialect: trtllm-serve serves JSON at /metrics and Prometheus text here. */
function metricsPath(endpoint: Endpoint): string {
  return endpoint.dialect === 'trtllm-serve' ? '/prometheus/metrics' : '/metrics';
}

interface Loop {
  timer: NodeJS.Timeout | undefined;
  stopped: boolean;
}

/**
 * Keeps every endpoint's `metrics` fresh: one loop per endpoint, each scrape starting `intervalMs`
 * after the previous one started, never two at once for one endpoint (a slow server is not piled
 * on). A scrape that fails or lacks a required signal counts as a failure; after `unhealthyAfter`
 * in a row the endpoint is unhealthy (not scheduled) until a scrape succeeds again.
 */
export class MetricsScraper {
  readonly #loops = new Map<Endpoint, Loop>();
  /** The problems last reported per endpoint: the same page has the same problems every 50 ms. */
  readonly #lastProblems = new WeakMap<Endpoint, string>();
  readonly #interval: number;
  readonly #timeout: number;
  readonly #unhealthyAfter: number;
  readonly #events: ScrapeEvents;
  readonly #dispatcher: Dispatcher;

  constructor(options: ScrapeOptions = {}, events: ScrapeEvents = {}) {
    this.#interval = options.intervalMs ?? 50;
    this.#timeout = options.timeoutMs ?? 1000;
    this.#unhealthyAfter = options.unhealthyAfter ?? 3;
    this.#events = events;
    // A connection pool of its own, so scrapes never queue behind long inference streams.
    this.#dispatcher = new Agent({ connections: 2, keepAliveTimeout: 10_000, headersTimeout: this.#timeout, bodyTimeout: this.#timeout });
  }

  get intervalMs(): number {
    return this.#interval;
  }

  /** Starts loops for endpoints not yet scraped and stops those for endpoints no longer given. */
  sync(endpoints: Iterable<Endpoint>): void {
    const wanted = new Set(endpoints);
    for (const [endpoint, loop] of this.#loops) {
      if (wanted.has(endpoint)) continue;
      loop.stopped = true;
      if (loop.timer !== undefined) clearTimeout(loop.timer);
      this.#loops.delete(endpoint);
    }
    for (const endpoint of wanted) {
      if (this.#loops.has(endpoint)) continue;
      const loop: Loop = { timer: undefined, stopped: false };
      this.#loops.set(endpoint, loop);
      // Spread first scrapes over one interval so N endpoints do not all fire in the same tick.
      this.#schedule(endpoint, loop, Math.random() * this.#interval);
    }
  }

  /**
   * Scrapes one endpoint now (also used by tests). A server that cannot be reached, times out or
   * answers 5xx fails the scrape. A server that answers but has no usable metrics (404, a page
   * without the dialect's signals: SGLang without `--enable-metrics`, say) is reachable: it stays
   * schedulable on the gateway's own in-flight counts, without metrics, and the problem is logged.
   */
  async scrapeOnce(endpoint: Endpoint): Promise<void> {
    let failure: string | undefined;
    try {
      const path = metricsPath(endpoint);
      const res = await this.#dispatcher.request({ origin: endpoint.origin, path, method: 'GET', signal: AbortSignal.timeout(this.#timeout) });
      const text = await res.body.text();
      if (res.statusCode >= 500) {
        failure = `GET ${path} answered ${res.statusCode}`;
      } else if (res.statusCode !== 200) {
        endpoint.metrics = undefined;
        this.#reportProblems(endpoint, [`GET ${path} answered ${res.statusCode}: no load metrics; balancing this endpoint on in-flight requests only`]);
      } else {
        let result = extractMetrics(text, endpoint.dialect);
        if (!endpoint.dialectConfigured && result.detected !== undefined && result.detected !== endpoint.dialect) {
          // Nobody named a runtime and the page is clearly another one's: read it in its own names.
          this.#events.onDialectDetected?.(endpoint, endpoint.dialect, result.detected);
          endpoint.dialect = result.detected;
          result = extractMetrics(text, endpoint.dialect);
        }
        this.#reportProblems(endpoint, result.problems);
        if (result.metrics === undefined) {
          endpoint.metrics = undefined;
        } else {
          endpoint.metrics = result.metrics;
          endpoint.metricsAt = performance.now();
          endpoint.inFlightAtScrape = endpoint.inFlight;
          endpoint.inFlightTokensAtScrape = endpoint.inFlightTokens;
        }
      }
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      failure = typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
    }
    this.#record(endpoint, failure);
    if (failure === undefined) this.#events.onScrape?.(endpoint);
  }

  #record(endpoint: Endpoint, failure: string | undefined): void {
    if (failure === undefined) {
      endpoint.consecutiveScrapeFailures = 0;
      endpoint.lastScrapeError = undefined;
      if (!endpoint.healthy) {
        endpoint.healthy = true;
        this.#events.onHealthChange?.(endpoint, true, undefined);
      }
      return;
    }
    endpoint.consecutiveScrapeFailures++;
    endpoint.lastScrapeError = failure;
    if (endpoint.healthy && endpoint.consecutiveScrapeFailures >= this.#unhealthyAfter) {
      endpoint.healthy = false;
      this.#events.onHealthChange?.(endpoint, false, failure);
    }
  }

  #reportProblems(endpoint: Endpoint, problems: readonly string[]): void {
    const key = problems.join('\n');
    if ((this.#lastProblems.get(endpoint) ?? '') === key) return;
    this.#lastProblems.set(endpoint, key);
    if (problems.length > 0) this.#events.onProblems?.(endpoint, problems);
  }

  #schedule(endpoint: Endpoint, loop: Loop, delayMs: number): void {
    loop.timer = setTimeout(() => {
      const started = performance.now();
      void this.scrapeOnce(endpoint).finally(() => {
        if (loop.stopped) return;
        this.#schedule(endpoint, loop, Math.max(0, this.#interval - (performance.now() - started)));
      });
    }, delayMs);
    loop.timer.unref();
  }

  async close(): Promise<void> {
    for (const loop of this.#loops.values()) {
      loop.stopped = true;
      if (loop.timer !== undefined) clearTimeout(loop.timer);
    }
    this.#loops.clear();
    await this.#dispatcher.close();
  }
}
