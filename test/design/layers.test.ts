import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

/**
 * DESIGN.md §2's dependency order as data: what each top-level folder of src/ may import.
 * `cli` → `proxy`/`extproc`/`sidecar` → `upstream` → `gateway` → `scheduling`/`flowcontrol`/`prefix` → `endpoints` →
 * `config` → `api` → `core`; `sim` and `bench` are programs beside the gateway.
 */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  core: [],
  api: ['core'],
  config: ['api', 'core'],
  endpoints: ['config', 'api', 'core'],
  prefix: ['core'],
  flowcontrol: ['endpoints', 'config', 'api', 'core'],
  scheduling: ['prefix', 'kvevents', 'endpoints', 'config', 'api', 'core'],
  observability: ['prefix', 'core'],
  gateway: ['scheduling', 'flowcontrol', 'prefix', 'kvevents', 'tokens', 'endpoints', 'config', 'api', 'core', 'observability'],
  // The HTTP client side towards model servers (undici attempts, answer decoding, timeouts, PD
  // legs), shared by the data planes that send to model servers; sees the core only through gateway/index.ts.
  upstream: ['gateway', 'core'],
  // Data planes carry bytes: they see the core only through gateway/index.ts, and none imports another.
  proxy: ['upstream', 'gateway', 'core', 'observability'],
  extproc: ['gateway', 'core', 'observability'],
  sidecar: ['upstream', 'gateway', 'core', 'observability'],
  // Request token ids as a model server computes them (tokenizer files, chat template, worker).
  tokens: [],
  // vLLM KV events: the wire format, the block index and subscribers; pure data over core.
  kvevents: ['core'],
  // `serve --workers N`: the primary (fork, admin port, log lines, relays) and each worker's link to it.
  workers: ['proxy', 'gateway', 'observability', 'core'],
  sim: ['core', 'cli', 'tokens', 'kvevents'],
  bench: ['core'],
  cli: ['*'],
};

/** Layers that reach the core only through its door, gateway/index.ts. */
const THROUGH_INDEX: ReadonlySet<string> = new Set(['proxy', 'extproc', 'sidecar', 'upstream', 'workers']);

async function* tsFiles(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* tsFiles(path);
    else if (entry.name.endsWith('.ts')) yield path;
  }
}

test('every import follows the layer order of DESIGN.md; data planes reach the core only through gateway/index.ts', async () => {
  const violations: string[] = [];
  for await (const file of tsFiles(SRC)) {
    const rel = relative(SRC, file);
    const layer = rel.split('/')[0] as string;
    const allowed = ALLOWED[layer];
    assert.ok(allowed !== undefined, `src/${layer} is not in the layer table of this test (and DESIGN.md)`);
    const text = await readFile(file, 'utf8');
    for (const m of text.matchAll(/from '(\.[^']+)'/g)) {
      const target = relative(SRC, join(file, '..', m[1] as string));
      const to = target.split('/')[0] as string;
      if (to === layer || allowed.includes('*')) continue;
      if (!allowed.includes(to)) violations.push(`src/${rel} imports src/${target}`);
      else if (THROUGH_INDEX.has(layer) && to === 'gateway' && target !== 'gateway/index.js') violations.push(`src/${rel} imports src/${target} (data planes use gateway/index.ts)`);
    }
  }
  assert.deepEqual(violations, []);
});
