import type { LoadResult, Problem, Resource } from '../api/types.js';
import { compileSnapshot } from './compile.js';
import type { Snapshot } from './snapshot.js';

export type ReloadOutcome =
  | { readonly ok: true; readonly snapshot: Snapshot; readonly warnings: readonly Problem[]; readonly ignored: number }
  | { readonly ok: false; readonly errors: readonly Problem[]; readonly serving: Snapshot | undefined };

/**
 * Holds the live Snapshot. `apply` compiles a new load result and swaps the pointer only when it
 * has no errors; otherwise the last good snapshot keeps serving. Requests read `current` once at
 * their start, so a swap never affects a request in flight.
 */
export class ConfigStore {
  #current: Snapshot | undefined;
  #version = 0;
  readonly #listeners = new Set<(s: Snapshot) => void>();

  get current(): Snapshot | undefined {
    return this.#current;
  }

  /** Called after every successful swap, in registration order. */
  onSwap(listener: (s: Snapshot) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  apply(load: LoadResult): ReloadOutcome {
    const errors = load.problems.filter((p) => p.severity === 'error');
    if (errors.length > 0) return { ok: false, errors, serving: this.#current };
    return this.applyResources(load.resources, load.problems, load.ignored.length);
  }

  applyResources(resources: readonly Resource[], loadWarnings: readonly Problem[] = [], ignored = 0): ReloadOutcome {
    let compiled;
    try {
      compiled = compileSnapshot(resources, this.#version + 1);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      return { ok: false, errors: [{ severity: 'error', subject: 'config', path: '-', message: `compile failed: ${message}` }], serving: this.#current };
    }
    this.#version += 1;
    this.#current = compiled.snapshot;
    for (const l of this.#listeners) l(compiled.snapshot);
    return { ok: true, snapshot: compiled.snapshot, warnings: [...loadWarnings, ...compiled.warnings], ignored };
  }
}
