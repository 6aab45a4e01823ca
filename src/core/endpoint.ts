/**
 * A model-server endpoint (`address:port`) and the live state the gateway keeps about it: the last
 * scrape of its `/metrics`, its health, and the gateway's own exact accounting of what it has
 * dispatched there. The object outlives config snapshots: a reload that keeps the endpoint keeps
 * its counters and metrics, so requests in flight across a reload are accounted on one object.
 */

/** LoRA state from `vllm:lora_requests_info` (the newest series). */
export interface LoraState {
  /** Adapter slots (`--max-loras`); 0 when LoRA is off. */
  readonly maxLoras: number;
  /** Adapters with requests running, by name. */
  readonly running: readonly string[];
  /** Adapters with requests waiting, by name. */
  readonly waiting: readonly string[];
}

/** One scrape of a model server, in the gateway's units (vLLM vllm/v1/metrics/loggers.py, SGLang python/sglang/srt/metrics/collector.py, Triton's TensorRT-LLM backend metrics). */
export interface ModelServerMetrics {
  /** Requests queued in the server (summed over engines). */
  readonly waitingRequests: number;
  /** Requests in the running batch (summed over engines). */
  readonly runningRequests: number;
  /** KV-cache utilisation in [0, 1]: the fullest engine's. */
  readonly kvCacheUsage: number;
  /** Tokens per KV block. KV capacity in tokens = `blockSize * numGpuBlocks`. */
  readonly blockSize?: number;
  /** KV capacity in blocks (summed over engines). */
  readonly numGpuBlocks?: number;
  readonly lora?: LoraState;
  /** Cumulative prefix-cache hit tokens (a counter: compare two scrapes for a rate). */
  readonly prefixCacheHitsTokens?: number;
  /** Cumulative prefix-cache queried tokens (a counter). */
  readonly prefixCacheQueriesTokens?: number;
  /** Prefix-cache hit rate in [0, 1], for runtimes that only publish a gauge. */
  readonly prefixCacheHitRate?: number;
  /** Cumulative preemptions (a counter). */
  readonly preemptionsTotal?: number;
  /** Base model names the server labels its series with (`model_name`); adapters are not among them. */
  readonly servedModels?: readonly string[];
}

/** One model an endpoint serves, from its own `GET /v1/models`. */
export interface ServedModel {
  readonly id: string;
  /** The base model of a LoRA adapter (vLLM's `parent`); null for a base model. */
  readonly parent: string | null;
  readonly ownedBy?: string;
}

/** The metric dialect an endpoint is scraped in. */
export type MetricsDialect = 'vllm' | 'sglang' | 'trt-llm' | 'trtllm-serve';

/** Prefill/decode role in a disaggregated pool; `both` everywhere else. */
export type EndpointRole = 'prefill' | 'decode' | 'both';

export interface EndpointInit {
  readonly address: string;
  readonly port: number;
  readonly name: string;
  readonly podName: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly dialect?: MetricsDialect;
  /** True when the dialect was configured (annotation, traffic policy, pod label), not defaulted. */
  readonly dialectConfigured?: boolean;
  readonly role?: EndpointRole;
  /** SGLang PD: the prefill server's bootstrap port (pod annotation `sglang.ai/bootstrap-port`). */
  readonly bootstrapPort?: number;
}

export class Endpoint {
  /** `address:port` (IPv6 in brackets); unique within the process. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** Origin for the upstream HTTP client, e.g. `http://127.0.0.2:8000`. */
  readonly origin: string;
  /** Pod name, or `<pod>-rank-<i>` when a pool has several target ports. */
  name: string;
  podName: string;
  labels: Readonly<Record<string, string>>;
  dialect: MetricsDialect;
  /** False while the dialect is only the default; the scraper may then adopt the one it detects. */
  dialectConfigured: boolean;
  /**
   * True once a scrape's page showed this dialect's metric names. A dialect neither configured nor
   * detected is only the default guess: the gateway then adds nothing to a request that some
   * runtime refuses (`dialectKnown`).
   */
  dialectDetected = false;
  /**
   * The last readable `/metrics` page carried Triton's core series (`nv_inference_*`): the server
   * is Triton, whichever backend's names the page also shows.
   */
  servedByTriton = false;
  role: EndpointRole;
  /** SGLang PD: the bootstrap port its pod announces; undefined when it announces none. */
  bootstrapPort: number | undefined;

  // ------------------------------------------------ the gateway's own accounting (exact, live)

  /** Requests this gateway has dispatched to the endpoint and not yet finished. */
  inFlight = 0;
  /** Estimated prompt tokens of those requests (≈ characters / 4). */
  inFlightTokens = 0;
  /** In-flight requests per target model (base or LoRA adapter name). */
  readonly inFlightByModel = new Map<string, number>();
  /**
   * Estimated prompt tokens still to prefill: requests dispatched whose first response byte has
   * not arrived yet, counted without the part the prefix index expects cached. Prefills on one
   * engine share its step budget, so this is what delays the next request's first token.
   */
  pendingPrefillTokens = 0;

  // ------------------------------------------------ the model server's view (scraped, lagging)

  /** The last successful scrape, or undefined before the first. */
  metrics: ModelServerMetrics | undefined;
  /** `performance.now()` when `metrics` arrived. */
  metricsAt = 0;
  /** The in-flight counts when `metrics` arrived: what the server's numbers already include. */
  inFlightAtScrape = 0;
  inFlightTokensAtScrape = 0;
  /** What the server's `/v1/models` listed last (base models and adapters); undefined before. */
  servedModels: readonly ServedModel[] | undefined;

