import { Counter, Gauge, Registry, type Aggregator } from 'prom-client';
import type { Endpoint } from '../core/endpoint.js';
import type { PrefixIndex } from '../prefix/index.js';
import type { EventLoopDelay } from '../core/event-loop-delay.js';
import { registerEventLoopDelay } from './event-loop-delay.js';
import { CounterFamily, HistogramFamily } from './series.js';

/** What the metrics need to read at scrape time: the live pools and the prefix index. */
export interface MetricsSources {
  readonly pools: () => Iterable<{ readonly key: string; readonly endpoints: readonly Endpoint[]; readonly queued: (band: 'Critical' | 'Standard' | 'Sheddable') => number }>;
  readonly prefixIndex: PrefixIndex;
  /** The process's event-loop delay monitor, exported as `infergate_event_loop_delay_seconds`; none, no such series. */
  readonly loopDelay?: EventLoopDelay;
}

/** One finished request, as the metrics see it. */
export interface RequestRecord {
  readonly pool: string;
  readonly model: string;
  readonly targetModel: string;
  readonly status: number;
  /** Error code, or '' for success. */
  readonly code: string;
  readonly durationS: number;
  readonly ttftS: number | undefined;
  readonly queueWaitS: number | undefined;
  readonly promptTokens: number | undefined;
  readonly completionTokens: number | undefined;
  readonly cachedTokens: number | undefined;
  /**
   * The answer carried no usage (a stream whose runtime was not known to accept the usage
   * request): its completion tokens are the gateway's count of the stream's chunks.
   */
  readonly usageEstimated?: boolean;
  /** A prefill/decode pool's decision for the request (`disaggregated`, `cached-on-decode`, …). */
  readonly pdReason?: string;
  /** Gaps between the streamed answer's chunks as the client got them, in seconds (≈ ITL). */
  readonly itlS?: readonly number[];
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160];
/** vLLM's inter-token latency buckets (vLLM vllm/v1/metrics/loggers.py, docs/design/metrics.md). */
const ITL_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const SCHEDULING_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1];

