import { Backoff } from './backoff.js';
import type { Resource } from '../../api/types.js';
import type { SourceLog } from '../source.js';
import type { KubeApi } from './kube-api.js';
import { LeaseElector, type LeaseTimings } from './lease.js';
import { DEFAULT_GATEWAY_CLASS, desiredStatuses, type DesiredStatus, type StatusScope } from './status-conditions.js';
import { StatusWriter } from './status-writer.js';

export interface StatusReportingOptions {
  readonly api: KubeApi;
  /** This replica in the Lease (`leaseIdentity()`: $POD_NAME, else the hostname). */
  readonly identity: string;
  /** `--lease-name`: `infergate-status` for serve, `<pool-name>-epp` for epp. */
  readonly leaseName: string;
  /** Where the Lease lives (`--namespace`); also the pool's namespace in epp mode unless `poolNamespace` says otherwise. */
  readonly namespace: string;
  /** `gateway` (serve): pools and routes of our Gateways; `epp`: the one pool, no route status. */
  readonly mode: 'gateway' | 'epp';
  /** `--gateway-class` (gateway mode). Default `infergate`. */
  readonly gatewayClass?: string;
  /** `--pool-name` (epp mode; required there). */
  readonly poolName?: string;
  /** `--pool-namespace` (epp mode). Default `namespace`. */
  readonly poolNamespace?: string;
  readonly log: SourceLog;
  /** Lease timings; unset fields keep client-go's defaults (15 s / 10 s / 2 s). */
  readonly lease?: Partial<LeaseTimings>;
  /** Changes closer together than this, in ms, are written as one. Default 250. */
  readonly debounceMs?: number;
  /**
   * The holder re-reads every status this often, in ms, and puts ours back where someone changed
   * it (no status watch is kept). Default 300,000 (5 minutes).
   */
  readonly resyncMs?: number;
  /** Attempts per object and first backoff, in ms (StatusWriter). Defaults 5 and 100. */
  readonly writeAttempts?: number;
  readonly writeBackoffMs?: number;
  /** After a failed write, try again after this many ms, doubling while writes keep failing (at most 5 minutes). Default 5,000. */
  readonly retryFailedMs?: number;
  /**
   * The view holds every Service in scope (the gateway's Kubernetes source watches them), so a
   * Service absent from it does not exist: an endpointPickerRef or backendRef to it is reported
   * unresolved. Default true in gateway mode, false in epp mode (the picker's view holds its
   * pool's resources only, and its endpointPickerRef is most likely the picker itself).
   */
  readonly servicesWatched?: boolean;
}

export interface StatusReporting {
  /** This replica holds the Lease now (and so writes status). */
  readonly leader: boolean;
  /** Resolves once no write is pending or running (tests; a graceful stop). */
  idle(): Promise<void>;
  /** Stops writing, waits for a write in flight, and releases the Lease. Traffic is never involved. */
  stop(): Promise<void>;
}

/**
 * Reports Kubernetes status for what this replica serves, as one of several active replicas:
 * every replica computes the same status from its own view, and only the Lease holder writes it.
 * Nothing here touches traffic: it runs on the side of config changes (`onChange`, e.g. the
 * gateway's afterSwap), computes statuses (status-conditions.ts) and writes only the objects
 * whose status changed since it last confirmed them (status-writer.ts), so a config batch that
 * changes no status costs no API call.
 *
 * `view` returns the resources the gateway serves (`Gateway.configResources()`); `onChange`
 * registers a callback to run after each applied configuration change.
 */
export function startStatusReporting(opts: StatusReportingOptions, view: () => readonly Resource[], onChange: (cb: () => void) => void): StatusReporting {
  if (opts.mode === 'epp' && (opts.poolName === undefined || opts.poolName === '')) throw new Error('status reporting in epp mode needs the pool name');
  const scope: StatusScope =
    opts.mode === 'epp'
      ? { mode: 'epp', poolNamespace: opts.poolNamespace ?? opts.namespace, poolName: opts.poolName as string }
      : { mode: 'gateway', gatewayClass: opts.gatewayClass ?? DEFAULT_GATEWAY_CLASS };
  const reporter = new Reporter(opts, scope, view);
  onChange(() => reporter.changed());
  reporter.start();
  return reporter;
}

