#!/usr/bin/env node
// `npm ci`'s build of dist/ (the package.json `prepare` script), skipped when dist/ is already
// newer than every source. Why not always `rm -rf dist && tsc`: npm runs `prepare` again whenever
// `npx infergate …` installs this folder as a package (npm 7+ does that for the project's own
// bin), and wiping dist/ under a running gateway made its replaced workers fail to start for the
// minute the compiler takes. Here a stale dist/ is compiled over in place; `npm run build` still
// starts from an empty dist/.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const ENTRY = join(root, 'dist', 'src', 'cli', 'main.js');

/** The newest modification time (ms) of the .ts files under `dir`, and of tsconfig/package files. */
function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestSource(full));
    else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

function builtAt() {
  try {
    return statSync(ENTRY).mtimeMs;
  } catch {
    return undefined;
  }
}

// CI's `npm ci` is followed by `npm test`, which compiles dist/ afresh: compiling it here too only
// costs the run a minute (.ci/run sets this).
if (process.env['INFERGATE_SKIP_PREPARE'] === '1') {
  process.stderr.write('infergate: INFERGATE_SKIP_PREPARE=1: dist/ not compiled (npm test compiles it)\n');
  process.exit(0);
}

const built = builtAt();
const sources = Math.max(...['src', 'test', 'bench'].map((d) => newestSource(join(root, d))), statSync(join(root, 'tsconfig.json')).mtimeMs, statSync(join(root, 'package-lock.json')).mtimeMs);
if (built !== undefined && built >= sources) {
  process.stderr.write('infergate: dist/ is up to date\n');
} else {
  process.stderr.write(`infergate: compiling TypeScript to dist/ (about a minute on 2 cores)${built === undefined ? '' : ', over the stale build'}…\n`);
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
  if (tsc.status !== 0) process.exit(tsc.status ?? 1);
}
