import assert from 'node:assert/strict';
import { mkdtemp, open, rename, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FileConfigSource, type FileSourceOptions } from '../../src/config/file-source.js';
import type { Snapshot } from '../../src/config/snapshot.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { gatewayYaml, poolYaml, routeYaml } from '../support/config.js';
import { memoryLogger, type LogRecord } from '../support/memory-source.js';

/** Generous: a loaded CI machine may take long to deliver an event or run a poll. */
const DEADLINE_MS = 20_000;
/** Short windows keep the tests quick; the hold is long wherever a test must act before it ends. */
const QUICK: FileSourceOptions = { settleMs: 20, pollMs: 50 };
/** "Until the file is rewritten": no test waits this long, so a held change cannot apply by itself. */
const FOREVER_MS = 10 * 60_000;

const HELD = 'config change would remove serving resources or shorten a file that serves; waiting for the files to settle before applying it';

const GATEWAY = gatewayYaml(8080);
const POOL_A = poolYaml('a', 'a', 8000);
const POOL_B = poolYaml('b', 'b', 8000);
const ROUTE = (pool: string): string => routeYaml('all', [{ pool, weight: 1 }]);
const FULL = GATEWAY + POOL_A + POOL_B + ROUTE('a');

/** Polls `probe` until it yields; `guard` runs first on every poll and throws to fail at once. */
async function until<T>(what: string, probe: () => T | undefined | false, guard: () => void = () => undefined): Promise<T> {
  const start = Date.now();
  for (;;) {
    guard();
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() - start > DEADLINE_MS) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Harness {
  readonly dir: string;
  readonly gateway: Gateway;
  readonly lines: LogRecord[];
  /** Every snapshot swapped in after the first. */
  readonly swapped: Snapshot[];
  /** Waits for the `n`th (1-based, counted from the start) log line with message `msg`. */
  log(msg: string, n?: number): Promise<LogRecord>;
  count(msg: string): number;
  /** Waits for `probe`; unless the test expects a removal, fails as soon as a snapshot lost a pool or the route. */
  until<T>(what: string, probe: () => T | undefined | false): Promise<T>;
}

/** A gateway reading `files` (name → YAML) from a temporary folder through a FileConfigSource. */
async function withGateway(files: Record<string, string>, options: FileSourceOptions & { expectRemoval?: boolean }, fn: (h: Harness) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-settle-'));
  let gateway: Gateway | undefined;
  try {
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    const { logger, lines } = memoryLogger();
    gateway = await Gateway.start({ sources: [new FileConfigSource([dir], { ...QUICK, ...options })], logger, scrapeIntervalMs: 0 });
    const swapped: Snapshot[] = [];
    gateway.afterSwap((s) => void swapped.push(s));
    const count = (msg: string): number => lines.filter((l) => l.msg === msg).length;
    const guard = options.expectRemoval === true ? undefined : () => neverLost(swapped);
    await fn({
      dir,
      gateway,
      lines,
      swapped,
      count,
      until: (what, probe) => until(what, probe, guard),
      log: (msg, n = 1) => until(`log line ${n} "${msg}"`, () => lines.filter((l) => l.msg === msg)[n - 1], guard),
    });
    guard?.();
  } finally {
    await gateway?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const pools = (s: Snapshot | undefined): string[] => [...(s?.pools.keys() ?? [])].sort();
const routed = (s: Snapshot | undefined): string[] =>
  (s?.listeners.get(8080)?.routes.rules() ?? []).flatMap((r) => r.backends.items.map((b) => (b.type === 'pool' ? b.pool.key : b.type)));

/** Every snapshot that served kept pools a and b, and the route kept a backend. */
function neverLost(swapped: readonly Snapshot[]): void {
  for (const s of swapped) {
    assert.ok(pools(s).includes('default/a') && pools(s).includes('default/b'), `snapshot ${s.version} lost a pool: it has ${pools(s).join(', ') || 'none'}`);
    assert.ok(routed(s).length > 0, `snapshot ${s.version} lost the route`);
  }
}

describe('FileConfigSource: a file caught mid-write never applies', () => {
  test('truncated to empty, then written: the empty file is held and the pools never leave', () =>
    withGateway({ 'config.yaml': FULL }, { removalSettleMs: FOREVER_MS }, async (h) => {
      const file = join(h.dir, 'config.yaml');
      // How many tools save: open with O_TRUNC now, write later.
      const fh = await open(file, 'w');
      const held = await h.log(HELD);
      assert.deepEqual(held['files'], [file]);
      assert.ok((held['removes'] as string[]).includes('InferencePool/default/a'));
      await fh.write(GATEWAY + POOL_A + POOL_B + ROUTE('b'));
      await fh.close();
      await h.until('the rewritten route serves', () => routed(h.gateway.runtime?.snapshot).includes('default/b'));
    }));

  test('written in two halves (a document boundary): the first half is held, the whole applies', () =>
    withGateway({ 'config.yaml': FULL }, { removalSettleMs: FOREVER_MS }, async (h) => {
      const file = join(h.dir, 'config.yaml');
      const whole = GATEWAY + POOL_A + POOL_B + ROUTE('b');
      const half = GATEWAY + POOL_A; // parses, but pool b and the route are gone
      await writeFile(file, half);
      await h.log(HELD);
      await writeFile(file, whole);
      await h.until('the whole file serves', () => routed(h.gateway.runtime?.snapshot).includes('default/b'));
    }));

  test('a document cut at a line boundary: refused with file and the field\'s line, the last good keeps serving', () =>
    withGateway({ 'config.yaml': FULL }, { removalSettleMs: FOREVER_MS }, async (h) => {
      const file = join(h.dir, 'config.yaml');
      const version = h.gateway.runtime?.snapshot.version;
      // The second pool cut after its selector: it parses as YAML, but is not a whole InferencePool.
      const cut = GATEWAY + POOL_A + POOL_B.slice(0, POOL_B.indexOf('  targetPortNumber'));
      await writeFile(file, cut);
      const error = await h.log('config error');
      assert.match(String(error['problem']), /^InferencePool\/b: spec/);
      const source = error['source'] as { file: string; line: number };
      assert.equal(source.file, file);
      // The field's own line when it is in the file; for a required field that is missing, the
      // line of the field that should hold it (here `spec:`), never just the document's first line.
      assert.equal(cut.split('\n')[source.line - 1], 'spec:', 'the line of the field the problem is in');
      assert.equal(h.gateway.runtime?.snapshot.version, version, 'nothing applied');
      await writeFile(file, GATEWAY + POOL_A + POOL_B + ROUTE('b'));
      await h.until('the whole file serves', () => routed(h.gateway.runtime?.snapshot).includes('default/b'));
    }));

  test('cut inside a resource (a route losing its last backendRef): nothing is removed, the shorter file is held all the same', () => {
    const split = GATEWAY + POOL_A + POOL_B + routeYaml('all', [{ pool: 'a', weight: 90 }, { pool: 'b', weight: 10 }]);
    return withGateway({ 'config.yaml': split }, { removalSettleMs: FOREVER_MS }, async (h) => {
      const file = join(h.dir, 'config.yaml');
      const cut = split.slice(0, split.lastIndexOf('    - {group'));
      assert.ok(cut.length < split.length && routed(h.gateway.runtime?.snapshot).includes('default/b'));
      await writeFile(file, cut);
      const held = await h.log(HELD);
      assert.deepEqual(held['removes'], [], 'every resource is still there');
      await writeFile(file, split.replace('weight: 10', 'weight: 20'));
      await h.until('the whole file serves', () => h.swapped.length > 0);
      for (const s of h.swapped) assert.deepEqual(routed(s).sort(), ['default/a', 'default/b'], `snapshot ${s.version} served the cut route`);
    });
  });

  test('deleted and created again in a folder: held while gone; an editor rename-save applies at once', () =>
    withGateway({ 'config.yaml': FULL }, { removalSettleMs: FOREVER_MS }, async (h) => {
      const file = join(h.dir, 'config.yaml');
      await unlink(file);
      await h.log(HELD);
      await writeFile(file, GATEWAY + POOL_A + POOL_B + ROUTE('b'));
      await h.until('the re-created file serves', () => routed(h.gateway.runtime?.snapshot).includes('default/b'));
      const tmp = join(h.dir, '.config.yaml.swp');
      await writeFile(tmp, FULL);
      await rename(tmp, file);
      await h.until('the renamed-over file serves', () => routed(h.gateway.runtime?.snapshot).includes('default/a') && !routed(h.gateway.runtime?.snapshot).includes('default/b'));
      assert.equal(h.count(HELD), 1, 'a rename-save removes nothing and is not held');
    }));

  test('a folder: one file mid-write while another changes; both apply together once the first is whole', () =>
    withGateway({ 'pools.yaml': POOL_A + POOL_B, 'routes.yaml': GATEWAY + ROUTE('a') }, { removalSettleMs: FOREVER_MS }, async (h) => {
      await truncate(join(h.dir, 'pools.yaml'), 0);
      await writeFile(join(h.dir, 'routes.yaml'), GATEWAY + ROUTE('b'));
      const held = await h.until('the hold naming pools.yaml alone', () => h.lines.find((l) => l.msg === HELD && JSON.stringify(l['files']) === JSON.stringify([join(h.dir, 'pools.yaml')])));
      assert.deepEqual(held['removes'], ['InferencePool/default/a', 'InferencePool/default/b']);
      assert.deepEqual(routed(h.gateway.runtime?.snapshot), ['default/a'], 'the other file waits for the whole set');
      await writeFile(join(h.dir, 'pools.yaml'), POOL_A + POOL_B);
      await h.until('the route change serves', () => routed(h.gateway.runtime?.snapshot).includes('default/b'));
    }));

  test('an empty file that stays empty is a real removal: applied once the settle window passed', () =>
    withGateway({ 'pools.yaml': POOL_A + POOL_B, 'routes.yaml': GATEWAY + ROUTE('a') }, { removalSettleMs: 300, expectRemoval: true }, async (h) => {
      await truncate(join(h.dir, 'pools.yaml'), 0);
      await h.log(HELD);
      await h.log('config change settled; applying it');
      await h.until('the pools are gone', () => pools(h.gateway.runtime?.snapshot).length === 0);
      const held = h.lines.findIndex((l) => l.msg === HELD);
      const reloaded = h.lines.findIndex((l, i) => i > held && l.msg === 'config reloaded');
      assert.ok(held >= 0 && reloaded > held, 'held first, applied after');
      assert.ok(h.swapped.every((s, i) => i === h.swapped.length - 1 || pools(s).length === 2), 'only the last swap removed the pools');
    }));

  test('a change that removes nothing applies without being held', () =>
    withGateway({ 'config.yaml': FULL }, { removalSettleMs: FOREVER_MS }, async (h) => {
      await writeFile(join(h.dir, 'config.yaml'), GATEWAY + POOL_A + POOL_B + ROUTE('b') + poolYaml('c', 'c', 8000));
      await h.until('pool c serves', () => pools(h.gateway.runtime?.snapshot).includes('default/c'));
      assert.equal(h.count(HELD), 0);
    }));
});

describe('file-level errors name the file', { timeout: 60_000 }, () => {
  /** Aliases of aliases: 9^9 nodes once expanded. */
  const BOMB = `${['a0: &a0 [x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 9 }, (_, i) => `a${i + 1}: &a${i + 1} [${Array.from({ length: 9 }, () => `*a${i}`).join(', ')}]`)].join('\n')}\n`;

  test('on reload: an alias bomb added to a folder is refused naming the file, document and line, not the folder', () =>
    withGateway({ 'config.yaml': FULL }, {}, async (h) => {
      const version = h.gateway.runtime?.snapshot.version;
      const bomb = join(h.dir, 'zz-bomb.yaml');
      await writeFile(bomb, BOMB);
      const error = await h.log('config error');
      assert.equal(String(error['problem']).startsWith(`${bomb} (document 1): a3[1]: `), true, String(error['problem']));
      assert.match(String(error['problem']), /alias/);
      assert.deepEqual(error['source'], { file: bomb, index: 0, line: 4 });
      assert.equal(h.gateway.runtime?.snapshot.version, version, 'nothing applied');
    }));

  test('on reload: YAML refused inside a resource names the resource, the field and its line; the last good config keeps serving', () =>
    withGateway({ 'config.yaml': FULL }, {}, async (h) => {
      const version = h.gateway.runtime?.snapshot.version;
      const file = join(h.dir, 'config.yaml');
      // Pool b's spec gets each refusal in turn, nested where a schema error would be reported.
      const bombAt = (extra: string): string => GATEWAY + POOL_A + POOL_B.replace('  selector: {app: sim, release: b}\n', `  selector: {app: sim, release: b}\n${extra}`) + ROUTE('a');
      const lineOf = (text: string, needle: string): number => text.slice(0, text.indexOf(needle)).split('\n').length;
      const cases: { extra: string; path: RegExp; needle: string; message: RegExp }[] = [
        { extra: `  x:\n${BOMB.split('\n').filter((l) => l !== '').map((l) => `    ${l}`).join('\n')}\n`, path: /^spec\.x\.a3\[1\]$/, needle: '    a3:', message: /alias/ },
        { extra: `  x: ${'['.repeat(5000)}${']'.repeat(5000)}\n`, path: /^spec\.x\[0\]/, needle: '  x: [', message: /nested more than 128 levels/ },
        { extra: '  selector: {app: other}\n', path: /^spec\.selector$/, needle: '  selector: {app: other}', message: /duplicate key/ },
        { extra: '  x: !!binary aGVsbG8=\n', path: /^spec\.x$/, needle: '  x: !!binary', message: /tag !!binary is refused/ },
      ];
      let seen = 0;
      for (const c of cases) {
        const text = bombAt(c.extra);
        await writeFile(file, text);
        const error = await h.until(`the refusal of ${String(c.message)}`, () => h.lines.filter((l) => l.msg === 'config error').slice(seen).find((l) => c.message.test(String(l['problem']))));
        seen = h.lines.filter((l) => l.msg === 'config error').length;
        const problem = String(error['problem']);
        assert.ok(problem.startsWith('InferencePool/b: '), problem);
        assert.match(problem.split(': ')[1] ?? '', c.path, problem);
        const source = error['source'] as { file: string; index: number; line: number };
        assert.deepEqual({ file: source.file, index: source.index, line: source.line }, { file, index: 2, line: lineOf(text, c.needle) }, problem);
        assert.equal(h.gateway.runtime?.snapshot.version, version, 'the last good config keeps serving');
        assert.deepEqual(pools(h.gateway.runtime?.snapshot), ['default/a', 'default/b']);
      }
    }));

  test('at start: the refusal names the file and the line, whatever the folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'infergate-start-'));
    try {
      await writeFile(join(dir, 'config.yaml'), FULL);
      await writeFile(join(dir, 'bomb.yaml'), BOMB);
      await writeFile(join(dir, 'typo.yaml'), 'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata:\n  name: p\nspec:\n  targetPortNumber: 8000\n  selector:\n    app: x\n  extensionRef:\n    name: e\n  wieght: 3\n');
      const { logger } = memoryLogger();
      await assert.rejects(Gateway.start({ sources: [new FileConfigSource([dir], { ...QUICK, watch: false })], logger, scrapeIntervalMs: 0 }), (e: unknown) => {
        const message = e instanceof Error ? e.message : '';
        assert.ok(message.includes(`${join(dir, 'bomb.yaml')} (document 1): a3[1]: `), message);
        assert.ok(message.includes(`InferencePool/p: spec.wieght: unknown field (${join(dir, 'typo.yaml')}, line 11)`), message);
        assert.ok(!message.includes('files: '), message);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
