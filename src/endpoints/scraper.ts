import { Agent, type Dispatcher } from 'undici';
import type { Endpoint } from '../core/endpoint.js';
import { readBoundedText } from './bounded-read.js';
import { HealthReports } from './health-reports.js';
import { EventLoopDelay } from '../core/event-loop-delay.js';
import { extractMetrics } from './metrics/index.js';

/**
 * Largest `/metrics` page read, in bytes (after any content coding is decoded; the encoded bytes
 * are bounded by the same number). A vLLM page is 10–40 KiB per engine and model (mostly
 * histogram buckets), SGLang's and TensorRT-LLM's smaller; 4 MiB leaves room for a data-parallel
 * server with dozens of engines and LoRA series, and bounds what one scrape costs (a 64 MiB page
 * read whole every 50 ms took 474 MB of memory and 95 % of the gateway's throughput). Past it the
 * body is abandoned and the scrape fails.
 */
export const MAX_SCRAPE_BYTES = 4 * 1024 * 1024;

/**
 * Longest pause between scrapes of a server whose scrapes keep failing or yield no metrics
 * (oversized or garbage pages, 404, refused connections): the interval doubles per such scrape
 * from the 4th on, up to this, so a server sending junk cannot make the gateway spend its CPU
 * reading junk 20 times a second. A good scrape goes back to the normal interval at once.
 */
export const MAX_SCRAPE_BACKOFF_MS = 2_000;

/**
 * A scrape that failed at its deadline while the gateway's own event loop ran this late (as a
 * share of the scrape timeout) is inconclusive: neither a failure nor a success. At 1 s, a loop
 * 200 ms late means the gateway, not the server, may have been the slow one.
 */
const STARVED_SHARE_OF_TIMEOUT = 0.2;

/** Problem reports (log lines) allowed per endpoint per minute; more changes in that time wait. */
const PROBLEM_REPORTS_PER_MINUTE = 3;
/** Problems per report, and characters per problem (a problem may quote what the server sent). */
const MAX_PROBLEMS_REPORTED = 10;
const MAX_PROBLEM_CHARS = 300;

/** Scrape settings; every field has a default fit for a GPU model server. */
export interface ScrapeOptions {
  /** Time between the start of two scrapes of one endpoint. Default 50 ms (upstream's refresh). */
  readonly intervalMs?: number;
  /** A scrape slower than this fails. Default 1000 ms: a server too busy to render its metrics
   *  within a second is already saturated. */
  readonly timeoutMs?: number;
  /** Consecutive failed scrapes before the endpoint leaves the candidate set. Default 3. */
  readonly unhealthyAfter?: number;
  /** Largest page read, in bytes. Default MAX_SCRAPE_BYTES. */
  readonly maxPageBytes?: number;
  /** Longest pause between scrapes of a server whose scrapes keep failing. Default MAX_SCRAPE_BACKOFF_MS. */
  readonly maxBackoffMs?: number;
  /**
   * The process's event-loop delay monitor (the gateway shares its own with `/metrics`); the
   * scraper reads it to tell a timeout of its own making. Default: one of its own, closed with it.
   */
  readonly loopDelay?: EventLoopDelay;
}

/** What the scraper reports: a health change, or a change in what a page's problems are. */
export interface ScrapeEvents {
  /**
   * The endpoint's health changed (`reason`: why it is unhealthy). Reported a few times a minute
   * per endpoint at most (health-reports.ts): `notReported` changes before this one were not, and
   * a report may come on a later scrape than the change, saying the state then.
   */
  readonly onHealthChange?: (endpoint: Endpoint, healthy: boolean, reason: string | undefined, notReported: number) => void;
  readonly onProblems?: (endpoint: Endpoint, problems: readonly string[]) => void;
  /** After every successful scrape (metrics updated on the endpoint). */
  readonly onScrape?: (endpoint: Endpoint) => void;
  /** The endpoint had no configured runtime and its page showed another dialect, now used. */
  readonly onDialectDetected?: (endpoint: Endpoint, from: string, to: string) => void;
  /**
   * What the gateway knows of the endpoint's runtime changed: its dialect became known (or
   * another), or whether it is a Triton server. Decisions cached per pool (which names its pods
   * refuse) are taken again.
   */
  readonly onRuntimeLearned?: (endpoint: Endpoint) => void;
}