  /** False after repeated scrape failures; unhealthy endpoints are not scheduled. */
  healthy = true;
  /**
   * True from the moment the scraper starts watching a new endpoint until the server first answers
   * a scrape (or its `/v1/models`): a pod that just appeared may not accept connections yet, so it
   * gets no traffic while another endpoint of its pool is ready (runtime's availableOrAll).
   */
  awaitingFirstContact = false;
  consecutiveScrapeFailures = 0;
  lastScrapeError: string | undefined;

  // ------------------------------------------------ passive health (requests' own outcomes)

  /** Requests that failed in a row (unreachable, reset, timed out, 5xx); 0 after any success. */
  consecutiveFailures = 0;
  /** `performance.now()` until which the endpoint is ejected; 0 when it is not. */
  ejectedUntil = 0;
  /** Ejections so far; each lasts longer. Cleared by a success after returning. */
  ejections = 0;
  /**
   * `performance.now()` until which the endpoint is backed off: it answered 429 (full), or fails
   * far more of its requests than its peers. Scheduled only when no other candidate is free of
   * back-off; 0 when it is not backed off.
   */
  backoffUntil = 0;
  /** 429 answers in a row (each backs off twice as long). */
  consecutiveFull = 0;
  /** Outcomes judged so far (answers and failures), for the error share's warm-up. */
  answers = 0;
  /** Moving share in [0, 1] of recent outcomes that failed (4xx, 5xx, unreachable, reset, timed out). */
  errorShare = 0;

  constructor(init: EndpointInit) {
    this.address = init.address;
    this.port = init.port;
    this.key = endpointKey(init.address, init.port);
    const host = init.address.includes(':') ? `[${init.address}]` : init.address;
    this.origin = `http://${host}:${init.port}`;
    this.name = init.name;
    this.podName = init.podName;
    this.labels = init.labels;
    this.dialect = init.dialect ?? 'vllm';
    this.dialectConfigured = init.dialectConfigured ?? false;
    this.role = init.role ?? 'both';
    this.bootstrapPort = init.bootstrapPort;
  }

  /**
   * True when the endpoint's runtime is known: configured (pool annotation, traffic policy, pod
   * label) or seen on its own `/metrics` page. False before the first scrape, with scraping off,
   * while scrapes fail, or when the page names no runtime we know.
   */
  dialectKnown(): boolean {
    return this.dialectConfigured || this.dialectDetected;
  }

  /** Marks a request dispatched here; pair every call with `release` with the same arguments. */
  acquire(targetModel: string, promptTokens: number): void {
    this.inFlight++;
    this.inFlightTokens += promptTokens;
    this.inFlightByModel.set(targetModel, (this.inFlightByModel.get(targetModel) ?? 0) + 1);
  }

  release(targetModel: string, promptTokens: number): void {
    this.inFlight--;
    this.inFlightTokens -= promptTokens;
    const n = (this.inFlightByModel.get(targetModel) ?? 1) - 1;
    if (n <= 0) this.inFlightByModel.delete(targetModel);
    else this.inFlightByModel.set(targetModel, n);
  }

  /**
   * True when the endpoint may get new requests: its scrapes succeed and it is not ejected by
   * passive health. An endpoint that is not available has stopped answering: its silent
   * requests are ended by the data plane.
   */
  available(now: number): boolean {
    return this.healthy && now >= this.ejectedUntil;
  }

  /** True when the endpoint may be scheduled: available, and it has answered since it appeared. */
  ready(now: number): boolean {
    return !this.awaitingFirstContact && this.available(now);
  }

  /** The server answered (a scrape reached it, or its model list): it is no longer new. */
  contacted(): void {
    this.awaitingFirstContact = false;
  }

  /** True while passive health backs the endpoint off (it said it is full, or fails far more than its peers). */
  backedOff(now: number): boolean {
    return now < this.backoffUntil;
  }

  /** Milliseconds since the last successful scrape; Infinity before the first. */
  metricsAgeMs(now: number): number {
    return this.metrics === undefined ? Infinity : now - this.metricsAt;
  }

  /**
   * Requests waiting in the server, corrected for what this gateway sent since the scrape. A
   * server that was queueing at the scrape queues those too, so they are added; a server with an
   * empty queue admits new requests into its running batch, so they are not (counting them would
   * make two fresh requests on an idle 256-slot server look like a queue). Bursts onto an idle
   * pool are spread by the exact in-flight count instead. Without metrics: the in-flight count.
   */
  estimatedWaiting(): number {
    const m = this.metrics;
    if (m === undefined) return this.inFlight;
    return m.waitingRequests > 0 ? m.waitingRequests + Math.max(0, this.inFlight - this.inFlightAtScrape) : 0;
  }

  /** KV utilisation corrected for prompt tokens sent since the scrape, when the capacity is known. */
  estimatedKvUsage(): number {
    const m = this.metrics;
    if (m === undefined) return 0;
    const capacity = m.blockSize !== undefined && m.numGpuBlocks !== undefined ? m.blockSize * m.numGpuBlocks : 0;
    const added = capacity > 0 && Number.isFinite(capacity) ? Math.max(0, this.inFlightTokens - this.inFlightTokensAtScrape) / capacity : 0;
    // The scraper bounds kvCacheUsage to [0, 1]; a value set another way must not leak NaN into scores.
    const usage = m.kvCacheUsage + added;
    return usage >= 0 ? Math.min(1, usage) : 0;
  }
}

export function endpointKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
