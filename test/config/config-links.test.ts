import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadFiles } from '../../src/api/load.js';
import { FileConfigSource } from '../../src/config/file-source.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { gatewayYaml, poolYaml } from '../support/config.js';
import { memoryLogger, type LogRecord } from '../support/memory-source.js';

/*
 * A config file's symbolic link that leads nowhere is an error (the last good configuration keeps
 * serving), not an empty file: read as nothing, a link repointed at a wrong path would remove every
 * resource its file served once the removal settled. Hidden names are never config.
 */

/** Generous: a loaded CI machine may take long to deliver an event or run a poll. */
const DEADLINE_MS = 20_000;

async function until<T>(what: string, probe: () => T | undefined | false): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() - start > DEADLINE_MS) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'infergate-links-'));
}

test('loading: each kind of link that leads nowhere is an error naming the link, its target and why', async () => {
  const dir = await tempDir();
  try {
    await writeFile(join(dir, 'pool.yaml'), poolYaml('a', 'a', 8000));
    await symlink(join(dir, 'gone.yaml'), join(dir, 'missing.yaml'));
    await symlink('loop-b.yml', join(dir, 'loop-a.yml'));
    await symlink('loop-a.yml', join(dir, 'loop-b.yml'));
    await mkdir(join(dir, 'sub'));
    await symlink('../nowhere/x.json', join(dir, 'sub', 'deep.json'));
    // Not config: a dangling link of another name, an editor's lock link, a hidden file.
    await symlink('gone', join(dir, 'notes.txt'));
    await symlink('user@host.4242:1700000000', join(dir, '.#pool.yaml'));
    await writeFile(join(dir, '.hidden.yaml'), poolYaml('hidden', 'h', 8000));
    const loaded = await loadFiles([dir]);
    assert.deepEqual(loaded.resources.map((r) => r.metadata.name), ['a'], 'hidden files are not read');
    const errors = loaded.problems.filter((p) => p.severity === 'error').map((p) => `${p.subject}: ${p.message}`).sort();
    assert.equal(errors.length, 4, errors.join('\n'));
    assert.match(errors.find((e) => e.startsWith(join(dir, 'missing.yaml'))) ?? '', /link to ".*gone\.yaml", which does not exist/);
    assert.match(errors.find((e) => e.startsWith(join(dir, 'loop-a.yml'))) ?? '', /link to "loop-b\.yml", which loops back on itself/);
    assert.match(errors.find((e) => e.startsWith(join(dir, 'sub', 'deep.json'))) ?? '', /which does not exist/);
    assert.deepEqual([...loaded.dangling].sort(), [join(dir, 'loop-a.yml'), join(dir, 'loop-b.yml'), join(dir, 'missing.yaml'), join(dir, 'sub', 'deep.json')]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

interface Served {
  readonly dir: string;
  readonly gateway: Gateway;
  readonly lines: LogRecord[];
  pools(): string[];
}

async function serving(files: Record<string, string>, fn: (s: Served) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  let gateway: Gateway | undefined;
  try {
    const data = join(dir, '..data');
    await mkdir(data);
    for (const [name, text] of Object.entries(files)) {
      await writeFile(join(data, name), text);
      await symlink(join('..data', name), join(dir, name));
    }
    const { logger, lines } = memoryLogger();
    // A short removal settle: the old code removed the link's resources once it passed.
    gateway = await Gateway.start({ sources: [new FileConfigSource([dir], { settleMs: 20, pollMs: 50, removalSettleMs: 200 })], logger, scrapeIntervalMs: 0 });
    const g = gateway;
    await fn({ dir, gateway: g, lines, pools: () => [...(g.runtime?.snapshot.pools.keys() ?? [])].sort() });
  } finally {
    await gateway?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('serving: a link repointed at a missing file is refused and the last good configuration keeps serving; fixing it applies', () =>
  serving({ 'gw.yaml': gatewayYaml(8080), 'pools.yaml': poolYaml('a', 'a', 8000) + poolYaml('b', 'b', 8000) }, async (s) => {
    assert.deepEqual(s.pools(), ['default/a', 'default/b']);
    const link = join(s.dir, 'pools.yaml');
    // Repoint the link atomically (as `ln -sfn` through a rename) at a path that does not exist.
    await symlink(join('..data', 'pools-v2.yaml'), join(s.dir, 'tmp-link'));
    await rename(join(s.dir, 'tmp-link'), link);
    const error = await until('the refusal', () => s.lines.find((l) => l.msg === 'config error' && String(l['problem']).startsWith(link)));
    assert.match(String(error['problem']), /which does not exist/);
    // Well past the removal settle: nothing was removed.
    await new Promise((r) => setTimeout(r, 600));
    assert.deepEqual(s.pools(), ['default/a', 'default/b'], 'the pools kept serving');
    await writeFile(join(s.dir, '..data', 'pools-v2.yaml'), poolYaml('a', 'a', 8000) + poolYaml('c', 'c', 8000));
    await until('the fixed link applies', () => s.pools().includes('default/c'));
  }));

test('serving: a link that dangles only for a moment (the kubelet removing a key) is read again, not refused', () =>
  serving({ 'gw.yaml': gatewayYaml(8080), 'pools.yaml': poolYaml('a', 'a', 8000), 'more.yaml': poolYaml('b', 'b', 8000) }, async (s) => {
    // The key's target goes first, its link a moment later.
    await unlink(join(s.dir, '..data', 'more.yaml'));
    await new Promise((r) => setTimeout(r, 5));
    await unlink(join(s.dir, 'more.yaml'));
    await until('pool b removed once the removal settled', () => !s.pools().includes('default/b'));
    assert.deepEqual(s.pools(), ['default/a']);
    assert.equal(s.lines.filter((l) => l.msg === 'config error').length, 0, 'no refusal was logged');
  }));