/** The metrics path of each dialect: trtllm-serve serves JSON at /metrics and Prometheus text here. */
function metricsPath(endpoint: Endpoint): string {
  return endpoint.dialect === 'trtllm-serve' ? '/prometheus/metrics' : '/metrics';
}

interface Loop {
  timer: NodeJS.Timeout | undefined;
  stopped: boolean;
}

/** Problems last reported for an endpoint, and when recent reports went out (rate limit). */
interface ProblemLog {
  key: string;
  times: number[];
}

/** What one scrape came to: usable metrics, a page without them, or a failure. */
type ScrapeResult = 'metrics' | 'no-metrics' | 'failed';

/**
 * Keeps every endpoint's `metrics` fresh: one loop per endpoint, each scrape starting `intervalMs`
 * after the previous one started, never two at once for one endpoint (a slow server is not piled
 * on). A scrape that fails or lacks a required signal counts as a failure; after `unhealthyAfter`
 * in a row the endpoint is unhealthy (not scheduled) until a scrape succeeds again.
 */
export class MetricsScraper {
  readonly #loops = new Map<Endpoint, Loop>();
  /** The problems last reported per endpoint: the same page has the same problems every 50 ms. */
  readonly #lastProblems = new WeakMap<Endpoint, ProblemLog>();
  readonly #healthReports = new WeakMap<Endpoint, HealthReports>();
  /** Scrapes in a row that gave no metrics, per endpoint (drives the back-off). */
  readonly #unproductive = new WeakMap<Endpoint, number>();
  readonly #interval: number;
  readonly #timeout: number;
  readonly #unhealthyAfter: number;
  readonly #maxPageBytes: number;
  readonly #maxBackoff: number;
  readonly #events: ScrapeEvents;
  readonly #dispatcher: Dispatcher;
  readonly #loopLag: EventLoopDelay;
  readonly #ownsLoopLag: boolean;
  #closed = false;

  constructor(options: ScrapeOptions = {}, events: ScrapeEvents = {}) {
    this.#interval = options.intervalMs ?? 50;
    this.#timeout = options.timeoutMs ?? 1000;
    this.#unhealthyAfter = options.unhealthyAfter ?? 3;
    this.#maxPageBytes = options.maxPageBytes ?? MAX_SCRAPE_BYTES;
    this.#maxBackoff = Math.max(this.#interval, options.maxBackoffMs ?? MAX_SCRAPE_BACKOFF_MS);
    this.#events = events;
    this.#ownsLoopLag = options.loopDelay === undefined;
    this.#loopLag = options.loopDelay ?? new EventLoopDelay();
    // A connection pool of its own, so scrapes never queue behind long inference streams.
    this.#dispatcher = new Agent({ connections: 2, keepAliveTimeout: 10_000, headersTimeout: this.#timeout, bodyTimeout: this.#timeout });
  }

  get intervalMs(): number {
    return this.#interval;
  }

  /** Starts loops for endpoints not yet scraped and stops those for endpoints no longer given. */
  sync(endpoints: Iterable<Endpoint>): void {
    const wanted = new Set(endpoints);
    for (const endpoint of this.#loops.keys()) if (!wanted.has(endpoint)) this.#stop(endpoint);
    for (const endpoint of wanted) this.#start(endpoint);
  }

  /** Starts scraping `added` and stops `removed`: costs O(the change), not O(all endpoints). */
  update(added: Iterable<Endpoint>, removed: Iterable<Endpoint>): void {
    for (const endpoint of removed) this.#stop(endpoint);
    for (const endpoint of added) this.#start(endpoint);
  }

  #start(endpoint: Endpoint): void {
    if (this.#loops.has(endpoint)) return;
    const loop: Loop = { timer: undefined, stopped: false };
    this.#loops.set(endpoint, loop);
    // A new endpoint gets traffic once it has answered a scrape (see Endpoint.ready).
    if (endpoint.metricsAt === 0 && endpoint.consecutiveScrapeFailures === 0) endpoint.awaitingFirstContact = true;
    // Spread first scrapes over one interval so N endpoints do not all fire in the same tick.
    this.#schedule(endpoint, loop, Math.random() * this.#interval);
  }

  #stop(endpoint: Endpoint): void {
    const loop = this.#loops.get(endpoint);
    if (loop === undefined) return;
    loop.stopped = true;
    if (loop.timer !== undefined) clearTimeout(loop.timer);
    this.#loops.delete(endpoint);
  }

