import { errorCount, formatProblemAt, type Pod, type Problem, type Resource } from '../api/types.js';
import { compileSnapshot, type CompileResult } from './compile.js';
import type { Snapshot } from './snapshot.js';
import { resourceKey, type ConfigBatch } from './source.js';

/** A configuration change was refused; `problems` name the resource, field and reason of each error. */
export class ConfigRejectedError extends Error {
  constructor(readonly problems: readonly Problem[]) {
    super(`configuration rejected, ${errorCount(problems)} error(s):\n${problems.map(formatProblemAt).join('\n')}`);
    this.name = 'ConfigRejectedError';
  }
}

/**
 * A batch compiled against the current state but not yet live. The gateway builds the runtime
 * from `compiled` (which may still fail) and only then calls `commit`.
 */
export interface PreparedChange {
  /** The new snapshot, or undefined when no resource but Pods changed (nothing to recompile). */
  readonly compiled: CompileResult | undefined;
  /** Pods added or changed, and keys (`namespace/name`) of pods removed: fed to endpoint discovery. */
  readonly podUpserts: readonly Pod[];
  readonly podDeletes: readonly string[];
  /** Problems of the batch that did not stop it (warnings). */
  readonly warnings: readonly Problem[];
  /** Makes this change the store's state. */
  commit(): void;
}

/** A resource's content, for telling a changed resource from one merely re-read. */
function fingerprint(r: Resource): string {
  return JSON.stringify(r, (key, value: unknown) => (key === 'source' ? undefined : value));
}

/** True when `after` says something `before` did not (its `source` aside). */
function differs(before: Resource, after: Resource): boolean {
  return before !== after && fingerprint(before) !== fingerprint(after);
}

export function podKey(pod: Pod): string {
  return `${pod.metadata.namespace}/${pod.metadata.name}`;
}

/**
 * Holds every source's resources and the live Snapshot compiled from all but the Pods. Pods are
 * not part of the snapshot: a change that only touches Pods compiles nothing and is handed to
 * endpoint discovery as pod upserts and deletes, so a pod becoming ready adds its endpoint
 * without rebuilding the routing configuration or resetting plugin state.
 */
export class ConfigStore {
  readonly #bySource = new Map<string, Map<string, Resource>>();
  #snapshot: Snapshot | undefined;
  #version = 0;

  get snapshot(): Snapshot | undefined {
    return this.#snapshot;
  }

  get version(): number {
    return this.#version;
  }

