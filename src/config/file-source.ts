import { performance } from 'node:perf_hooks';
import { loadFiles, type LoadedFiles } from '../api/load.js';
import type { Resource } from '../api/types.js';
import { RELOAD_DEBOUNCE_MS, RELOAD_REMOVAL_SETTLE_MS } from './defaults.js';
import { watchPaths } from './file-watch.js';
import { RemovalSettle } from './settle.js';
import type { ApplyOutcome, ConfigSink, ConfigSource, SourceLog } from './source.js';

export interface FileSourceOptions {
  /** Reload when the files change (default true). */
  readonly watch?: boolean;
  /**
   * Rewrites the loaded resources before they are applied (the demo moves its ports this way);
   * runs on every load, so edits to the files still apply.
   */
  readonly transform?: (resources: readonly Resource[]) => readonly Resource[];
  /** Milliseconds the files must be quiet before a change is read; default {@link RELOAD_DEBOUNCE_MS}. */
  readonly settleMs?: number;
  /**
   * Milliseconds a change that would remove serving resources must stay unchanged before it
   * applies; default {@link RELOAD_REMOVAL_SETTLE_MS}.
   */
  readonly removalSettleMs?: number;
  /** Polling interval of the watcher in ms (see `watchPaths`); default its `WATCH_POLL_MS`. */
  readonly pollMs?: number;
}

const SILENT: SourceLog = { info: () => undefined, warn: () => undefined };

/**
 * YAML/JSON files and folders as a configuration source. Every load reads the whole set and
 * delivers it as one replacing batch, so a change to several files applies together (or not at
 * all). Loads are serialised: a change that lands while one is applied waits its turn.
 *
 * A change applies only once it has settled, because tools write files in steps (truncate, then
 * write; several chunks; delete, then create) and a step in between must never serve:
 * 1. the files must be quiet for `settleMs` before they are read (the watcher's debounce);
 * 2. a read during which a file changed (its stamp before and after differs, or the bytes read
 *    are not its size) is not used: the files are read again `settleMs` later;
 * 3. a read that would remove serving resources waits until the files that lost them have stayed
 *    unchanged for `removalSettleMs` (see {@link RemovalSettle}); a rewrite in between replaces it;
 * 4. a read with any error (a half-written document that does not parse, a config file's link that
 *    leads nowhere on two reads in a row) is refused by the gateway as a whole, and the last good
 *    configuration keeps serving.
 */
export class FileConfigSource implements ConfigSource {
  readonly name: string;
  readonly #paths: readonly string[];
  readonly #options: FileSourceOptions;
  readonly #settleMs: number;
  readonly #settle: RemovalSettle;
  #sink: ConfigSink | undefined;
  #log: SourceLog = SILENT;
  #stopWatching: (() => void) | undefined;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  /** Callers of `resync` waiting for the next outcome (a held change resolves them when it applies). */
  #waiters: Array<(outcome: ApplyOutcome) => void> = [];
  #last: ApplyOutcome | undefined;
  /** The change held back (logged once), until it applies or the files change again. */
  #held: string | undefined;
  /** The dangling links of the last read (see `#attempt`). */
  #dangling: ReadonlySet<string> = new Set();

  constructor(paths: readonly string[], options: FileSourceOptions = {}) {
    if (paths.length === 0) throw new Error('a file source needs at least one path');
    this.#paths = paths;
    this.#options = options;
    this.#settleMs = options.settleMs ?? RELOAD_DEBOUNCE_MS;
    this.#settle = new RemovalSettle(options.removalSettleMs ?? RELOAD_REMOVAL_SETTLE_MS);
    this.name = `files: ${paths.join(', ')}`;
  }

  async start(sink: ConfigSink, log?: SourceLog): Promise<ApplyOutcome> {
    this.#sink = sink;
    if (log !== undefined) this.#log = log;
    // Watch before the first read, so a write during it is not missed (it causes one more read).
    if (this.#options.watch !== false) {
      const watchOptions = this.#options.pollMs === undefined ? {} : { pollMs: this.#options.pollMs };
      this.#stopWatching = await watchPaths(this.#paths, () => this.#schedule(0), this.#settleMs, watchOptions);
    }
    return this.resync();
  }