  /**
   * Scrapes one endpoint now (also used by tests). A server that cannot be reached, times out,
   * answers 5xx or sends a page over `maxPageBytes` (or one that cannot be decoded) fails the
   * scrape. A server that answers but has no usable metrics (404, a page without the dialect's
   * signals: SGLang without `--enable-metrics`, say) is reachable: it stays schedulable on the
   * gateway's own in-flight counts, without metrics, and the problem is logged. The whole scrape,
   * body included, is bounded by `timeoutMs`.
   */
  async scrapeOnce(endpoint: Endpoint): Promise<void> {
    await this.#scrape(endpoint);
  }

  async #scrape(endpoint: Endpoint): Promise<ScrapeResult> {
    let failure: string | undefined;
    let result: ScrapeResult = 'no-metrics';
    const started = performance.now();
    try {
      const path = metricsPath(endpoint);
      const res = await this.#dispatcher.request({ origin: endpoint.origin, path, method: 'GET', signal: AbortSignal.timeout(this.#timeout) });
      const page = await readBoundedText(res, this.#maxPageBytes);
      if (typeof page !== 'string') {
        failure = `GET ${path}: ${page.failure}`;
      } else if (res.statusCode >= 500) {
        failure = `GET ${path} answered ${res.statusCode}`;
      } else if (res.statusCode !== 200) {
        endpoint.metrics = undefined;
        this.#reportProblems(endpoint, [`GET ${path} answered ${res.statusCode}: no load metrics; balancing this endpoint on in-flight requests only`]);
      } else {
        let extracted = extractMetrics(page, endpoint.dialect);
        const knew = `${endpoint.dialect}|${endpoint.dialectKnown()}|${endpoint.servedByTriton}`;
        if (!endpoint.dialectConfigured && extracted.detected !== undefined && extracted.detected !== endpoint.dialect) {
          // Nobody named a runtime and the page is clearly another one's: read it in its own names.
          this.#events.onDialectDetected?.(endpoint, endpoint.dialect, extracted.detected);
          endpoint.dialect = extracted.detected;
          extracted = extractMetrics(page, endpoint.dialect);
        }
        // The page speaks the dialect in use: the runtime is known now, not just the default.
        if (extracted.detected === endpoint.dialect) endpoint.dialectDetected = true;
        endpoint.servedByTriton = extracted.triton;
        if (`${endpoint.dialect}|${endpoint.dialectKnown()}|${endpoint.servedByTriton}` !== knew) this.#events.onRuntimeLearned?.(endpoint);
        this.#reportProblems(endpoint, extracted.problems);
        if (extracted.metrics === undefined) {
          endpoint.metrics = undefined;
        } else {
          result = 'metrics';
          endpoint.metrics = extracted.metrics;
          endpoint.metricsAt = performance.now();
          endpoint.inFlightAtScrape = endpoint.inFlight;
          endpoint.inFlightTokensAtScrape = endpoint.inFlightTokens;
        }
      }
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      failure = typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
    }
    if (this.#closed) return 'failed';
    if (failure !== undefined && this.#starvedAtDeadline(started)) {
      // Not the server's doing, as far as anyone can tell: its health stays as it was.
      endpoint.lastScrapeError = `${failure} (inconclusive: the gateway's event loop was ${Math.round(this.#loopLag.recentMaxMs())} ms late)`;
      return 'failed';
    }
    this.#record(endpoint, failure);
    if (failure === undefined) {
      endpoint.contacted();
      this.#events.onScrape?.(endpoint);
    }
    return failure === undefined ? result : 'failed';
  }

  /** The scrape ran into its deadline while the gateway's own event loop was starved. */
  #starvedAtDeadline(started: number): boolean {
    return performance.now() - started >= this.#timeout * 0.9 && this.#loopLag.recentMaxMs() >= this.#timeout * STARVED_SHARE_OF_TIMEOUT;
  }