  /** Every Pod of every source. */
  pods(): Pod[] {
    const out: Pod[] = [];
    for (const entries of this.#bySource.values()) for (const r of entries.values()) if (r.kind === 'Pod') out.push(r);
    return out;
  }

  /** Every resource but the Pods, of every source: what the live snapshot was compiled from. */
  resources(): Resource[] {
    const out: Resource[] = [];
    for (const entries of this.#bySource.values()) for (const r of entries.values()) if (r.kind !== 'Pod') out.push(r);
    return out;
  }

  /**
   * Compiles what the store would hold after `batch` from `source`. Throws ConfigRejectedError when
   * the batch carries errors or does not compile; the store is unchanged until `commit`.
   *
   * Cost: a `replace` batch is the source's whole state and is diffed against all of it; any other
   * batch costs O(its own size) (each named resource compared once with what the store holds), and
   * the snapshot is compiled (O(all resources)) only when a resource other than a Pod changed.
   */
  prepare(source: string, batch: ConfigBatch): PreparedChange {
    const errors = batch.problems.filter((p) => p.severity === 'error');
    if (errors.length > 0) throw new ConfigRejectedError(errors);
    const before: ReadonlyMap<string, Resource> = this.#bySource.get(source) ?? new Map<string, Resource>();
    const diff = batch.replace ? replaceDiff(before, batch) : incrementalDiff(before, batch);
    const configChanged = this.#snapshot === undefined || diff.configChanged;

    let compiled: CompileResult | undefined;
    if (configChanged) {
      // In the order the store holds them (sources in arrival order; a source's resources in
      // the order first seen, a replace batch in its own order), as compiling always saw them.
      const all: Resource[] = [];
      const add = (r: Resource): void => {
        if (r.kind !== 'Pod') all.push(r);
      };
      const addSource = (): void => {
        if (batch.replace) {
          for (const r of diff.sets.values()) add(r);
          return;
        }
        for (const [key, r] of before) if (!diff.removes.has(key)) add(diff.sets.get(key) ?? r);
        for (const [key, r] of diff.sets) if (!before.has(key)) add(r);
      };
      for (const [name, entries] of this.#bySource) {
        if (name === source) addSource();
        else for (const r of entries.values()) add(r);
      }
      if (!this.#bySource.has(source)) addSource();
      try {
        compiled = compileSnapshot(all, this.#version + 1);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        throw new ConfigRejectedError([{ severity: 'error', subject: 'config', path: '-', message: `compile failed: ${message}` }]);
      }
    }
    const warnings = [...batch.problems.filter((p) => p.severity === 'warning'), ...(compiled?.warnings ?? [])];
    return {
      compiled,
      podUpserts: diff.podUpserts,
      podDeletes: diff.podDeletes,
      warnings,
      commit: () => {
        let entries = this.#bySource.get(source);
        if (entries === undefined) {
          entries = new Map();
          this.#bySource.set(source, entries);
        }
        // A replace batch's own order becomes the source's order (see the compile above).
        if (batch.replace) entries.clear();
        for (const key of diff.removes) entries.delete(key);
        for (const [key, r] of diff.sets) entries.set(key, r);
        if (compiled !== undefined) {
          this.#version = compiled.snapshot.version;
          this.#snapshot = compiled.snapshot;
        }
      },
    };
  }
}

/** What a batch changes in one source's resources. */
interface SourceDiff {
  /** Resources to store (added, changed, or re-read unchanged: the newest object is kept), by key. */
  readonly sets: Map<string, Resource>;
  /** Keys of resources to remove. */
  readonly removes: Set<string>;
  /** A resource other than a Pod was added, changed or removed. */
  readonly configChanged: boolean;
  readonly podUpserts: Pod[];
  readonly podDeletes: string[];
}

/** A whole state against the source's current one: every resource compared, the missing removed. */
function replaceDiff(before: ReadonlyMap<string, Resource>, batch: ConfigBatch): SourceDiff {
  const sets = new Map<string, Resource>();
  for (const r of batch.upserts) sets.set(resourceKey(r), r);
  const removes = new Set<string>();
  const podUpserts: Pod[] = [];
  const podDeletes: string[] = [];
  let configChanged = false;
  for (const [key, r] of sets) {
    const old = before.get(key);
    if (old !== undefined && !differs(old, r)) continue;
    if (r.kind === 'Pod') podUpserts.push(r);
    else configChanged = true;
  }
  for (const [key, r] of before) {
    if (sets.has(key)) continue;
    removes.add(key);
    if (r.kind === 'Pod') podDeletes.push(podKey(r));
    else configChanged = true;
  }
  return { sets, removes, configChanged, podUpserts, podDeletes };
}

/** Upserts and deletes against the source's current state: only the resources the batch names. */
function incrementalDiff(before: ReadonlyMap<string, Resource>, batch: ConfigBatch): SourceDiff {
  const sets = new Map<string, Resource>();
  const removes = new Set<string>();
  for (const d of batch.deletes) removes.add(resourceKey(d));
  for (const r of batch.upserts) {
    const key = resourceKey(r);
    removes.delete(key);
    sets.set(key, r);
  }
  const podUpserts: Pod[] = [];
  const podDeletes: string[] = [];
  let configChanged = false;
  for (const key of removes) {
    const old = before.get(key);
    if (old === undefined) continue;
    if (old.kind === 'Pod') podDeletes.push(podKey(old));
    else configChanged = true;
  }
  for (const [key, r] of sets) {
    const old = before.get(key);
    if (old !== undefined && !differs(old, r)) continue;
    if (r.kind === 'Pod') podUpserts.push(r);
    else configChanged = true;
  }
  return { sets, removes, configChanged, podUpserts, podDeletes };
}
