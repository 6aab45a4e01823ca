import { hostname } from 'node:os';
import type { SourceLog } from '../source.js';
import { kubeErrorMessage, type KubeApi } from './kube-api.js';

/*
 * One writer among active replicas: a coordination.k8s.io/v1 Lease held by one replica at a time,
 * the algorithm of client-go's leader election (k8s.io/client-go/tools/leaderelection). The Lease
 * decides only who writes status: every replica serves traffic whether it holds the Lease or not,
 * and nothing here is on a request's path.
 */

/** Timings of the Lease, in ms. */
export interface LeaseTimings {
  /** How long a holder's claim lasts without renewal; others take over after it (`leaseDurationSeconds`). */
  readonly leaseDurationMs: number;
  /** A holder that could not renew for this long stops acting as the holder (before others may take over). */
  readonly renewDeadlineMs: number;
  /** Time between two attempts to acquire or renew. */
  readonly retryPeriodMs: number;
}

/** client-go leader election's defaults (LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod 2 s). */
export const DEFAULT_LEASE_TIMINGS: LeaseTimings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/** Who this replica is in the Lease: $POD_NAME (the Downward API), else the hostname (a pod's hostname is its name). */
export function leaseIdentity(env: NodeJS.ProcessEnv = process.env): string {
  const pod = env['POD_NAME']?.trim();
  return pod !== undefined && pod !== '' ? pod : hostname();
}

export interface LeaseOptions {
  readonly api: KubeApi;
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly log: SourceLog;
  readonly timings?: Partial<LeaseTimings>;
  /** Monotonic milliseconds. Default performance.now(). */
  readonly clock?: () => number;
  /** Told when this replica starts or stops holding the Lease. */
  readonly onChange?: (leader: boolean) => void;
}

interface LeaseRecord {
  readonly holder: string;
  readonly resourceVersion: string;
  readonly durationSeconds: number;
  readonly transitions: number;
  readonly acquireTime: string | undefined;
  readonly object: Record<string, unknown>;
}

/**
 * Acquires, renews and releases one Lease. `isLeader()` is the writer's gate: true only while
 * the last successful renewal is younger than the renew deadline, so a holder cut off from the
 * API server stops writing at once, before the Lease can expire for the others.
 *
 * Expiry is judged as client-go does: a Lease is free when its record has not changed for its
 * `leaseDurationSeconds` as observed by this replica's own clock (renewTime is another
 * machine's clock; skew must not make two holders), or when its holder is empty (released).
 */
export class LeaseElector {
  readonly #opts: LeaseOptions;
  readonly #timings: LeaseTimings;
  readonly #clock: () => number;
  readonly #path: string;
  #leader = false;
  #lastRenewAt = -Infinity;
  #observed: { resourceVersion: string; at: number } | undefined;
  #mine: LeaseRecord | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #started = false;
  /** The API is failing: said once when it starts and once when it ends, not every retry period. */
  #failing = false;