  /**
   * Reads the files now; resolves with the outcome of the next batch delivered. A change held
   * back (see the class) resolves once it applies or is replaced; `stop` resolves it with the last
   * outcome.
   */
  resync(): Promise<ApplyOutcome> {
    if (this.#sink === undefined) return Promise.reject(new Error('file source not started'));
    if (this.#stopped) return Promise.reject(new Error('file source stopped'));
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#schedule(0);
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopWatching?.();
    this.#stopWatching = undefined;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running;
    const last = this.#last ?? { ok: false, errors: [{ severity: 'error', subject: this.name, path: '-', message: 'stopped before the files settled' }], servingVersion: undefined };
    this.#resolve(last);
  }

  /** (Re)arms the one timer that runs a read `delayMs` from now. */
  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#run();
    }, delayMs);
  }

  /** Runs reads one at a time; a request during a read runs one more after it. */
  #run(): void {
    if (this.#running !== undefined) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#attempt();
        } catch (err) {
          // The sink failed outright (it reports refusals as outcomes): report it to whoever waits.
          this.#resolve({ ok: false, errors: [{ severity: 'error', subject: this.name, path: '-', message: err instanceof Error ? err.message : String(err) }], servingVersion: undefined });
        }
      } while (this.#again && !this.#stopped);
      this.#running = undefined;
    })();
  }

  async #attempt(): Promise<void> {
    const sink = this.#sink;
    if (sink === undefined || this.#stopped) return;
    let loaded: LoadedFiles;
    try {
      loaded = await loadFiles(this.#paths);
    } catch (err) {
      // loadFiles reports unreadable paths as problems; anything else is a bug worth a refusal, not a crash.
      loaded = { resources: [], ignored: [], stamps: new Map(), torn: [], dangling: [], problems: [{ severity: 'error', subject: this.name, path: '-', message: `cannot read: ${err instanceof Error ? err.message : String(err)}` }] };
    }
    if (this.#stopped) return;
    if (loaded.torn.length > 0) {
      this.#log.info({ source: this.name, files: loaded.torn, retryMs: this.#settleMs }, 'config file changed while being read; waiting for it to settle');
      this.#schedule(this.#settleMs);
      return;
    }
    // A link first seen dangling may be the kubelet's, between its `..data` swap and its removal
    // of a deleted key's link: read again once before the link counts as the error it reports.
    const newlyDangling = loaded.dangling.filter((link) => !this.#dangling.has(link));
    this.#dangling = new Set(loaded.dangling);
    if (newlyDangling.length > 0) {
      this.#log.info({ source: this.name, files: newlyDangling, retryMs: this.#settleMs }, 'config file link leads nowhere; reading again before refusing it');
      this.#schedule(this.#settleMs);
      return;
    }
    const now = performance.now();
    this.#settle.observe(loaded.stamps, now);
    const failed = loaded.problems.some((p) => p.severity === 'error');
    if (!failed) {
      const decision = this.#settle.decide(loaded.resources, now);
      if (decision.action === 'hold') {
        const key = JSON.stringify([decision.files, decision.removed, decision.untilMs]);
        if (this.#held !== key) {
          this.#held = key;
          this.#log.warn(
            { source: this.name, files: decision.files, removes: decision.removed, settleMs: Math.ceil(decision.untilMs - now) },
            'config change would remove serving resources or shorten a file that serves; waiting for the files to settle before applying it',
          );
        }
        // +1: timers may fire a fraction of a millisecond early on the monotonic clock.
        this.#schedule(Math.ceil(decision.untilMs - now) + 1);
        return;
      }
    }
    if (this.#held !== undefined) {
      this.#held = undefined;
      this.#log.info({ source: this.name }, failed ? 'config change held for settling was replaced by one with errors' : 'config change settled; applying it');
    }
    const resources = this.#options.transform === undefined ? loaded.resources : this.#options.transform(loaded.resources);
    const outcome = await sink({ upserts: resources, deletes: [], replace: true, problems: loaded.problems, ignored: loaded.ignored.length });
    if (outcome.ok) this.#settle.applied(loaded.resources);
    this.#last = outcome;
    this.#resolve(outcome);
  }

  #resolve(outcome: ApplyOutcome): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w(outcome);
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
