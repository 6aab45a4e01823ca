import type { Resource } from '../../api/types.js';
import type { ApplyOutcome, ConfigBatch, ConfigSink, ConfigSource, ResourceKey, SourceHealth, SourceLog } from '../source.js';
import { Backoff } from './backoff.js';
import type { ApiConnection } from './connection.js';
import { DEFAULT_LIMITS, type KubernetesLimits } from './limits.js';
import { Reflector, type ReflectorSink } from './reflector.js';
import { KubernetesView, type Delta, type ViewScope } from './view.js';
import { GATEWAY_TYPES, POD, POOL_TYPES, resourceName, type WatchedType } from './watched-kinds.js';

export interface KubernetesSourceOptions {
  readonly connection: ApiConnection;
  /** The namespace watched, or undefined for all (the standalone gateway's `--all-namespaces`). */
  readonly namespace: string | undefined;
  readonly scope: ViewScope;
  /** Bounds on what the API server sends; unset fields keep DEFAULT_LIMITS. */
  readonly limits?: Partial<KubernetesLimits>;
  /**
   * Events arriving within this many ms of the first are delivered as one batch (default 5): a
   * list of 1,000 pods is one batch, a single pod change a small one.
   */
  readonly batchWindowMs?: number;
  /**
   * Least time between the starts of two batches, ms (default 100): a change after a quiet spell
   * goes out within `batchWindowMs`, but a storm (a pod flapping Ready a thousand times a second, a
   * controller rewriting an object in a loop) is delivered at most ten times a second, each batch
   * the net change, so neither the gateway's work nor its log grows with the API server's event rate.
   */
  readonly minBatchIntervalMs?: number;
  /** Backoff after failed requests, per reflector (default 250 ms doubling to 10 s, jittered). */
  readonly backoff?: () => Backoff;
  /** Backoff between checks of a kind not served (default 1 s doubling to 30 s). */
  readonly missingBackoff?: () => Backoff;
  /** Server-side watch timeout in seconds (default 5–10 min, drawn per watch). */
  readonly watchTimeoutSeconds?: () => number;
}

const SILENT: SourceLog = { info: () => undefined, warn: () => undefined };

/** A batch that failed outright is retried this long after (ms). */
const RETRY_MS = 1000;

/** Longest a picker holds its pool's selector change for the new selector's Pods to be listed (ms). */
const SELECTOR_SWITCH_WAIT_MS = 10_000;

/**
 * The Kubernetes API as a configuration source: a list-then-watch reflector per kind (reflector.ts)
 * feeding one view (view.ts), delivered to the gateway in batches. `start` resolves once every
 * kind was listed (or found not served) and that whole state applied; until then the gateway is
 * not ready. Afterwards, events are coalesced for `batchWindowMs` and delivered as changes only:
 * configuration and Pods in separate batches, so a pod change never recompiles the configuration
 * and never waits on a configuration change the gateway refused. While the API server cannot be
 * reached the last view keeps serving and `health()` says it is stale.
 */
export class KubernetesSource implements ConfigSource {
  readonly name: string;
  readonly #opts: KubernetesSourceOptions;
  readonly #limits: KubernetesLimits;
  readonly #view: KubernetesView;
  readonly #reflectors = new Map<WatchedType, Reflector>();
  #podReflector: Reflector | undefined;
  #podSelector: string | undefined;
  /** The first list of a picker's new Pod watch, while a selector change waits for it. */
  #podsPending: Promise<void> | undefined;
  #sink: ConfigSink | undefined;
  #log: SourceLog = SILENT;
  #started = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #again = false;
  /** When the last batch started (performance.now()), for minBatchIntervalMs. */
  #lastFlushAt = -Infinity;
  readonly #stale = new Map<string, string>();
  readonly #missing = new Set<string>();

  constructor(opts: KubernetesSourceOptions) {
    this.#opts = opts;
    this.#limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.#view = new KubernetesView(opts.scope, () => this.#log, this.#limits.maxObjectsPerKind);
    const scope = opts.scope;
    this.name =
      scope.kind === 'pool'
        ? `kubernetes: pool ${scope.namespace}/${scope.name}`
        : scope.kind === 'selector'
          ? `kubernetes: pods in ${scope.namespace}`
          : opts.namespace === undefined
            ? 'kubernetes: all namespaces'
            : `kubernetes: namespace ${opts.namespace}`;
  }

  /** The accepted objects of one kind (for the status writer and tests). */
  accepted(type: WatchedType): ReadonlyMap<string, Resource> {
    return this.#view.accepted(type);
  }