class Reporter implements StatusReporting {
  readonly #opts: StatusReportingOptions;
  readonly #scope: StatusScope;
  readonly #view: () => readonly Resource[];
  readonly #elector: LeaseElector;
  readonly #writer: StatusWriter;
  /** Object key → fingerprint of the status last written or found in place. */
  readonly #confirmed = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #resync: NodeJS.Timeout | undefined;
  #pass: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  /** The wait before retrying after a failed pass: doubles while passes keep failing, reset by one that succeeds. */
  readonly #failedPasses: Backoff;

  constructor(opts: StatusReportingOptions, scope: StatusScope, view: () => readonly Resource[]) {
    this.#opts = opts;
    this.#scope = scope;
    this.#view = view;
    // Without jitter: one holder retries, no herd to spread.
    this.#failedPasses = new Backoff(opts.retryFailedMs ?? 5_000, 300_000, () => 1);
    this.#elector = new LeaseElector({
      api: opts.api,
      namespace: opts.namespace,
      name: opts.leaseName,
      identity: opts.identity,
      log: opts.log,
      ...(opts.lease === undefined ? {} : { timings: opts.lease }),
      onChange: (leader) => {
        // A new holder cannot trust what an earlier term confirmed: someone else wrote meanwhile.
        this.#confirmed.clear();
        if (leader) this.#kick(0);
      },
    });
    this.#writer = new StatusWriter({
      api: opts.api,
      log: opts.log,
      mayWrite: () => !this.#stopped && this.#elector.isLeader(),
      ...(opts.writeAttempts === undefined ? {} : { maxAttempts: opts.writeAttempts }),
      ...(opts.writeBackoffMs === undefined ? {} : { backoffMs: opts.writeBackoffMs }),
    });
  }

  get leader(): boolean {
    return this.#elector.isLeader();
  }

  start(): void {
    this.#elector.start();
    const every = this.#opts.resyncMs ?? 300_000;
    this.#resync = setInterval(() => {
      this.#confirmed.clear();
      this.#kick(0);
    }, every);
    this.#resync.unref?.();
  }

  changed(): void {
    this.#kick(this.#opts.debounceMs ?? 250);
  }

  async idle(): Promise<void> {
    while (this.#timer !== undefined || this.#pass !== undefined) {
      if (this.#pass !== undefined) await this.#pass;
      else await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#resync !== undefined) clearInterval(this.#resync);
    await this.#pass;
    await this.#elector.stop();
  }

  #kick(delayMs: number): void {
    if (this.#stopped) return;
    if (this.#pass !== undefined) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) {
      if (delayMs > 0) return;
      clearTimeout(this.#timer);
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pass = this.#run().finally(() => {
        this.#pass = undefined;
        if (this.#again) {
          this.#again = false;
          this.#kick(this.#opts.debounceMs ?? 250);
        }
      });
    }, delayMs);
    this.#timer.unref?.();
  }

  async #run(): Promise<void> {
    if (!this.#elector.isLeader()) return;
    let desired: DesiredStatus[];
    try {
      const servicesWatched = this.#opts.servicesWatched ?? this.#scope.mode === 'gateway';
      desired = desiredStatuses({ resources: this.#view(), ...(servicesWatched ? { serviceExists: () => false } : {}) }, this.#scope);
    } catch (err) {
      this.#opts.log.warn({ error: err instanceof Error ? err.message : String(err) }, 'status not computed');
      return;
    }
    const live = new Set<string>();
    let failed = false;
    for (const d of desired) {
      const key = `${d.target.kind}/${d.target.namespace}/${d.target.name}`;
      live.add(key);
      const print = JSON.stringify([d.target, d.parents]);
      if (this.#confirmed.get(key) === print) continue;
      if (this.#stopped || !this.#elector.isLeader()) return;
      const outcome = await this.#writer.write(d);
      if (outcome === 'written') this.#opts.log.info({ object: key, parents: d.parents.length }, 'status written');
      if (outcome === 'written' || outcome === 'unchanged') this.#confirmed.set(key, print);
      else if (outcome === 'gone') this.#confirmed.delete(key);
      else if (outcome === 'not-leader') return;
      else if (outcome === 'failed') failed = true;
    }
    for (const key of this.#confirmed.keys()) if (!live.has(key)) this.#confirmed.delete(key);
    if (!failed) this.#failedPasses.reset();
    else if (!this.#stopped) setTimeout(() => this.#kick(0), this.#failedPasses.next()).unref?.();
  }
}