  #record(endpoint: Endpoint, failure: string | undefined): void {
    let changed = false;
    if (failure === undefined) {
      endpoint.consecutiveScrapeFailures = 0;
      endpoint.lastScrapeError = undefined;
      if (!endpoint.healthy) {
        endpoint.healthy = true;
        changed = true;
      }
    } else {
      endpoint.consecutiveScrapeFailures++;
      endpoint.lastScrapeError = failure;
      if (endpoint.healthy && endpoint.consecutiveScrapeFailures >= this.#unhealthyAfter) {
        endpoint.healthy = false;
        changed = true;
      }
    }
    // Most endpoints never change: their reports are made only once one does (health-reports.ts).
    let reports = this.#healthReports.get(endpoint);
    if (reports === undefined) {
      if (!changed) return;
      reports = new HealthReports();
      this.#healthReports.set(endpoint, reports);
    }
    const notReported = reports.observe(changed, performance.now());
    if (notReported !== undefined) this.#events.onHealthChange?.(endpoint, endpoint.healthy, endpoint.lastScrapeError, notReported);
  }

  /**
   * Reports a page's problems when they change, cut to size (a problem may quote what the server
   * sent), and at most PROBLEM_REPORTS_PER_MINUTE times a minute per endpoint: a server whose
   * values change every scrape must not write a log line every 50 ms. A change held back is
   * reported by the first scrape after the minute.
   */
  #reportProblems(endpoint: Endpoint, problems: readonly string[]): void {
    const shown = problems.slice(0, MAX_PROBLEMS_REPORTED).map((p) => (p.length > MAX_PROBLEM_CHARS ? `${p.slice(0, MAX_PROBLEM_CHARS)}…` : p));
    if (problems.length > shown.length) shown.push(`and ${problems.length - shown.length} more`);
    const key = shown.join('\n');
    let log = this.#lastProblems.get(endpoint);
    if (log === undefined) {
      log = { key: '', times: [] };
      this.#lastProblems.set(endpoint, log);
    }
    if (log.key === key) return;
    if (shown.length === 0) {
      log.key = key;
      return;
    }
    const now = performance.now();
    log.times = log.times.filter((t) => now - t < 60_000);
    if (log.times.length >= PROBLEM_REPORTS_PER_MINUTE) return;
    log.times.push(now);
    log.key = key;
    this.#events.onProblems?.(endpoint, shown);
  }

  #schedule(endpoint: Endpoint, loop: Loop, delayMs: number): void {
    loop.timer = setTimeout(() => {
      const started = performance.now();
      void this.#scrape(endpoint).then((result) => {
        if (loop.stopped) return;
        this.#schedule(endpoint, loop, Math.max(0, this.#nextInterval(endpoint, result) - (performance.now() - started)));
      });
    }, delayMs);
    loop.timer.unref();
  }

  /** The interval before the next scrape: doubled per unproductive scrape past the third, capped. */
  #nextInterval(endpoint: Endpoint, result: ScrapeResult): number {
    const n = result === 'metrics' ? 0 : (this.#unproductive.get(endpoint) ?? 0) + 1;
    this.#unproductive.set(endpoint, n);
    if (n < this.#unhealthyAfter) return this.#interval;
    return Math.min(this.#maxBackoff, this.#interval * 2 ** Math.min(20, n - this.#unhealthyAfter + 1));
  }

  async close(): Promise<void> {
    for (const loop of this.#loops.values()) {
      loop.stopped = true;
      if (loop.timer !== undefined) clearTimeout(loop.timer);
    }
    this.#loops.clear();
    this.#closed = true;
    if (this.#ownsLoopLag) this.#loopLag.close();
    // Scrapes in flight are of no use any more: ended, not waited for (a silent server would hold
    // the gateway's shutdown for the whole scrape timeout).
    await this.#dispatcher.destroy();
  }
}