  constructor(opts: LeaseOptions) {
    this.#opts = opts;
    this.#timings = { ...DEFAULT_LEASE_TIMINGS, ...opts.timings };
    if (!(this.#timings.retryPeriodMs < this.#timings.renewDeadlineMs && this.#timings.renewDeadlineMs < this.#timings.leaseDurationMs)) {
      throw new Error('lease timings must satisfy retryPeriod < renewDeadline < leaseDuration');
    }
    this.#clock = opts.clock ?? (() => performance.now());
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(opts.namespace)}/leases/${encodeURIComponent(opts.name)}`;
  }

  get identity(): string {
    return this.#opts.identity;
  }

  /** True while this replica holds the Lease and renewed it within the renew deadline. */
  isLeader(): boolean {
    if (this.#leader && this.#clock() - this.#lastRenewAt >= this.#timings.renewDeadlineMs) this.#setLeader(false, 'renew deadline passed');
    return this.#leader;
  }

  /** Starts trying (at once, then every retry period). */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#schedule(0);
  }

  /** Stops trying and, when holding the Lease, releases it so another replica takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
    const held = this.#leader;
    this.#setLeader(false, 'stopping');
    if (held) await this.#release();
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#running = this.#tick().finally(() => {
        this.#running = undefined;
        // client-go: a candidate waits RetryPeriod with jitter (factor 1.2), so replicas do not move in step.
        this.#schedule(this.#leader ? this.#timings.retryPeriodMs : this.#timings.retryPeriodMs * (1 + Math.random() * 0.2));
      });
    }, ms);
    this.#timer.unref?.();
  }

  async #tick(): Promise<void> {
    try {
      await this.#tryAcquireOrRenew();
      if (this.#failing) this.#opts.log.info({ lease: this.#opts.name }, 'lease: API calls succeed again');
      this.#failing = false;
    } catch (err) {
      // Said once per outage (a missing RBAC rule would otherwise log every retry period).
      if (!this.#failing) this.#opts.log.warn({ lease: this.#opts.name, error: err instanceof Error ? err.message : String(err) }, 'lease: cannot read or write the Lease; retrying every retry period (status is not written meanwhile)');
      this.#failing = true;
    }
    this.isLeader();
  }

  async #tryAcquireOrRenew(): Promise<void> {
    const { api, identity } = this.#opts;
    const now = this.#clock();
    const read = await api.get(this.#path);
    if (read.status === 404) {
      const created = await api.post(`/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(this.#opts.namespace)}/leases`, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.#opts.name, namespace: this.#opts.namespace },
        spec: this.#spec(microTime(), microTime(), 0),
      });
      if (created.status === 200 || created.status === 201) this.#won(created.body, now);
      else if (created.status !== 409) throw new Error(`create: ${kubeErrorMessage(created)}`);
      return;
    }
    if (read.status !== 200) throw new Error(`read: ${kubeErrorMessage(read)}`);
    const record = parseLease(read.body);
    if (record === undefined) throw new Error('the object read is not a Lease (no metadata.resourceVersion); not taking it');
    if (this.#observed?.resourceVersion !== record.resourceVersion) this.#observed = { resourceVersion: record.resourceVersion, at: now };
    const expired = now - (this.#observed?.at ?? now) >= record.durationSeconds * 1000;
    const mine = record.holder === identity;
    if (!mine && record.holder !== '' && !expired) {
      if (this.#leader) this.#setLeader(false, `held by ${record.holder}`);
      return;
    }
    // Ours to renew, released, or expired: write ourselves in with the resourceVersion read.
    const acquireTime = mine ? (record.acquireTime ?? microTime()) : microTime();
    const transitions = mine ? record.transitions : record.transitions + 1;
    const meta = isRecord(record.object['metadata']) ? record.object['metadata'] : {};
    const put = await api.put(this.#path, { ...record.object, metadata: { ...meta, resourceVersion: record.resourceVersion }, spec: this.#spec(acquireTime, microTime(), transitions) });
    if (put.status === 200) this.#won(put.body, now);
    else if (put.status !== 409) throw new Error(`write: ${kubeErrorMessage(put)}`);
    // 409: another replica wrote first; it holds the Lease (or we renew next period while within the deadline).
  }

  /** This replica as the holder. */
  #spec(acquireTime: string, renewTime: string, transitions: number): Record<string, unknown> {
    return {
      holderIdentity: this.#opts.identity,
      leaseDurationSeconds: Math.max(1, Math.ceil(this.#timings.leaseDurationMs / 1000)),
      acquireTime,
      renewTime,
      leaseTransitions: transitions,
    };
  }

  #won(body: unknown, at: number): void {
    const record = parseLease(body);
    if (record !== undefined) {
      this.#mine = record;
      this.#observed = { resourceVersion: record.resourceVersion, at };
    }
    this.#lastRenewAt = at;
    if (!this.#leader) this.#setLeader(true, 'acquired');
  }

  /** client-go's ReleaseOnCancel: empty holder, 1-second duration, so a waiting replica takes over on its next try. */
  async #release(): Promise<void> {
    const mine = this.#mine;
    if (mine === undefined) return;
    const time = microTime();
    const spec = { holderIdentity: '', leaseDurationSeconds: 1, acquireTime: time, renewTime: time, leaseTransitions: mine.transitions };
    try {
      let record: LeaseRecord | undefined = mine;
      for (let attempt = 0; attempt < 2 && record !== undefined && record.holder === this.#opts.identity; attempt++) {
        const meta = isRecord(record.object['metadata']) ? record.object['metadata'] : {};
        const put = await this.#opts.api.put(this.#path, { ...record.object, metadata: { ...meta, resourceVersion: record.resourceVersion }, spec });
        if (put.status === 200) {
          this.#opts.log.info({ lease: this.#opts.name, identity: this.#opts.identity }, 'lease released');
          return;
        }
        if (put.status !== 409) break;
        const read = await this.#opts.api.get(this.#path);
        record = read.status === 200 ? parseLease(read.body) : undefined;
      }
    } catch (err) {
      this.#opts.log.warn({ lease: this.#opts.name, error: err instanceof Error ? err.message : String(err) }, 'lease: release failed; the others take over when it expires');
    }
  }

  #setLeader(leader: boolean, why: string): void {
    if (this.#leader === leader) return;
    this.#leader = leader;
    this.#opts.log.info({ lease: this.#opts.name, identity: this.#opts.identity, why }, leader ? 'lease acquired: this replica writes status' : 'lease lost: this replica stops writing status');
    this.#opts.onChange?.(leader);
  }
}

function parseLease(body: unknown): LeaseRecord | undefined {
  if (!isRecord(body) || !isRecord(body['metadata'])) return undefined;
  const rv = body['metadata']['resourceVersion'];
  if (typeof rv !== 'string') return undefined;
  const spec = isRecord(body['spec']) ? body['spec'] : {};
  const duration = spec['leaseDurationSeconds'];
  const transitions = spec['leaseTransitions'];
  return {
    holder: typeof spec['holderIdentity'] === 'string' ? spec['holderIdentity'].slice(0, 253) : '',
    resourceVersion: rv,
    // A missing or absurd duration counts as client-go's default; at most a day, so a hostile value cannot pin the Lease.
    durationSeconds: typeof duration === 'number' && duration >= 1 ? Math.min(duration, 86_400) : 15,
    transitions: typeof transitions === 'number' && Number.isSafeInteger(transitions) && transitions >= 0 ? transitions : 0,
    acquireTime: typeof spec['acquireTime'] === 'string' ? spec['acquireTime'] : undefined,
    object: body,
  };
}

/** metav1.MicroTime: RFC 3339 with microseconds, as the Lease's acquireTime and renewTime are written. */
export function microTime(date: Date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
