import type { Resource } from '../api/types.js';
import { resourceKey } from './source.js';

/** What to do with a complete, consistent read of a source's files. */
export type SettleDecision =
  | { readonly action: 'apply' }
  | {
      readonly action: 'hold';
      /** When (on the caller's clock, ms) the read may apply if nothing changes meanwhile. */
      readonly untilMs: number;
      /** The files that lost serving resources or shrank. */
      readonly files: readonly string[];
      /** The serving resources the read would remove, as `Kind/namespace/name`. */
      readonly removed: readonly string[];
    };

/** A stamp standing for "this file does not exist". */
const ABSENT = 'absent';

/**
 * Decides when a read of configuration files may replace what serves. A read that removes
 * nothing and shrinks no file applies at once. A read that would remove resources now serving (a
 * file emptied, deleted, or losing documents), or in which a file that serves is shorter than when
 * it was applied (a document cut at a line boundary still parses: a route losing its last rules,
 * `weight: 90` cut to `weight: 9`), looks like a file caught mid-write: it applies only once every
 * such file has kept the same stamp (inode, size, mtime) for `holdMs`. A half-written file is
 * rewritten before then and never applies; a real removal or a shortening edit applies late.
 *
 * Time is the caller's monotonic clock in milliseconds (`performance.now()`), passed in, so the
 * rule is a pure function of what was seen when.
 */
export class RemovalSettle {
  readonly #holdMs: number;
  /** Resource key (`Kind/namespace/name`) → the file it was read from, for the serving state. */
  #serving = new Map<string, string>();
  /** File → its size in bytes when what serves was read from it. */
  #servingSizes = new Map<string, number>();
  /** File → its stamp at the last read (kept for `applied`). */
  #lastStamps: ReadonlyMap<string, string> = new Map();
  /** File → its stamp at the last read and when that stamp was first seen. */
  readonly #seen = new Map<string, { stamp: string; sinceMs: number }>();

  /** `holdMs`: how long a removing change must stay unchanged (ms, ≥ 0). */
  constructor(holdMs: number) {
    this.#holdMs = holdMs;
  }

  /**
   * Records the stamps of a read made at `nowMs` (file → stamp, see `fileStamp` in api/load.ts);
   * a file seen before but missing now is recorded as absent (deleted).
   */
  observe(stamps: ReadonlyMap<string, string>, nowMs: number): void {
    this.#lastStamps = stamps;
    const files = new Set([...stamps.keys(), ...this.#seen.keys(), ...this.#serving.values()]);
    const serving = new Set(this.#serving.values());
    for (const file of files) {
      const stamp = stamps.get(file) ?? ABSENT;
      // An absent file nothing serves from needs no watching (keeps the map to the file set).
      if (stamp === ABSENT && !serving.has(file)) {
        this.#seen.delete(file);
        continue;
      }
      if (this.#seen.get(file)?.stamp !== stamp) this.#seen.set(file, { stamp, sinceMs: nowMs });
    }
  }

  /** Whether `resources` (a whole read, after `observe`) may apply at `nowMs`, or until when it is held. */
  decide(resources: readonly Resource[], nowMs: number): SettleDecision {
    const keys = new Set(resources.map((r) => resourceKey(r)));
    const removed: string[] = [];
    const files = new Set<string>();
    for (const [key, file] of this.#serving) {
      if (keys.has(key)) continue;
      removed.push(key);
      files.add(file);
    }
    for (const [file, size] of this.#servingSizes) {
      const now = sizeOf(this.#lastStamps.get(file));
      if (now !== undefined && now < size) files.add(file);
    }
    if (files.size === 0) return { action: 'apply' };
    let untilMs = nowMs;
    for (const file of files) untilMs = Math.max(untilMs, (this.#seen.get(file)?.sinceMs ?? nowMs) + this.#holdMs);
    if (untilMs <= nowMs) return { action: 'apply' };
    return { action: 'hold', untilMs, files: [...files].sort(), removed: removed.sort() };
  }

  /** Records `resources` (as read, with their source files) as what now serves. */
  applied(resources: readonly Resource[]): void {
    this.#serving = new Map(resources.map((r) => [resourceKey(r), r.source.file]));
    this.#servingSizes = new Map();
    for (const file of new Set(this.#serving.values())) {
      const size = sizeOf(this.#lastStamps.get(file));
      if (size !== undefined) this.#servingSizes.set(file, size);
    }
  }
}

/** The size in a stamp (`inode:size:mtime`, api/load.ts `fileStamp`); undefined for none or absent. */
function sizeOf(stamp: string | undefined): number | undefined {
  if (stamp === undefined || stamp === ABSENT) return undefined;
  const size = Number(stamp.split(':')[1]);
  return Number.isFinite(size) ? size : undefined;
}