  async start(sink: ConfigSink, log?: SourceLog): Promise<ApplyOutcome> {
    this.#sink = sink;
    if (log !== undefined) this.#log = log;
    const scope = this.#opts.scope;
    const types = scope.kind === 'gateway' ? GATEWAY_TYPES : scope.kind === 'pool' ? POOL_TYPES : [];
    for (const type of types) {
      const field = scope.kind === 'pool' && type.kind === 'InferencePool' ? `metadata.name=${scope.name}` : undefined;
      this.#reflectors.set(type, this.#reflector(type, undefined, field));
    }
    // The standalone gateway filters Pods itself (many pools, one watch); a picker asks the API
    // server for its pool's Pods only, once it knows the pool's selector.
    if (scope.kind === 'gateway') this.#podReflector = this.#reflector(POD, undefined, undefined);
    if (scope.kind === 'selector') {
      this.#podSelector = Object.entries(scope.selector).map(([k, v]) => `${k}=${v}`).join(',');
      this.#podReflector = this.#reflector(POD, this.#podSelector, undefined);
    }
    for (const r of this.#reflectors.values()) r.start();
    this.#podReflector?.start();
    await Promise.all([...this.#reflectors.values()].map((r) => r.synced));
    if (scope.kind === 'pool') {
      this.#followPoolSelector();
      await this.#podReflector?.synced;
    } else await this.#podReflector?.synced;
    if (this.#stopped) throw new Error('Kubernetes source stopped while starting');
    const outcome = await this.#deliverAll();
    this.#started = true;
    if (this.#view.hasPending) this.#schedule();
    return outcome;
  }

  /** Delivers the whole view as a replacing batch. */
  resync(): Promise<ApplyOutcome> {
    if (this.#sink === undefined) return Promise.reject(new Error('Kubernetes source not started'));
    return this.#deliverAll();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await Promise.all([...this.#reflectors.values(), ...(this.#podReflector === undefined ? [] : [this.#podReflector])].map((r) => r.stop()));
    await this.#flushing;
    await this.#opts.connection.close();
  }

  health(): SourceHealth {
    if (this.#stale.size === 0) return { type: 'kubernetes', stale: false };
    return { type: 'kubernetes', stale: true, detail: `serving the last view: ${[...this.#stale.values()].slice(0, 3).join('; ')}` };
  }

  #reflector(type: WatchedType, labelSelector: string | undefined, fieldSelector: string | undefined): Reflector {
    const id = `${resourceName(type)}${labelSelector === undefined ? '' : ` ${labelSelector}`}`;
    const sink: ReflectorSink = {
      replace: (objects, refused) => this.#changed(() => this.#view.replace(type, objects, refused)),
      upsert: (o) => this.#changed(() => this.#view.upsert(type, o)),
      remove: (o) => this.#changed(() => this.#view.remove(type, o)),
      missing: () => {
        if (!this.#missing.has(resourceName(type))) {
          this.#missing.add(resourceName(type));
          this.#log.warn({ source: this.name, resource: resourceName(type) }, `the API server does not serve ${resourceName(type)} (its CRD is not installed): skipped, and checked again later`);
        }
        this.#changed(() => this.#view.replace(type, [], []));
      },
      problem: (message) => this.#log.warn({ source: this.name, resource: resourceName(type) }, message),
      health: (stale, reason) => {
        if (stale) {
          if (!this.#stale.has(id)) this.#log.warn({ source: this.name, resource: resourceName(type), reason }, 'Kubernetes API server unreachable: the last view keeps serving; retrying with backoff');
          this.#stale.set(id, reason ?? 'unreachable');
        } else if (this.#stale.delete(id)) {
          this.#log.info({ source: this.name, resource: resourceName(type) }, 'Kubernetes API server reachable again: the view is current');
        }
      },
    };
    const onSynced = (): void => {
      if (this.#missing.delete(resourceName(type))) this.#log.info({ source: this.name, resource: resourceName(type) }, `the API server serves ${resourceName(type)} now`);
    };
    const wrapped: ReflectorSink = { ...sink, replace: (objects, refused) => (onSynced(), sink.replace(objects, refused)) };
    return new Reflector(this.#opts.connection, type, wrapped, {
      ...(type.namespaced && this.#namespace !== undefined ? { namespace: this.#namespace } : {}),
      ...(labelSelector === undefined ? {} : { labelSelector }),
      ...(fieldSelector === undefined ? {} : { fieldSelector }),
      limits: this.#limits,
      ...(this.#opts.backoff === undefined ? {} : { backoff: this.#opts.backoff() }),
      ...(this.#opts.missingBackoff === undefined ? {} : { missingBackoff: this.#opts.missingBackoff() }),
      ...(this.#opts.watchTimeoutSeconds === undefined ? {} : { watchTimeoutSeconds: this.#opts.watchTimeoutSeconds }),
    });
  }

  get #namespace(): string | undefined {
    const scope = this.#opts.scope;
    return scope.kind === 'gateway' ? this.#opts.namespace : scope.namespace;
  }

  #changed(apply: () => void): void {
    apply();
    if (this.#opts.scope.kind === 'pool' && this.#started) this.#followPoolSelector();
    this.#schedule();
  }

  /**
   * A picker watches only its pool's Pods (a label selector on the watch). When the pool's
   * selector changes, a new watch lists the Pods it selects; the old Pods stay in the view until
   * that list replaces them, so endpoints that are still selected are never dropped.
   */
  #followPoolSelector(): void {
    const selector = this.#view.poolSelector();
    if (selector === this.#podSelector || selector === undefined) return;
    this.#podSelector = selector;
    const old = this.#podReflector;
    this.#podReflector = this.#reflector(POD, selector, undefined);
    this.#podReflector.start();
    if (this.#started) this.#podsPending = this.#podReflector.synced;
    void old?.stop();
  }

  #schedule(): void {
    if (!this.#started || this.#stopped) return;
    if (this.#flushing !== undefined) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) return;
    const windowMs = this.#opts.batchWindowMs ?? 5;
    const spacing = this.#lastFlushAt + (this.#opts.minBatchIntervalMs ?? 100) - performance.now();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#lastFlushAt = performance.now();
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = undefined;
        if (this.#again) {
          this.#again = false;
          this.#schedule();
        }
      });
    }, Math.max(windowMs, spacing));
  }

  /**
   * Delivers what changed, ordered so that traffic never sees a pool without its pods: new and
   * changed Pods first (a Pod no pool selects yet just waits in discovery), then the configuration
   * (a pool's new selector matches them at once), then the Pods that left. Without a configuration
   * change, one Pod batch.
   */
  async #flush(): Promise<void> {
    const sink = this.#sink;
    if (sink === undefined || this.#stopped) return;
    // A picker whose pool's selector just changed waits (bounded) for the Pods of the new selector,
    // so the switch is one step rather than a pool with no pods in between.
    const pending = this.#podsPending;
    if (pending !== undefined) {
      await Promise.race([pending, new Promise((r) => setTimeout(r, SELECTOR_SWITCH_WAIT_MS).unref())]);
      this.#podsPending = undefined;
    }
    const { config, pods } = this.#view.pending();
    const warnings = this.#view.takeWarnings();
    const configChanged = config.upserts.length + config.deletes.length > 0 || warnings.length > 0;
    const podSteps: Delta[] = configChanged ? [{ upserts: pods.upserts, deletes: [] }, { upserts: [], deletes: pods.deletes }] : [pods];
    await this.#deliverPods(sink, podSteps[0]!);
    if (configChanged) {
      const outcome = await this.#deliver(sink, config, warnings);
      if (outcome?.ok === true) this.#view.applied(config);
      else this.#view.retryConfig();
      await this.#deliverPods(sink, podSteps[1]!);
    }
  }

  async #deliverPods(sink: ConfigSink, pods: Delta): Promise<void> {
    if (pods.upserts.length + pods.deletes.length === 0) return;
    const outcome = await this.#deliver(sink, pods, []);
    if (outcome?.ok === true) this.#view.applied(pods);
    else {
      this.#view.retryPods(pods);
      setTimeout(() => this.#schedule(), RETRY_MS).unref();
    }
  }

  async #deliver(sink: ConfigSink, delta: Delta, warnings: ConfigBatch['problems']): Promise<ApplyOutcome | undefined> {
    const deletes: ResourceKey[] = delta.deletes.map((r) => ({ kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name }));
    try {
      return await sink({ upserts: delta.upserts, deletes, replace: false, problems: warnings, ignored: 0 });
    } catch (err) {
      this.#log.warn({ source: this.name, err: err instanceof Error ? err.message : String(err) }, 'Kubernetes change could not be applied; retrying');
      return undefined;
    }
  }

  async #deliverAll(): Promise<ApplyOutcome> {
    const sink = this.#sink;
    if (sink === undefined) throw new Error('Kubernetes source not started');
    const resources = this.#view.full();
    const outcome = await sink({ upserts: resources, deletes: [], replace: true, problems: this.#view.takeWarnings(), ignored: 0 });
    if (outcome.ok) this.#view.appliedAll(resources);
    else this.#view.invalidate();
    return outcome;
  }
}
