import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { RELOAD_DEBOUNCE_MS } from './defaults.js';

/**
 * Calls `onChange` (debounced) when any of the given files or folders change. Files are watched
 * through their parent folder because editors and `kubectl`-style tools replace files by rename,
 * which silently ends a watch on the file itself. Folders are watched recursively.
 */
export async function watchPaths(paths: readonly string[], onChange: () => void, debounceMs = RELOAD_DEBOUNCE_MS): Promise<() => void> {
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  const trigger = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      onChange();
    }, debounceMs);
  };

  const filesByDir = new Map<string, Set<string>>();
  for (const p of paths) {
    const abs = resolve(p);
    const info = await stat(abs).catch(() => undefined);
    if (info?.isDirectory() === true) {
      watchers.push(watch(abs, { recursive: true }, (_event, file) => {
        if (file === null || /\.(ya?ml|json)$/i.test(String(file))) trigger();
      }));
    } else {
      const dir = dirname(abs);
      const names = filesByDir.get(dir) ?? new Set<string>();
      names.add(basename(abs));
      filesByDir.set(dir, names);
    }
  }
  for (const [dir, names] of filesByDir) {
    watchers.push(watch(dir, (_event, file) => {
      if (file === null || names.has(String(file))) trigger();
    }));
  }
  for (const w of watchers) w.on('error', () => trigger());

  return () => {
    if (timer !== undefined) clearTimeout(timer);
    for (const w of watchers) w.close();
  };
}
