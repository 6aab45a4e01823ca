import { formatProblem, type Pod, type Problem, type Resource } from '../api/types.js';
import { compileSnapshot, type CompileResult } from './compile.js';
import type { Snapshot } from './snapshot.js';
import { resourceKey, type ConfigBatch } from './source.js';

/** A configuration change was refused; `problems` name the resource, field and reason of each error. */
export class ConfigRejectedError extends Error {
  constructor(readonly problems: readonly Problem[]) {
    super(`configuration rejected:\n${problems.map(formatProblem).join('\n')}`);
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

type Entries = ReadonlyMap<string, Resource>;

/** A resource's content, for telling a changed resource from one merely re-read. */
function fingerprint(r: Resource): string {
  return JSON.stringify(r, (key, value: unknown) => (key === 'source' ? undefined : value));
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
  readonly #bySource = new Map<string, Entries>();
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
   */
  prepare(source: string, batch: ConfigBatch): PreparedChange {
    const errors = batch.problems.filter((p) => p.severity === 'error');
    if (errors.length > 0) throw new ConfigRejectedError(errors);
    const before = this.#bySource.get(source) ?? new Map<string, Resource>();
    const after = new Map<string, Resource>(batch.replace ? [] : before);
    for (const d of batch.deletes) after.delete(resourceKey(d));
    for (const r of batch.upserts) after.set(resourceKey(r), r);

    let configChanged = this.#snapshot === undefined;
    const podUpserts: Pod[] = [];
    const podDeletes: string[] = [];
    for (const [key, r] of after) {
      const old = before.get(key);
      const changed = old === undefined || fingerprint(old) !== fingerprint(r);
      if (!changed) continue;
      if (r.kind === 'Pod') podUpserts.push(r);
      else configChanged = true;
    }
    for (const [key, r] of before) {
      if (after.has(key)) continue;
      if (r.kind === 'Pod') podDeletes.push(podKey(r));
      else configChanged = true;
    }

    let compiled: CompileResult | undefined;
    if (configChanged) {
      const all: Resource[] = [];
      for (const [name, entries] of this.#bySource) for (const r of (name === source ? after : entries).values()) if (r.kind !== 'Pod') all.push(r);
      if (!this.#bySource.has(source)) for (const r of after.values()) if (r.kind !== 'Pod') all.push(r);
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
      podUpserts,
      podDeletes,
      warnings,
      commit: () => {
        this.#bySource.set(source, after);
        if (compiled !== undefined) {
          this.#version = compiled.snapshot.version;
          this.#snapshot = compiled.snapshot;
        }
      },
    };
  }
}
