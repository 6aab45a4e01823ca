import type { Endpoint } from '../core/endpoint.js';
import type { PrefixBatch } from './protocol.js';

/**
 * Estimate mode's prefix index shared between the workers of `infergate serve --workers N`. A
 * worker learns its index from its own routing decisions only; without sharing, two workers
 * would each place a shared-prefix group on an endpoint of their own choosing and the group's
 * prefix would be computed and cached once per worker (the effect docs/benchmarks.md measured
 * for gateway replicas). So every `record` a worker makes (the prompt's blocks when a request is
 * sent, the prompt and answer when it completes) is batched here, sent through the primary to
 * the other workers, and applied there as if they had routed it (`PrefixIndex.recordShared`).
 *
 * Bounds: a batch holds at most `maxHashes` hashes (a record longer than that keeps its leading
 * `maxHashes`, the part matching reads first) and leaves at most `flushMs` after its first record;
 * while `maxUnsent` batches are still in the channel (a sibling or the primary not keeping up),
 * further batches are dropped and counted: sharing is a hint, never a queue that grows. The
 * prefix home (src/prefix/home.ts) still makes workers agree on a new long prefix without it.
 */

/** Hashes per batch: 256 KiB of them, about 4 Mi prompt characters. */
export const MAX_BATCH_HASHES = 65_536;
/** Longest a record waits before its batch leaves, in milliseconds. */
export const FLUSH_MS = 5;
/** Batches in the channel at once (sent, not yet written to the pipe) before new ones are dropped. */
export const MAX_UNSENT_BATCHES = 16;

export interface OutboxOptions {
  readonly maxHashes?: number;
  readonly flushMs?: number;
  readonly maxUnsent?: number;
}

/** Sends a batch; calls `done` once it has left this process (Node's `process.send` callback). */
export type SendBatch = (batch: PrefixBatch, done: () => void) => void;

/** Collects one worker's records into batches for its siblings (see the module comment). */
export class PrefixOutbox {
  readonly #send: SendBatch;
  readonly #maxHashes: number;
  readonly #flushMs: number;
  readonly #maxUnsent: number;
  #buffer: Uint32Array;
  #used = 0;
  #keys: string[] = [];
  #lengths: number[] = [];
  #timer: NodeJS.Timeout | undefined;
  #unsent = 0;
  /** Batches dropped because the channel was full. */
  dropped = 0;
  /** Batches sent. */
  sent = 0;

  constructor(send: SendBatch, options: OutboxOptions = {}) {
    this.#send = send;
    this.#maxHashes = Math.max(1, options.maxHashes ?? MAX_BATCH_HASHES);
    this.#flushMs = options.flushMs ?? FLUSH_MS;
    this.#maxUnsent = Math.max(1, options.maxUnsent ?? MAX_UNSENT_BATCHES);
    this.#buffer = new Uint32Array(Math.min(this.#maxHashes, 4096));
  }

  /** `endpoint` was recorded as caching `hashes` (copied now: the caller may reuse its array). */
  add(endpoint: Endpoint, hashes: Uint32Array): void {
    const n = Math.min(hashes.length, this.#maxHashes);
    if (n === 0) return;
    if (this.#used + n > this.#maxHashes) this.flush();
    if (this.#used + n > this.#buffer.length) {
      const grown = new Uint32Array(Math.min(this.#maxHashes, Math.max(this.#used + n, this.#buffer.length * 2)));
      grown.set(this.#buffer.subarray(0, this.#used));
      this.#buffer = grown;
    }
    this.#buffer.set(n === hashes.length ? hashes : hashes.subarray(0, n), this.#used);
    this.#used += n;
    this.#keys.push(endpoint.key);
    this.#lengths.push(n);
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), this.#flushMs);
      this.#timer.unref();
    }
  }

  /** Sends what is pending now (or drops it when the channel is full). */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#keys.length === 0) return;
    // A copy of the used part only: the structured clone of a view sends its whole buffer.
    const batch: PrefixBatch = { keys: this.#keys, lengths: this.#lengths, hashes: this.#buffer.slice(0, this.#used) };
    this.#keys = [];
    this.#lengths = [];
    this.#used = 0;
    if (this.#unsent >= this.#maxUnsent) {
      this.dropped++;
      return;
    }
    this.#unsent++;
    this.sent++;
    this.#send(batch, () => this.#unsent--);
  }

  /** Sends what is pending and stops the timer. */
  close(): void {
    this.flush();
  }
}

/**
 * Applies a sibling's batch: each record on this worker's endpoint of the same key (endpoints
 * this worker does not know, having just left its pools, are skipped). Returns the records
 * applied. A malformed batch (lengths past the hashes) applies what fits and stops.
 */
export function applyPrefixBatch(batch: PrefixBatch, endpointOf: (key: string) => Endpoint | undefined, record: (endpoint: Endpoint, hashes: Uint32Array) => void): number {
  let at = 0;
  let applied = 0;
  for (let i = 0; i < batch.keys.length; i++) {
    const n = batch.lengths[i] ?? 0;
    if (!Number.isInteger(n) || n < 0 || at + n > batch.hashes.length) break;
    const endpoint = endpointOf(batch.keys[i] as string);
    if (endpoint !== undefined) {
      record(endpoint, batch.hashes.subarray(at, at + n));
      applied++;
    }
    at += n;
  }
  return applied;
}