/**
 * The gateway's own Prometheus metrics (`/metrics` on the admin port). Per-request series are
 * updated once per request in `record` (series.ts: found without hashing label objects);
 * per-endpoint and per-queue gauges are read from the live
 * objects only when Prometheus scrapes, so the hot path pays nothing for them.
 *
 * Each series names how the workers of `infergate serve --workers N` combine into the one answer
 * the admin port gives (prom-client's `aggregator`, read by `AggregatorRegistry.aggregate`):
 * counters and histograms sum (the default), as do the gateway's own queues and in-flight
 * counts; what each worker only estimates of a server takes the highest estimate; health the
 * lowest (0 when any worker does not schedule the endpoint).
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #requests: CounterFamily;
  readonly #tokens: CounterFamily;
  readonly #usageEstimated: CounterFamily;
  readonly #ttft: HistogramFamily;
  readonly #duration: HistogramFamily;
  readonly #queueWait: HistogramFamily;
  readonly #scheduling: HistogramFamily;
  readonly #pd: CounterFamily;
  readonly #itl: HistogramFamily;
  readonly #rewrites: Counter<'model_rewrite_name' | 'model_name' | 'target_model'>;

  constructor(sources: MetricsSources) {
    const r = this.registry;
    this.#requests = new CounterFamily({ name: 'infergate_requests_total', help: 'Requests handled, by outcome (code is empty on success).', labelNames: ['pool', 'model', 'target_model', 'status', 'code'], registers: [r] });
    this.#tokens = new CounterFamily({ name: 'infergate_tokens_total', help: 'Tokens from response usage: prompt, completion, and prompt tokens served from the prefix cache.', labelNames: ['pool', 'model', 'kind'], registers: [r] });
    this.#usageEstimated = new CounterFamily({ name: 'infergate_usage_estimated_requests_total', help: 'Streamed answers without a usage event (the runtime was not known to accept stream_options.include_usage): their completion tokens are counted from the chunks.', labelNames: ['pool', 'model'], registers: [r] });
    this.#ttft = new HistogramFamily({ name: 'infergate_time_to_first_token_seconds', help: 'From request arrival to the first response byte.', labelNames: ['pool', 'model'], buckets: LATENCY_BUCKETS, registers: [r] });
    this.#duration = new HistogramFamily({ name: 'infergate_request_duration_seconds', help: 'From request arrival to the last response byte.', labelNames: ['pool', 'model'], buckets: LATENCY_BUCKETS, registers: [r] });
    this.#queueWait = new HistogramFamily({ name: 'infergate_queue_wait_seconds', help: 'Time requests waited in the gateway queue (0 when admitted at once).', labelNames: ['pool'], buckets: LATENCY_BUCKETS, registers: [r] });
    this.#pd = new CounterFamily({ name: 'infergate_pd_requests_total', help: 'Requests to prefill/decode pools, by decision: disaggregated, or kept on decode and why.', labelNames: ['pool', 'reason'], registers: [r] });
    this.#itl = new HistogramFamily({ name: 'infergate_inter_token_latency_seconds', help: 'Gaps between the chunks of streamed answers as the client got them (one chunk is one token on vLLM and SGLang).', labelNames: ['pool', 'model'], buckets: ITL_BUCKETS, registers: [r] });
    // Upstream's name and labels (GIE pkg/epp/metrics), so its dashboards read ours.
    this.#rewrites = new Counter({ name: 'inference_extension_model_rewrite_decisions_total', help: 'Requests whose model an InferenceModelRewrite rule rewrote, by rewrite, requested model and drawn target.', labelNames: ['model_rewrite_name', 'model_name', 'target_model'], registers: [r] });
    this.#scheduling = new HistogramFamily({ name: 'infergate_scheduling_duration_seconds', help: 'Time to run the scheduling profile for a request.', labelNames: ['pool'], buckets: SCHEDULING_BUCKETS, registers: [r] });

    new Gauge({
      name: 'infergate_queue_size',
      help: 'Requests waiting in the gateway queue, by pool and criticality band.',
      labelNames: ['pool', 'criticality'],
      registers: [r],
      aggregator: 'sum',
      collect() {
        this.reset();
        for (const p of sources.pools()) for (const band of ['Critical', 'Standard', 'Sheddable'] as const) this.set({ pool: p.key, criticality: band }, p.queued(band));
      },
    });
    const perEndpoint = (name: string, help: string, aggregator: Aggregator, value: (e: Endpoint) => number | undefined): void => {
      new Gauge({
        name,
        help,
        labelNames: ['pool', 'endpoint', 'address', 'role'],
        registers: [r],
        aggregator,
        collect() {
          this.reset();
          for (const p of sources.pools()) {
            for (const e of p.endpoints) {
              const v = value(e);
              if (v !== undefined) this.set({ pool: p.key, endpoint: e.name, address: e.key, role: e.role }, v);
            }
          }
        },
      });
    };
    perEndpoint('infergate_endpoint_waiting_requests', 'Server queue as the gateway estimates it (last scrape, plus requests sent since when it was queueing).', 'max', (e) => e.estimatedWaiting());
    perEndpoint('infergate_endpoint_running_requests', 'Running requests from the last scrape.', 'max', (e) => e.metrics?.runningRequests);
    perEndpoint('infergate_endpoint_kv_cache_usage', 'KV-cache utilisation as the gateway estimates it (0..1).', 'max', (e) => (e.metrics === undefined ? undefined : e.estimatedKvUsage()));
    perEndpoint('infergate_endpoint_inflight_requests', 'Requests this gateway has in flight on the endpoint.', 'sum', (e) => e.inFlight);
    perEndpoint('infergate_endpoint_pending_prefill_tokens', 'Prompt tokens sent to the endpoint that have not produced a first byte yet.', 'sum', (e) => e.pendingPrefillTokens);
    perEndpoint('infergate_endpoint_healthy', '1 when the endpoint is scheduled, 0 after repeated scrape failures or while ejected by passive health.', 'min', (e) => (e.ready(performance.now()) ? 1 : 0));
    perEndpoint('infergate_endpoint_metrics_age_seconds', 'Age of the last successful scrape.', 'min', (e) => (e.metrics === undefined ? undefined : (performance.now() - e.metricsAt) / 1000));
    perEndpoint('infergate_prefix_index_entries', 'Prefix blocks the index believes the endpoint caches.', 'max', (e) => sources.prefixIndex.entriesOf(e));
    if (sources.loopDelay !== undefined) registerEventLoopDelay(r, sources.loopDelay);
    new Gauge({
      name: 'infergate_prefix_index_hit_ratio',
      help: 'Share of prompt blocks found on some candidate at scheduling time, since start.',
      registers: [r],
      // Workers see similar shares of similar traffic (connections are dealt round-robin).
      aggregator: 'average',
      collect() {
        this.set(sources.prefixIndex.hitRatio);
      },
    });
  }

  record(r: RequestRecord): void {
    this.#requests.inc([r.pool, r.model, r.targetModel, String(r.status), r.code]);
    const labels = [r.pool, r.model];
    this.#duration.observe(labels, r.durationS);
    if (r.ttftS !== undefined) this.#ttft.observe(labels, r.ttftS);
    if (r.queueWaitS !== undefined) this.#queueWait.observe([r.pool], r.queueWaitS);
    if (r.promptTokens !== undefined) this.#tokens.inc([r.pool, r.model, 'prompt'], r.promptTokens);
    if (r.completionTokens !== undefined) this.#tokens.inc([r.pool, r.model, 'completion'], r.completionTokens);
    if (r.cachedTokens !== undefined) this.#tokens.inc([r.pool, r.model, 'cached'], r.cachedTokens);
    if (r.usageEstimated === true) this.#usageEstimated.inc(labels);
    if (r.pdReason !== undefined) this.#pd.inc([r.pool, r.pdReason]);
    if (r.itlS !== undefined && r.itlS.length > 0) {
      const itl = this.#itl.child(labels);
      for (const gap of r.itlS) itl.observe(gap);
    }
  }

  /** One InferenceModelRewrite decision; every label must be a configured name (the caller bounds `model`). */
  recordModelRewrite(rewriteName: string, model: string, target: string): void {
    this.#rewrites.inc({ model_rewrite_name: rewriteName, model_name: model, target_model: target });
  }

  observeScheduling(pool: string, seconds: number): void {
    this.#scheduling.observe([pool], seconds);
  }
}
