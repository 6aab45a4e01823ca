import { watch, type FSWatcher } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { configEntryKind } from '../api/load.js';
import { RELOAD_DEBOUNCE_MS } from './defaults.js';

/**
 * How often the watched files are compared with what was last seen, as a safety net behind
 * `fs.watch` (see `watchPaths`). One `stat` per YAML/JSON file and one `readdir` per folder per
 * interval: cheap for a configuration tree.
 */
export const WATCH_POLL_MS = 1000;

/** The files the loader reads (src/api/load.ts): YAML and JSON, in folders not starting with a dot. */
const CONFIG_FILE = /\.(ya?ml|json)$/i;

/** Options of {@link watchPaths} beyond the debounce. */
export interface WatchOptions {
  /** Polling interval in ms; default {@link WATCH_POLL_MS}. */
  readonly pollMs?: number;
  /**
   * Use `fs.watch` for prompt reloads (default true). False relies on polling alone, for
   * filesystems that deliver no change events (some network and container mounts).
   */
  readonly fsWatch?: boolean;
}

/** What a directory watcher reports: every config file in it, and/or these single files. */
interface Interest {
  all: boolean;
  readonly names: Set<string>;
}

/** A file's identity and content stamp: a rename over it changes the inode, a write the size or mtime. */
type Signature = string;

/**
 * Calls `onChange` (debounced by `debounceMs`) whenever a watched YAML/JSON file changes, however
 * it was written: in place, truncated and rewritten, replaced by rename (`sed -i`, editors'
 * atomic save, `kubectl`-style tools; repeatedly), deleted and created again, or created new —
 * in a folder or in a subfolder created later. `paths` are files or folders (folders recursively,
 * skipping folders whose name starts with a dot, as the loader does).
 *
 * Two mechanisms, because either alone loses changes:
 * - `fs.watch` on every folder involved, non-recursively (a file is watched through its parent
 *   folder, filtered by name), for prompt reloads. Node's recursive watcher loses a file once it
 *   has been replaced by rename, so the folder tree is walked here and the watchers are re-armed
 *   whenever a folder changes (a subfolder created or removed).
 * - Polling every `pollMs` (default 1 s): the tree is walked and each file's signature (inode,
 *   size, mtime) compared with the last one seen, so a lost or silent watcher cannot stop reloads.
 *
 * Resolves once the first walk is done; the returned function stops everything.
 */
export async function watchPaths(paths: readonly string[], onChange: () => void, debounceMs = RELOAD_DEBOUNCE_MS, options: WatchOptions = {}): Promise<() => void> {
  const roots = paths.map((p) => resolve(p));
  const pollMs = options.pollMs ?? WATCH_POLL_MS;
  const useFsWatch = options.fsWatch ?? true;
  const watchers = new Map<string, { watcher: FSWatcher; interest: Interest }>();
  let seen = new Map<string, Signature>();
  let closed = false;
  let timer: NodeJS.Timeout | undefined;

  // --- the walk: folders to watch and file signatures, serialised so two never interleave -------
  let walking: Promise<boolean> | undefined;
  let walkAgain = false;

  /** Walks the tree, re-arms the watchers, records the signatures; true when a signature changed. */
  const walk = async (): Promise<boolean> => {
    const interests = new Map<string, Interest>();
    const signatures = new Map<string, Signature>();
    const interest = (dir: string): Interest => {
      let i = interests.get(dir);
      if (i === undefined) interests.set(dir, (i = { all: false, names: new Set() }));
      return i;
    };
    const sign = async (file: string): Promise<void> => {
      const s = await stat(file).catch(() => undefined);
      if (s?.isFile() === true) signatures.set(file, `${s.ino}:${s.size}:${s.mtimeMs}`);
    };
    const walked = new Set<string>();
    const folder = async (dir: string): Promise<void> => {
      // A linked folder that leads back up the tree is walked once.
      const real = await realpath(dir).catch(() => dir);
      if (walked.has(real)) return;
      walked.add(real);
      interest(dir).all = true;
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const full = join(dir, e.name);
        const kind = await configEntryKind(full, e);
        if (kind === 'folder') await folder(full);
        else if (kind === 'file') await sign(full);
      }
    };
    for (const root of roots) {
      const s = await stat(root).catch(() => undefined);
      if (s?.isDirectory() === true) {
        await folder(root);
      } else {
        interest(dirname(root)).names.add(basename(root));
        await sign(root);
      }
    }
    if (closed) return false;
    if (useFsWatch) rearm(interests);
    const changed = signatures.size !== seen.size || [...signatures].some(([file, sig]) => seen.get(file) !== sig);
    seen = signatures;
    return changed;
  };

  const walkSerialised = (): Promise<boolean> => {
    if (walking !== undefined) {
      walkAgain = true;
      return walking;
    }
    walking = (async () => {
      let changed = false;
      do {
        walkAgain = false;
        changed = (await walk()) || changed;
      } while (walkAgain && !closed);
      walking = undefined;
      return changed;
    })();
    return walking;
  };

  // --- reacting --------------------------------------------------------------------------------

  /** Debounced: the signatures are recorded first, so a change made during the reload is seen later. */
  const trigger = (): void => {
    if (closed) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void walkSerialised().then(() => {
        if (!closed) onChange();
      });
    }, debounceMs);
  };

  const onEvent = (dir: string, file: string | null): void => {
    const entry = watchers.get(dir);
    if (closed || entry === undefined) return;
    const name = file === null ? null : String(file);
    const relevant = name === null || (entry.interest.all && CONFIG_FILE.test(name)) || entry.interest.names.has(name);
    if (relevant) trigger();
    // Any event may be a folder appearing or going away: walk to re-arm (the walk also catches
    // a relevant change the event's file name did not show).
    void walkSerialised().then((changed) => {
      if (changed && !relevant) trigger();
    });
  };

  const rearm = (interests: Map<string, Interest>): void => {
    for (const [dir, entry] of watchers) {
      if (interests.has(dir)) continue;
      entry.watcher.close();
      watchers.delete(dir);
    }
    for (const [dir, interest] of interests) {
      const existing = watchers.get(dir);
      if (existing !== undefined) {
        existing.interest.all = interest.all;
        existing.interest.names.clear();
        for (const n of interest.names) existing.interest.names.add(n);
        continue;
      }
      try {
        const watcher = watch(dir, { persistent: false }, (_event, file) => onEvent(dir, file));
        watcher.on('error', () => {
          // The folder went away (or the watch broke): forget it; the walk re-arms what exists.
          watcher.close();
          if (watchers.get(dir)?.watcher === watcher) watchers.delete(dir);
          trigger();
          void walkSerialised();
        });
        watchers.set(dir, { watcher, interest });
      } catch {
        // The folder vanished between the walk and the watch; the next walk sees it as it is.
      }
    }
  };

  await walkSerialised();
  const poller = setInterval(() => {
    void walkSerialised().then((changed) => {
      if (changed) trigger();
    });
  }, pollMs);
  poller.unref();

  return () => {
    closed = true;
    clearInterval(poller);
    if (timer !== undefined) clearTimeout(timer);
    for (const { watcher } of watchers.values()) watcher.close();
    watchers.clear();
  };
}
