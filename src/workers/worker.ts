import cluster from 'node:cluster';
import type { Endpoint } from '../core/endpoint.js';
import type { RunningGateway } from '../proxy/standalone.js';
import { isToWorker, WORKER_COUNT_ENV, WORKER_ID_ENV, type PrefixBatch, type Question, type ToPrimary } from './protocol.js';
import { applyPrefixBatch, PrefixOutbox } from './prefix-share.js';

/**
 * A worker's side of `infergate serve --workers N`: answers the primary's questions (readiness,
 * `/debug/endpoints`, metrics as prom-client JSON for `AggregatorRegistry.aggregate`), shares
 * its prefix-index records with its siblings, and hears the primary's shutdown. Joined first
 * thing in the worker, before its gateway starts, so a question is answered (`starting`) from
 * the moment the process runs.
 */
export class WorkerLink {
  /** This worker's slot, 0 … count − 1 (a replacement takes its predecessor's). */
  readonly id: number;
  /** Workers in the gateway. */
  readonly count: number;
  /** Resolves when the primary asks this worker to drain and exit. */
  readonly shutdown: Promise<'primary'>;
  #gateway: RunningGateway | undefined;
  #outbox: PrefixOutbox | undefined;
  readonly #onMessage: (m: unknown) => void;

  private constructor(id: number, count: number) {
    this.id = id;
    this.count = count;
    let stop: (cause: 'primary') => void = () => undefined;
    this.shutdown = new Promise((resolve) => (stop = resolve));
    this.#onMessage = (m) => {
      if (!isToWorker(m)) return;
      if (m.t === 'infergate:shutdown') stop('primary');
      else if (m.t === 'infergate:ask') void this.#answer(m.id, m.what);
      else for (const { from, batch } of m.batches) if (from !== this.id) this.#applyPrefix(batch);
    };
    process.on('message', this.#onMessage);
  }

  /** The link when this process is a worker forked by `serve --workers N`; undefined otherwise. */
  static join(): WorkerLink | undefined {
    const id = Number(process.env[WORKER_ID_ENV]);
    const count = Number(process.env[WORKER_COUNT_ENV]);
    if (!cluster.isWorker || !Number.isInteger(id) || !Number.isInteger(count) || id < 0 || count < 1) return undefined;
    return new WorkerLink(id, count);
  }

  /** The gateway is up: share its prefix records and tell the primary. */
  started(gateway: RunningGateway): void {
    this.#gateway = gateway;
    const outbox = new PrefixOutbox((batch, done) => this.#send({ t: 'infergate:prefix', batch }, done));
    this.#outbox = outbox;
    gateway.gateway.prefixIndex.onRecord((endpoint, hashes) => outbox.add(endpoint, hashes));
    this.#send({ t: 'infergate:started' });
  }

  /** Stops sharing (what is pending goes out now); the link keeps answering until the process exits. */
  stopSharing(): void {
    this.#gateway?.gateway.prefixIndex.onRecord(undefined);
    this.#outbox?.close();
  }

  /** Stops listening to the primary, so the IPC channel no longer keeps the process alive. */
  close(): void {
    this.stopSharing();
    process.off('message', this.#onMessage);
    process.channel?.unref();
  }

  #send(message: ToPrimary, done?: () => void): void {
    if (!process.connected) {
      done?.();
      return;
    }
    process.send?.(message, undefined, {}, () => done?.());
  }

  async #answer(id: number, what: Question): Promise<void> {
    let body: unknown;
    const g = this.#gateway;
    try {
      if (what === 'ready') body = g === undefined ? { ready: false, reason: 'starting' } : g.ready();
      else if (what === 'debug') body = g === undefined ? null : g.gateway.debugEndpoints();
      else body = g === undefined ? [] : await g.gateway.metrics.registry.getMetricsAsJSON();
    } catch (err) {
      body = what === 'ready' ? { ready: false, reason: String(err) } : null;
    }
    this.#send({ t: 'infergate:answer', id, body });
  }

  #applyPrefix(batch: PrefixBatch): void {
    const g = this.#gateway?.gateway;
    const runtime = g?.runtime;
    if (g === undefined || runtime === undefined) return;
    const byKey = new Map<string, Endpoint>();
    for (const pool of runtime.pools.values()) for (const e of pool.members.endpoints) byKey.set(e.key, e);
    applyPrefixBatch(batch, (key) => byKey.get(key), (e, hashes) => g.prefixIndex.recordShared(e, hashes));
  }
}
