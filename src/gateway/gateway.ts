import { randomUUID } from 'node:crypto';
import { errorCount, formatProblem, type Problem, type Resource } from '../api/types.js';
import { ConfigRejectedError, ConfigStore, type PreparedChange } from '../config/store.js';
import type { ApplyOutcome, ConfigBatch, ConfigSource } from '../config/source.js';
import type { Snapshot } from '../config/snapshot.js';
import type { Random } from '../core/weighted.js';
import { GatewayError } from '../core/errors.js';
import { EventLoopDelay } from '../core/event-loop-delay.js';
import { EndpointDiscovery, type EndpointDelta } from '../endpoints/discovery.js';
import { DEFAULT_PASSIVE_HEALTH, PassiveHealth, type PassiveHealthOptions } from '../endpoints/passive-health.js';
import { EndpointRegistry } from '../endpoints/registry.js';
import { ModelLister } from '../endpoints/model-lister.js';
import { MetricsScraper } from '../endpoints/scraper.js';
import type { AdmissionGate } from '../flowcontrol/admission.js';
import type { Logger } from '../observability/logger.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { registerSourceStaleGauge } from './source-metrics.js';
import { PrefixIndex } from '../prefix/index.js';
import { registerPreciseMetrics } from './precise-metrics.js';
import { PrecisePrefix } from './precise-prefix.js';
import type { ClosableTokenizer } from './tokenizer-catalog.js';
import { PluginConfigError, type PluginRegistry } from '../scheduling/registry.js';
import { builtinRegistry } from '../scheduling/policies.js';
import type { PluginHandle } from '../scheduling/types.js';
import { podModels, poolModels, type PodModels } from './backend-choice.js';
import { debugEndpoints } from './debug-endpoints.js';
import { modelsAnswer } from './model-list.js';
import { endpointsChangedFields } from './endpoints-changed.js';
import { ServedModels } from './served-models.js';
import { Pipeline } from './pipeline.js';
import { RequestHandle, type RequestDeps, type RequestInit } from './request.js';
import { buildRuntime, peerGroups, RuntimeBuildError, type PoolRuntime, type Runtime } from './runtime.js';
import type { Endpoint } from '../core/endpoint.js';
import { DEFAULT_TIMEOUTS, type UpstreamTimeouts } from './timeouts.js';
import { uploadPolicy, type UploadOptions, type UploadPolicy } from './upload.js';
import { checkPoolBodyLimits, poolBodyLimit, type PoolBodyLimits } from './pool-entry.js';

export interface GatewayOptions {
  /** Where configuration comes from (files, code, later Kubernetes); at least one. */
  readonly sources: readonly ConfigSource[];
  readonly logger: Logger;
  /** Time between two scrapes of one endpoint's /metrics. Default 50 ms; 0 turns scraping off. */
  readonly scrapeIntervalMs?: number;
  /** A scrape slower than this fails. Default 1000 ms. */
  readonly scrapeTimeoutMs?: number;
  /** Metrics older than this are not trusted. Default max(200 ms, 4 scrape intervals). */
  readonly stalenessMs?: number;
  readonly random?: Random;
  /** Plugin types available to policies. Default: every built-in plugin. */
  readonly plugins?: PluginRegistry;
  /** Loads the tokenizer directory a precise pool names; default src/tokens `loadTokenizer` (on the process's tokenizer worker thread). */
  readonly loadTokenizer?: (dir: string) => Promise<ClosableTokenizer>;
  /** How long to wait for model servers, by phase; unset fields keep their defaults. */
  readonly timeouts?: Partial<UpstreamTimeouts>;
  /** When request failures eject an endpoint; unset fields keep their defaults. */
  readonly passiveHealth?: Partial<PassiveHealthOptions>;
  /** The body budget and upload timeouts; unset fields keep their defaults. */
  readonly uploads?: UploadOptions;
  /**
   * Body limits of pools served by pool key (the endpoint picker, where Envoy routed and no
   * listener's limit applies), in bytes: one for every pool, or per `namespace/name`. Default
   * DEFAULT_POOL_BODY_LIMIT_BYTES (16 MiB, a listener's default).
   */
  readonly poolBodyLimitBytes?: PoolBodyLimits;
}

