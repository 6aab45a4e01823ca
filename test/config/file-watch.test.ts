import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { watchPaths, type WatchOptions } from '../../src/config/file-watch.js';

/** Generous: a loaded CI machine may take long to deliver an event or run a poll. */
const DEADLINE_MS = 15_000;
const DEBOUNCE_MS = 20;

/** A watcher on `paths` that counts reloads, and helpers to wait for the next one. */
async function counting(paths: string[], options: WatchOptions = {}): Promise<{ count: () => number; next: (what: string, action: () => Promise<void>) => Promise<void>; stop: () => void }> {
  let calls = 0;
  const stop = await watchPaths(paths, () => calls++, DEBOUNCE_MS, options);
  return {
    count: () => calls,
    /** Runs `action`, then waits until at least one more reload was called. */
    next: async (what, action) => {
      const before = calls;
      await action();
      const start = Date.now();
      while (calls === before) {
        if (Date.now() - start > DEADLINE_MS) throw new Error(`no reload after: ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    stop,
  };
}

/** Overwrites the start of a file without truncating it (an in-place write). */
async function writeInPlace(file: string, text: string): Promise<void> {
  const fh = await open(file, 'r+');
  try {
    await fh.write(text, 0);
  } finally {
    await fh.close();
  }
}

/** An editor-style atomic save: write a temporary file beside it, rename it over the original. */
async function renameOver(file: string, text: string, n: number): Promise<void> {
  const tmp = join(file, '..', `sed${n}x.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, file);
}

const doc = (n: number): string => `kind: ConfigMap\nmetadata:\n  name: c${n}\n`;

/**
 * Every way of writing one file, in an order that also edits the file after it has been replaced
 * by rename (the reported bug: later edits were ignored). Each must cause a reload.
 */
const WRITES: ReadonlyArray<readonly [string, (file: string) => Promise<void>]> = [
  ['an in-place write', (f) => writeInPlace(f, 'kind: ConfigMap\nmetadata:\n  name: X0\n')],
  ['truncate and write', (f) => writeFile(f, doc(1))],
  ['rename over, #1', (f) => renameOver(f, doc(10), 1)],
  ['rename over, #2', (f) => renameOver(f, doc(11), 2)],
  ['rename over, #3', (f) => renameOver(f, doc(12), 3)],
  ['an in-place write after renames', (f) => writeInPlace(f, 'kind: ConfigMap\nmetadata:\n  name: X1\n')],
  ['truncate and write after renames', (f) => writeFile(f, doc(2))],
  ['delete', (f) => unlink(f)],
  ['create again', (f) => writeFile(f, doc(3))],
];

type Counter = Awaited<ReturnType<typeof counting>>;

/**
 * A temporary folder holding `files` (relative path → content), watched through `paths(dir)`;
 * `fn` runs the test, then the watcher stops and the folder goes, whatever happened.
 */
async function watched(files: Record<string, string>, paths: (dir: string) => string[], options: WatchOptions, fn: (w: Counter, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-watch-'));
  let w: Counter | undefined;
  try {
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(dir, name, '..'), { recursive: true });
      await writeFile(join(dir, name), text);
    }
    w = await counting(paths(dir), options);
    await fn(w, dir);
  } finally {
    w?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('watchPaths', () => {
  test('a folder: every way of writing a file reloads, also after the file was replaced by rename', () =>
    watched({ 'gateway.yaml': doc(0) }, (dir) => [dir], {}, async (w, dir) => {
      const file = join(dir, 'gateway.yaml');
      for (const [what, write] of WRITES) await w.next(what, () => write(file));
      await w.next('a new file', () => writeFile(join(dir, 'pools.yml'), doc(4)));
      await w.next('a JSON file', () => writeFile(join(dir, 'extra.json'), '{"kind":"ConfigMap"}'));
    }));

  test('a folder: a file in a new subfolder, and later edits of it (in place and by rename)', () =>
    watched({ 'a.yaml': doc(0) }, (dir) => [dir], {}, async (w, dir) => {
      const sub = join(dir, 'team-a', 'pools');
      await w.next('a file in new nested subfolders', async () => {
        await mkdir(sub, { recursive: true });
        await writeFile(join(sub, 'pool.yaml'), doc(1));
      });
      await w.next('an edit in the new subfolder', () => writeInPlace(join(sub, 'pool.yaml'), 'kind: ConfigMap\nmetadata:\n  name: Y1\n'));
      await w.next('a rename over in the new subfolder', () => renameOver(join(sub, 'pool.yaml'), doc(2), 7));
      await w.next('an edit after that rename', () => writeFile(join(sub, 'pool.yaml'), doc(3)));
      await w.next('the subfolder removed', () => rm(join(dir, 'team-a'), { recursive: true }));
      await w.next('the top file still watched', () => writeFile(join(dir, 'a.yaml'), doc(4)));
    }));

  test('a single file: in place, truncate, rename over repeatedly, delete and create', () =>
    watched({ 'only.yaml': doc(0) }, (dir) => [join(dir, 'only.yaml')], {}, async (w, dir) => {
      for (const [what, write] of WRITES) await w.next(what, () => write(join(dir, 'only.yaml')));
    }));

  test('files that do not count: a sibling of a watched file, and non-YAML files in a watched folder', () =>
    watched({ 'only.yaml': doc(0), 'folder/keep.yaml': doc(1) }, (dir) => [join(dir, 'only.yaml'), join(dir, 'folder')], { pollMs: 50 }, async (w, dir) => {
      await writeFile(join(dir, 'sibling.yaml'), doc(1));
      await writeFile(join(dir, 'folder', 'notes.txt'), 'not config');
      await writeFile(join(dir, 'folder', 'draft.yaml.swp'), 'editor swap');
      // Long enough for events, several polls and the debounce: a wrong reload would have fired.
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(w.count(), 0);
      await w.next('the watched file itself', () => writeFile(join(dir, 'only.yaml'), doc(2)));
    }));

  test('polling alone (no fs.watch, as on a filesystem without events) still sees every kind of change', () =>
    watched({ 'gateway.yaml': doc(0) }, (dir) => [dir], { fsWatch: false, pollMs: 50 }, async (w, dir) => {
      const file = join(dir, 'gateway.yaml');
      await w.next('truncate and write (new size)', () => writeFile(file, `${doc(1)}# longer\n`));
      await w.next('rename over', () => renameOver(file, doc(2), 1));
      await w.next('rename over again', () => renameOver(file, doc(3), 2));
      await w.next('a file in a new subfolder', async () => {
        await mkdir(join(dir, 'sub'));
        await writeFile(join(dir, 'sub', 'b.json'), '{}');
      });
      await w.next('delete', () => unlink(file));
    }));

  test('a path that does not exist yet is picked up when it appears; stop() ends all reloads', () =>
    watched({}, (dir) => [join(dir, 'later.yaml')], { pollMs: 50 }, async (w, dir) => {
      const file = join(dir, 'later.yaml');
      await w.next('the file appears', () => writeFile(file, doc(0)));
      w.stop();
      const after = w.count();
      await writeFile(file, doc(1));
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(w.count(), after, 'no reload after stop()');
    }));
});
