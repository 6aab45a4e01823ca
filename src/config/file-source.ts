import { loadFiles } from '../api/load.js';
import type { Resource } from '../api/types.js';
import { watchPaths } from './file-watch.js';
import type { ApplyOutcome, ConfigSink, ConfigSource } from './source.js';

export interface FileSourceOptions {
  /** Reload when the files change (default true). */
  readonly watch?: boolean;
  /**
   * Rewrites the loaded resources before they are applied (the demo moves its ports this way);
   * runs on every load, so edits to the files still apply.
   */
  readonly transform?: (resources: readonly Resource[]) => readonly Resource[];
}

/**
 * YAML/JSON files and folders as a configuration source. Every load reads the whole set and
 * delivers it as one replacing batch, so a change to several files applies together (or not at
 * all). Loads are serialised: a change that lands while one is applied waits its turn.
 */
export class FileConfigSource implements ConfigSource {
  readonly name: string;
  readonly #paths: readonly string[];
  readonly #options: FileSourceOptions;
  #sink: ConfigSink | undefined;
  #stopWatching: (() => void) | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(paths: readonly string[], options: FileSourceOptions = {}) {
    if (paths.length === 0) throw new Error('a file source needs at least one path');
    this.#paths = paths;
    this.#options = options;
    this.name = `files: ${paths.join(', ')}`;
  }

  async start(sink: ConfigSink): Promise<ApplyOutcome> {
    this.#sink = sink;
    const first = await this.resync();
    if (this.#options.watch !== false) this.#stopWatching = await watchPaths(this.#paths, () => void this.resync());
    return first;
  }

  resync(): Promise<ApplyOutcome> {
    const run = this.#queue.then(() => this.#load());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #load(): Promise<ApplyOutcome> {
    const sink = this.#sink;
    if (sink === undefined) throw new Error('file source not started');
    const loaded = await loadFiles(this.#paths);
    const resources = this.#options.transform === undefined ? loaded.resources : this.#options.transform(loaded.resources);
    return sink({ upserts: resources, deletes: [], replace: true, problems: loaded.problems, ignored: loaded.ignored.length });
  }

  async stop(): Promise<void> {
    this.#stopWatching?.();
    this.#stopWatching = undefined;
    await this.#queue;
  }
}

/** Resources built in code: delivered once, never changing. */
export class StaticConfigSource implements ConfigSource {
  readonly name: string;
  readonly #resources: readonly Resource[];
  #sink: ConfigSink | undefined;

  constructor(resources: readonly Resource[], name = 'static') {
    this.#resources = resources;
    this.name = name;
  }

  start(sink: ConfigSink): Promise<ApplyOutcome> {
    this.#sink = sink;
    return this.resync();
  }

  resync(): Promise<ApplyOutcome> {
    if (this.#sink === undefined) return Promise.reject(new Error('static source not started'));
    return this.#sink({ upserts: this.#resources, deletes: [], replace: true, problems: [], ignored: 0 });
  }

  async stop(): Promise<void> {}
}