/**
 * A check a data plane runs before a new snapshot goes live (the standalone proxy binds the new
 * listener ports); throwing rejects the whole change, which is then reported like invalid config.
 * It may return a rollback, called if the change is refused after it (by a later check).
 */
export type BeforeSwap = (snapshot: Snapshot, previous: Snapshot | undefined) => Promise<(() => void) | void>;

/** Told about each committed swap. */
export type AfterSwap = (snapshot: Snapshot, previous: Snapshot | undefined) => void;

/** Request ids are echoed in logs and headers: a client's is kept only when short and printable. */
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The gateway core, transport-neutral: it owns the configuration (sources → store → snapshot →
 * runtime, swapped atomically), endpoint discovery and scraping, the admission gates, the prefix
 * index, the metrics and the request log. A data plane (the standalone HTTP proxy; an Envoy
 * ext_proc server) calls `begin` per request and drives the handle's lifecycle; it never touches
 * scheduling, accounting or configuration itself.
 */
export class Gateway {
  readonly metrics: GatewayMetrics;
  readonly prefixIndex = new PrefixIndex();
  /** Precise prefix-cache routing: the engines' KV blocks from their events, and the tokenizers (precise-prefix.ts). */
  readonly precise: PrecisePrefix;
  /** What bounds request bodies while a data plane reads them: the global budget, the upload timeouts. */
  readonly uploads: UploadPolicy;
  readonly #logger: Logger;
  readonly #sources: readonly ConfigSource[];
  readonly #store = new ConfigStore();
  readonly #registry = new EndpointRegistry();
  readonly #discovery: EndpointDiscovery;
  readonly #scraper: MetricsScraper | undefined;
  readonly #gates = new Map<string, AdmissionGate>();
  readonly #plugins: PluginRegistry;
  readonly #handle: PluginHandle;
  readonly #pipeline: Pipeline;
  readonly #recheckMs: number;
  readonly #beforeSwap: BeforeSwap[] = [];
  readonly #afterSwap: AfterSwap[] = [];
  readonly #passiveHealth: PassiveHealth;
  /** The event-loop delay monitor (one per gateway): the scraper's starvation check and `/metrics` read it. */
  readonly #loopDelay = new EventLoopDelay();
  readonly #timeouts: UpstreamTimeouts;
  readonly #lister: ModelLister | undefined;
  /** What the pods' own model lists serve (adapters' base models, ids known by listing). */
  readonly #served = new ServedModels();
  /** Model names the configuration gives (InferenceModel names and targets, rewrite rules). */
  #configModels = new Set<string>();
  /** What each pool's pods serve (backend-choice.ts): rebuilt when lists, members or config change. */
  #poolModels = new Map<string, PodModels>();
  /** Pools already reported as selecting no pod (see #warnEmptyPools). */
  readonly #emptyPools = new Set<string>();
  readonly #requestDeps: RequestDeps;
  readonly #poolBodyLimits: PoolBodyLimits | undefined;
  #runtime: Runtime | undefined;
  /** Batches apply one at a time, in arrival order. */
  #applying: Promise<unknown> = Promise.resolve();
  #closed = false;
  #draining = false;

