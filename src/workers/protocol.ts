/**
 * The messages between the primary of `infergate serve --workers N` and its workers, over
 * Node's cluster IPC channel (`serialization: 'advanced'`, the structured clone: typed arrays
 * travel as bytes, not JSON). Every type starts with `infergate:` so a message from anything
 * else on the channel (Node's own, a library's) is never mistaken for one.
 */

/** What the primary asks a worker for its part of an admin-port answer. */
export type Question = 'ready' | 'debug' | 'metrics';

/** Where some worker routed prompts (estimate mode): `keys[i]` got `lengths[i]` hashes, in order, from `hashes`. */
export interface PrefixBatch {
  readonly keys: readonly string[];
  readonly lengths: readonly number[];
  readonly hashes: Uint32Array;
}

export type ToWorker =
  /** Drain and exit, as on SIGTERM. */
  | { readonly t: 'infergate:shutdown' }
  | { readonly t: 'infergate:ask'; readonly id: number; readonly what: Question }
  /** The siblings' batches of one relay tick; a worker skips its own (`from` is its slot). */
  | { readonly t: 'infergate:prefix'; readonly batches: ReadonlyArray<{ readonly from: number; readonly batch: PrefixBatch }> };

export type ToPrimary =
  /** The worker's gateway is up: configuration loaded, listeners bound. */
  | { readonly t: 'infergate:started' }
  | { readonly t: 'infergate:answer'; readonly id: number; readonly body: unknown }
  | { readonly t: 'infergate:prefix'; readonly batch: PrefixBatch };

/** The environment variables a worker is forked with: its slot (0 … N−1) and N. */
export const WORKER_ID_ENV = 'INFERGATE_WORKER_ID';
export const WORKER_COUNT_ENV = 'INFERGATE_WORKER_COUNT';

function isObject(m: unknown): m is { t?: unknown } {
  return typeof m === 'object' && m !== null;
}

export function isToWorker(m: unknown): m is ToWorker {
  return isObject(m) && (m.t === 'infergate:shutdown' || m.t === 'infergate:ask' || m.t === 'infergate:prefix');
}

export function isToPrimary(m: unknown): m is ToPrimary {
  return isObject(m) && (m.t === 'infergate:started' || m.t === 'infergate:answer' || m.t === 'infergate:prefix');
}
