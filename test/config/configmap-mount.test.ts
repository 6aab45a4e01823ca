import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadFiles } from '../../src/api/load.js';
import { watchPaths } from '../../src/config/file-watch.js';

/** Generous: a loaded CI machine may take long to deliver an event or run a poll. */
const DEADLINE_MS = 15_000;

const pool = (name: string): string => `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}}
spec:
  selector: {matchLabels: {app: ${name}}}
  targetPorts: [{number: 8000}]
  endpointPickerRef: {name: epp, port: {number: 9002}}
`;

/**
 * How the kubelet mounts a ConfigMap: the data lives in a timestamped hidden folder, `..data`
 * links to it, and each key is a link `key -> ..data/key`. An update writes a new timestamped
 * folder and swaps `..data` by rename; the key links never change.
 */
async function configMapMount(dir: string, files: Record<string, string>, generation: number): Promise<void> {
  const data = join(dir, `..2026_12_07_00_00_0${generation}.000000000`);
  await mkdir(data);
  for (const [name, text] of Object.entries(files)) await writeFile(join(data, name), text);
  const tmp = join(dir, '..data_tmp');
  await symlink(data.slice(dir.length + 1), tmp);
  await rename(tmp, join(dir, '..data'));
  for (const name of Object.keys(files)) await symlink(join('..data', name), join(dir, name)).catch(() => undefined);
}

test('a folder mounted from a ConfigMap (keys are links through ..data) loads each key once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-cm-'));
  try {
    await configMapMount(dir, { 'pool.yaml': pool('a'), 'more.yml': pool('b'), 'notes.txt': 'not config' }, 1);
    // A link to a folder is walked too; a link back up the tree does not loop; a dangling link of
    // another name than a config file's is nothing (config-links.test.ts has the config names).
    const extra = await mkdtemp(join(tmpdir(), 'infergate-cm-extra-'));
    await writeFile(join(extra, 'c.yaml'), pool('c'));
    await symlink(extra, join(dir, 'linked'));
    await symlink(dir, join(extra, 'loop'));
    await symlink(join(dir, 'gone.txt'), join(dir, 'dangling.txt'));
    const loaded = await loadFiles([dir]);
    const names = loaded.resources.map((r) => r.metadata.name).sort();
    assert.deepEqual(names, ['a', 'b', 'c'], 'each pool once: ..data is not read beside its links, the loop is walked once');
    assert.deepEqual(loaded.problems.filter((p) => p.severity === 'error'), []);
    await rm(extra, { recursive: true, force: true });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a ConfigMap update (..data swapped by rename) reloads the folder', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-cm-'));
  let calls = 0;
  const stop = await watchPaths([dir], () => calls++, 20, { pollMs: 200 });
  try {
    await configMapMount(dir, { 'pool.yaml': pool('a') }, 1);
    const waitFor = async (n: number, what: string): Promise<void> => {
      const start = Date.now();
      while (calls < n) {
        if (Date.now() - start > DEADLINE_MS) throw new Error(`no reload after ${what}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    await waitFor(1, 'the first mount');
    const before = calls;
    await configMapMount(dir, { 'pool.yaml': pool('a2') }, 2);
    await waitFor(before + 1, 'the ..data swap');
    const loaded = await loadFiles([dir]);
    assert.deepEqual(loaded.resources.map((r) => r.metadata.name), ['a2']);
  } finally {
    stop();
    await rm(dir, { recursive: true, force: true });
  }
});