  private constructor(options: GatewayOptions) {
    const logger = options.logger;
    this.#logger = logger;
    this.#sources = options.sources;
    this.#plugins = options.plugins ?? builtinRegistry();
    this.#pipeline = new Pipeline(options.random);
    const scrapeIntervalMs = options.scrapeIntervalMs ?? 50;
    this.#recheckMs = Math.max(10, scrapeIntervalMs || 50);
    this.precise = new PrecisePrefix({ logger, ...(options.loadTokenizer === undefined ? {} : { loadTokenizer: options.loadTokenizer }) });
    this.#handle = { prefixIndex: this.prefixIndex, stalenessMs: options.stalenessMs ?? Math.max(200, 4 * scrapeIntervalMs), now: () => performance.now(), precise: this.precise.services };
    this.#scraper =
      scrapeIntervalMs > 0
        ? new MetricsScraper(
            { intervalMs: scrapeIntervalMs, loopDelay: this.#loopDelay, ...(options.scrapeTimeoutMs === undefined ? {} : { timeoutMs: options.scrapeTimeoutMs }) },
            {
              // `changesNotLogged`: a flapping endpoint's changes between two lines (scraper.ts limits them).
              onHealthChange: (e, healthy, reason, notReported) => {
                const flaps = notReported > 0 ? { changesNotLogged: notReported } : {};
                if (healthy) logger.info({ endpoint: e.name, address: e.key, ...flaps }, 'endpoint healthy again');
                else logger.warn({ endpoint: e.name, address: e.key, reason, ...flaps }, 'endpoint unhealthy: scrapes failing; not scheduled');
              },
              onDialectDetected: (e, from, to) => logger.info({ endpoint: e.name, address: e.key, from, to }, 'endpoint metrics dialect detected from its /metrics'),
              onProblems: (e, problems) => logger.warn({ endpoint: e.name, address: e.key, dialect: e.dialect, problems }, 'endpoint metrics problem'),
              // A fresh scrape may show freed capacity: let queued requests re-check.
              onScrape: () => this.#wakeGates(),
              onRuntimeLearned: (e) => this.#runtimeLearned(e),
            },
          )
        : undefined;
    this.#timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.uploads = uploadPolicy(options.uploads);
    checkPoolBodyLimits(options.poolBodyLimitBytes);
    this.#poolBodyLimits = options.poolBodyLimitBytes;
    this.#passiveHealth = new PassiveHealth(
      { ...DEFAULT_PASSIVE_HEALTH, ...options.passiveHealth },
      {
        onEjected: (e, failures, forMs, reason) => logger.warn({ endpoint: e.name, address: e.key, failures, ejectedMs: forMs, reason }, 'endpoint ejected: requests failing; not scheduled'),
        onReturned: (e) => logger.info({ endpoint: e.name, address: e.key }, 'endpoint returned after ejection'),
        onEjectionCapped: (e, reason) => logger.warn({ endpoint: e.name, address: e.key, reason }, 'endpoint not ejected: its pool is at its ejection limit (maxEjectionPercent)'),
        onBackoff: (e, forMs, reason) => logger.info({ endpoint: e.name, address: e.key, backoffMs: Math.round(forMs), reason }, 'endpoint backed off: scheduled only when no other is free'),
      },
      () => performance.now(),
      (e) => this.#peerGroups(e),
    );
    this.#lister = scrapeIntervalMs > 0 ? new ModelLister({}, (e) => this.#listChanged(e)) : undefined;
    this.#discovery = new EndpointDiscovery(this.#registry, {
      onRoleless: (pod, target, value) =>
        logger.warn(
          { pool: target.key.replace(/^pool:/, ''), pod: `${pod.metadata.namespace}/${pod.metadata.name}`, label: target.roleLabel, value: value === undefined ? null : value.slice(0, 63) },
          'pod has no prefill/decode role: not routable in this prefill/decode pool',
        ),
      onChange: (targets, delta) => {
        if (delta === undefined) {
          const all = this.#discovery.endpoints();
          this.#scraper?.sync(all);
          this.#lister?.sync(all);
          this.prefixIndex.retainOnly(all);
          this.precise.sync(this.#runtime);
          this.#poolModels = poolModels(this.#runtime);
        } else {
          this.#endpointsMoved(targets, delta);
        }
        this.#wakeGates();
      },
    });
    this.metrics = new GatewayMetrics({
      pools: () => [...(this.#runtime?.pools.values() ?? [])].map((p) => ({ key: p.config.key, endpoints: p.members.endpoints, queued: (band) => p.gate.sizeOf(band) })),
      prefixIndex: this.prefixIndex,
      loopDelay: this.#loopDelay,
    });
    registerSourceStaleGauge(this.metrics.registry, options.sources);
    registerPreciseMetrics(this.metrics.registry, this.precise, () => this.#runtime);
    this.#requestDeps = {
      pipeline: this.#pipeline,
      logger,
      metrics: this.metrics,
      passiveHealth: this.#passiveHealth,
      timeouts: this.#timeouts,
      baseModelOf: (m) => this.#served.baseOf(m),
      knownModel: (m) => this.knownModel(m),
      poolModels: () => this.#poolModels,
      poolBodyLimit: (poolKey) => this.poolBodyLimit(poolKey),
    };
  }

  /**
   * Starts the sources and applies their first state. Throws ConfigRejectedError (naming each
   * resource, field and reason) when that state is invalid: a gateway never starts half-configured.
   */
  static async start(options: GatewayOptions): Promise<Gateway> {
    if (options.sources.length === 0) throw new Error('the gateway needs at least one configuration source');
    const gateway = new Gateway(options);
    try {
      for (const source of gateway.#sources) {
        const first = await source.start((batch) => gateway.#enqueue(source, batch), gateway.#logger);
        if (!first.ok) throw new ConfigRejectedError(first.errors);
      }
    } catch (err) {
      await gateway.close();
      throw err;
    }
    return gateway;
  }

  /** The runtime new requests use; undefined until the first configuration applied. */
  get runtime(): Runtime | undefined {
    return this.#runtime;
  }

  get pluginHandle(): PluginHandle {
    return this.#handle;
  }

  /** Runs before each configuration swap; see BeforeSwap. */
  beforeSwap(hook: BeforeSwap): void {
    this.#beforeSwap.push(hook);
  }

  /**
   * Runs after each configuration swap is committed (the data plane drains ports it no longer
   * serves). It cannot refuse the change; a failure is logged.
   */
  afterSwap(hook: AfterSwap): void {
    this.#afterSwap.push(hook);
  }

  /**
   * The resources (every kind but Pods, of every source) the live configuration was compiled from:
   * what Kubernetes status reporting judges after each swap. A new array per call; the resources
   * are the store's own, read only.
   */
  configResources(): readonly Resource[] {
    return this.#store.resources();
  }

  /**
   * The largest body, in bytes, a request for the InferencePool `poolKey` (`namespace/name`) may
   * send when the data plane serves pools rather than listeners (the endpoint picker: read no more
   * before `RequestHandle.routePool`). From GatewayOptions `poolBodyLimitBytes`, else 16 MiB
   * (DEFAULT_POOL_BODY_LIMIT_BYTES, a listener's default); an unknown pool gets the default too
   * (routePool refuses it).
   */
  poolBodyLimit(poolKey: string): number {
    return poolBodyLimit(this.#poolBodyLimits, poolKey);
  }

  /** A new request: its handle captures the runtime live now and keeps it to the end. */
  begin(init: RequestInit): RequestHandle {
    const id = init.requestId !== undefined && REQUEST_ID.test(init.requestId) ? init.requestId : randomUUID();
    return new RequestHandle(init, this.#runtime, this.#requestDeps, id);
  }

  /**
   * What the gateway answers itself on a listener: `GET /v1/models` (InferenceModel names and what
   * the pods serve) and `GET /v1/models/{id}`; undefined for any other path.
   */
  modelsAnswer(port: number, path: string): { status: number; body: unknown } | undefined {
    return modelsAnswer(this.#runtime, port, path);
  }

  /** The base model of a LoRA adapter, as the serving pods list it. */
  baseModelOf(model: string): string | undefined {
    return this.#served.baseOf(model);
  }

  /**
   * True for model names the gateway knows (InferenceModel names and targets, models the pods
   * list): only those become metric labels; any other name a client sends counts as `other`.
   */
  knownModel(name: string): boolean {
    return this.#configModels.has(name) || this.#served.has(name);
  }

  /** Re-reads every source now; resolves with each source's outcome. */
  reload(): Promise<ApplyOutcome[]> {
    return Promise.all(this.#sources.map((s) => s.resync()));
  }

  /**
   * Readiness of the core: a configuration is loaded. A source serving a stale view (see
   * SourceHealth) leaves the gateway ready and is named in `stale`.
   */
  ready(): { ready: boolean; reason?: string; version?: number; stale?: Array<{ source: string; detail: string }> } {
    const s = this.#runtime?.snapshot;
    if (s === undefined) return { ready: false, reason: 'no configuration loaded' };
    const stale: Array<{ source: string; detail: string }> = [];
    for (const src of this.#sources) {
      const h = src.health?.();
      if (h?.stale === true) stale.push({ source: src.name, detail: h.detail ?? 'stale' });
    }
    return stale.length === 0 ? { ready: true, version: s.version } : { ready: true, version: s.version, stale };
  }

  /** `GET /debug/endpoints`: every pool and endpoint as the scheduler sees them now. */
  debugEndpoints(): unknown {
    return this.#runtime === undefined ? { pools: [] } : debugEndpoints(this.#runtime, this.prefixIndex, this.#handle, this.precise);
  }

  /**
   * The first half of shutting down: stop taking configuration changes and refuse the requests
   * still queued (`gateway_shutting_down`). Scraping goes on, so the requests still in flight
   * keep being judged by live endpoint health until `close`.
   */
  async drain(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    await Promise.all(this.#sources.map((s) => s.stop().catch(() => undefined)));
    await this.#applying.catch(() => undefined);
    for (const gate of this.#gates.values()) gate.close(new GatewayError('gateway_shutting_down', 'the gateway is shutting down'));
  }

  /** Drains (if not yet) and stops the scraper and model listing. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.drain();
    await this.#scraper?.close();
    await this.#lister?.close();
    await this.precise.close();
    this.#loopDelay.close();
  }

  /** Rebuilds what depends on the models the pods list (after a listing changed, or a config swap). */
  #refreshModels(): void {
    this.#served.reset(this.#discovery.endpoints());
    const known = new Set<string>();
    for (const pool of this.#runtime?.snapshot.pools.values() ?? []) {
      for (const m of pool.models.values()) {
        known.add(m.modelName);
        for (const t of m.targets.items) known.add(t);
      }
      // Rewrite rules' names and targets (a generic rule's matched name is the client's: not known).
      const rules = [...pool.rewrites.exact.values(), ...(pool.rewrites.generic === undefined ? [] : [pool.rewrites.generic])];
      for (const name of pool.rewrites.exact.keys()) known.add(name);
      for (const rule of rules) for (const t of rule.targets.items) known.add(t);
    }
    this.#configModels = known;
    this.#poolModels = poolModels(this.#runtime);
  }

  /**
   * One endpoint's model list changed (a new pod listed its models, an adapter loaded): recount
   * that endpoint and recompute only its pools. O(its list and its pools), not O(all endpoints).
   */
  /** An endpoint's runtime became known (or changed): what its pools' lists mean is judged again. */
  #runtimeLearned(endpoint: Endpoint): void {
    const targets = new Set(this.#discovery.targetsOf(endpoint));
    for (const pool of this.#poolsOf(targets)) this.#poolModels.set(pool.config.key, podModels(pool.members.endpoints));
  }

  #listChanged(endpoint: Endpoint): void {
    this.#served.remove(endpoint);
    const targets = new Set(this.#discovery.targetsOf(endpoint));
    // A listing that finished after its endpoint left discovery counts for nothing.
    if (targets.size === 0) return;
    this.#served.add(endpoint);
    for (const pool of this.#poolsOf(targets)) this.#poolModels.set(pool.config.key, podModels(pool.members.endpoints));
  }

  /**
   * Pods changed the endpoints of `targets` (discovery keys): start and stop scraping and listing
   * only the endpoints that came and went, and recompute what only those pools serve. O(the
   * change), so a pod event costs the same with 10 pods or 10,000.
   */
  #endpointsMoved(targets: ReadonlySet<string>, delta: EndpointDelta): void {
    this.#scraper?.update(delta.added, delta.removed);
    this.#lister?.update(delta.added, delta.removed);
    this.prefixIndex.forget(delta.removed);
    this.precise.moved(this.#poolsOf(targets), delta.added, delta.removed);
    for (const e of delta.removed) this.#served.remove(e);
    for (const e of delta.added) this.#served.add(e);
    for (const pool of this.#poolsOf(targets)) this.#poolModels.set(pool.config.key, podModels(pool.members.endpoints));
  }

  /** The runtime's pools among discovery target keys (`pool:namespace/name`; Service targets skipped). */
  #poolsOf(targets: ReadonlySet<string>): PoolRuntime[] {
    const out: PoolRuntime[] = [];
    for (const tk of targets) {
      const pool = tk.startsWith('pool:') ? this.#runtime?.pools.get(tk.slice('pool:'.length)) : undefined;
      if (pool !== undefined) out.push(pool);
    }
    return out;
  }

  /**
   * A pool whose selector matches no serving pod answers every request 503: say so when a pool
   * becomes empty (a selector typo shows at load time, not at the first failed request), once per
   * time it becomes empty.
   */
  #warnEmptyPools(runtime: Runtime): void {
    for (const key of this.#emptyPools) if (!runtime.pools.has(key)) this.#emptyPools.delete(key);
    for (const p of runtime.pools.values()) this.#warnIfEmpty(p);
  }

  /** #warnEmptyPools for one pool (after pods changed its members). */
  #warnIfEmpty(p: PoolRuntime): void {
    if (p.members.endpoints.length > 0) {
      this.#emptyPools.delete(p.config.key);
      return;
    }
    if (this.#emptyPools.has(p.config.key)) return;
    this.#emptyPools.add(p.config.key);
    const selector = Object.entries(p.config.selector).map(([k, v]) => `${k}=${v}`).join(',');
    this.#logger.warn({ pool: p.config.key, selector }, 'pool selects no serving pod: its requests get 503 until one appears');
  }

  /** The groups passive health judges an endpoint with (runtime.ts `peerGroups`). */
  #peerGroups(endpoint: Endpoint): Array<readonly Endpoint[]> {
    return peerGroups(this.#runtime, endpoint);
  }

  #wakeGates(): void {
    for (const gate of this.#gates.values()) if (gate.size > 0) gate.wake();
  }

  #enqueue(source: ConfigSource, batch: ConfigBatch): Promise<ApplyOutcome> {
    const run = this.#applying.then(() => this.#apply(source, batch));
    this.#applying = run.catch(() => undefined);
    return run;
  }

  /**
   * Applies one batch all or nothing: compile the snapshot, build its runtime (plugins included),
   * let the data planes prepare (bind ports); only if every step succeeds does anything change.
   * A failure anywhere keeps the last good snapshot and runtime serving, and logs why.
   */
  async #apply(source: ConfigSource, batch: ConfigBatch): Promise<ApplyOutcome> {
    const initial = this.#runtime === undefined;
    const previous = this.#runtime;
    try {
      const change = this.#store.prepare(source.name, batch);
      let built;
      if (change.compiled !== undefined) {
        built = buildRuntime(change.compiled.snapshot, { discovery: this.#discovery, plugins: this.#plugins, handle: this.#handle, gates: this.#gates, recheckMs: this.#recheckMs }, previous);
        const rollbacks: Array<() => void> = [];
        try {
          for (const hook of this.#beforeSwap) {
            const rollback = await hook(change.compiled.snapshot, previous?.snapshot);
            if (rollback !== undefined) rollbacks.push(rollback);
          }
        } catch (err) {
          for (const rollback of rollbacks.reverse()) rollback();
          throw err;
        }
      }
      change.commit();
      if (built === undefined) return this.#applyPods(source, batch, change);
      built.commit();
      this.#runtime = built.runtime;
      this.#discovery.applyPods(change.podUpserts, change.podDeletes);
      this.#refreshModels();
      this.precise.sync(this.#runtime);
      for (const hook of this.#afterSwap) {
        try {
          hook(built.runtime.snapshot, previous?.snapshot);
        } catch (err) {
          this.#logger.error({ err: err instanceof Error ? err.message : String(err) }, 'after-swap hook failed');
        }
      }
      const runtime = this.#runtime as Runtime;
      for (const p of change.warnings) this.#logger.warn({ problem: formatProblem(p), source: p.source }, 'config warning');
      this.#warnEmptyPools(runtime);
      this.#logReloaded(source, batch, runtime, initial);
      return { ok: true, version: runtime.snapshot.version, warnings: change.warnings, configChanged: true };
    } catch (err) {
      const errors = rejectionProblems(err);
      for (const p of errors) this.#logger.error({ problem: formatProblem(p), source: p.source }, 'config error');
      if (!initial) this.#logger.error({ servingVersion: previous?.snapshot.version, errors: errorCount(errors) }, 'config change rejected; the last good configuration keeps serving');
      return { ok: false, errors, servingVersion: previous?.snapshot.version };
    }
  }

  /**
   * The rest of a batch that compiled nothing (only Pods changed, or nothing did): the endpoints
   * move, and the log says which pods and pools, not the whole configuration. O(the batch and
   * the pools it touched). A whole-state batch (a file reload) that changed nothing is still
   * confirmed as "config reloaded".
   */
  #applyPods(source: ConfigSource, batch: ConfigBatch, change: PreparedChange): ApplyOutcome {
    const runtime = this.#runtime as Runtime;
    const targets = this.#discovery.applyPods(change.podUpserts, change.podDeletes);
    for (const p of change.warnings) this.#logger.warn({ problem: formatProblem(p), source: p.source }, 'config warning');
    const pools = this.#poolsOf(targets);
    const pods = change.podUpserts.length + change.podDeletes.length;
    if (pods > 0) {
      const fields = endpointsChangedFields(change.podUpserts, change.podDeletes, pools, targets.size - pools.length);
      if (targets.size > 0) this.#logger.info({ source: source.name, ...fields }, 'endpoints changed');
      else this.#logger.debug({ source: source.name, ...fields }, 'pods changed; no pool or Service selects them');
    } else if (batch.replace) {
      this.#logReloaded(source, batch, runtime, false);
    } else {
      this.#logger.debug({ source: source.name }, 'config batch changed nothing');
    }
    for (const p of pools) this.#warnIfEmpty(p);
    return { ok: true, version: runtime.snapshot.version, warnings: change.warnings, configChanged: false };
  }

  /** "config loaded" / "config reloaded", with every pool's summary (after a compile, or a reload confirmed). */
  #logReloaded(source: ConfigSource, batch: ConfigBatch, runtime: Runtime, initial: boolean): void {
    const pools = [...runtime.pools.values()].map((p) => ({ pool: p.config.key, endpoints: p.members.endpoints.length, policy: p.policy, profile: p.scheduler.describe(), runtime: p.config.runtime }));
    this.#logger.info(
      { source: source.name, version: runtime.snapshot.version, resources: runtime.snapshot.resourceCount, ignored: batch.ignored, ports: [...runtime.snapshot.listeners.keys()], pools },
      initial ? 'config loaded' : 'config reloaded',
    );
  }
}

/** Any failure to apply a batch, as problems naming the resource, field and reason. */
function rejectionProblems(err: unknown): Problem[] {
  if (err instanceof ConfigRejectedError) return [...err.problems];
  if (err instanceof RuntimeBuildError) {
    const cause = err.cause;
    if (cause instanceof PluginConfigError) return [{ severity: 'error', subject: err.subject, path: `scheduling plugin ${cause.plugin}: ${cause.field}`, message: cause.reason }];
    return [{ severity: 'error', subject: err.subject, path: '-', message: cause instanceof Error ? cause.message : String(cause) }];
  }
  return [{ severity: 'error', subject: 'config', path: '-', message: err instanceof Error ? err.message : String(err) }];
}
