import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatProblemAt, loadFiles, type Problem } from '../../src/api/index.js';
import { MAX_CONFIG_FILE_BYTES } from '../../src/api/load.js';

/** Nested aliases: each level repeats the one before nine times (9^9 nodes expanded). */
function aliasBomb(): string {
  const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 9 }, () => `*a${i - 1}`).join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

const POD = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: ok\nstatus:\n  podIP: 127.0.0.2\n';

async function withDir(files: Record<string, string | Buffer>, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-load-'));
  try {
    for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function only(problems: readonly Problem[], file: string): Problem {
  const mine = problems.filter((p) => p.severity === 'error' && (p.source?.file === file || p.subject.startsWith(file)));
  assert.equal(mine.length, 1, JSON.stringify(problems, null, 2));
  return mine[0] as Problem;
}

test('file-level errors are problems naming the file (and document and line), never a throw; the other files still load', async () => {
  const big = Buffer.alloc(MAX_CONFIG_FILE_BYTES + 1, 0x20);
  await withDir(
    {
      'a-bomb.yaml': aliasBomb(),
      'b-syntax.yaml': `${POD}---\napiVersion: v1\nkind: Pod\nmetadata: {name: x\n`,
      'c-scalar.yaml': `${POD.replace('name: ok', 'name: ok2')}---\njust a string\n`,
      'd-latin1.yaml': Buffer.concat([Buffer.from('apiVersion: v1\nkind: Pod\nmetadata:\n  name: caf'), Buffer.from([0xe9]), Buffer.from('\n')]),
      'e-utf16.yaml': Buffer.from(`\ufeff${POD}`, 'utf16le'),
      'f-big.yaml': big,
      'g-good.yaml': POD.replace('name: ok', 'name: good'),
    },
    async (dir) => {
      await symlink('loop.yaml', join(dir, 'loop.yaml'));
      const f = (name: string): string => join(dir, name);
      const loaded = await loadFiles([dir, f('loop.yaml')]);
      assert.deepEqual(loaded.resources.map((r) => r.metadata.name).sort(), ['good', 'ok', 'ok2']);

      const bomb = only(loaded.problems, f('a-bomb.yaml'));
      assert.equal(bomb.subject, `${f('a-bomb.yaml')} (document 1)`);
      assert.match(bomb.message, /alias/);
      // Where the expansion goes past the bound: the alias's field and line, not the document's top.
      assert.equal(formatProblemAt(bomb), `${f('a-bomb.yaml')} (document 1): a3[1]: ${bomb.message} (line 4)`);

      const syntax = only(loaded.problems, f('b-syntax.yaml'));
      assert.equal(syntax.subject, 'Pod/x', 'the resource the text names');
      assert.equal(syntax.source?.index, 1);
      assert.equal(syntax.source?.line, 11, 'where the parser found the flow map unclosed');

      const scalar = only(loaded.problems, f('c-scalar.yaml'));
      assert.equal(scalar.subject, `${f('c-scalar.yaml')} (document 2)`);
      assert.match(formatProblemAt(scalar), /must be a mapping .*, not a string \(line 8\)$/);

      const latin1 = only(loaded.problems, f('d-latin1.yaml'));
      assert.equal(latin1.subject, `${f('d-latin1.yaml')} (document 1)`);
      assert.equal(latin1.path, 'metadata.name', 'the field the byte is in');
      assert.match(latin1.message, /not UTF-8 text: byte 0xe9/);
      assert.equal(latin1.source?.line, 4);

      const utf16 = only(loaded.problems, f('e-utf16.yaml'));
      assert.match(utf16.message, /UTF-16/);

      const tooBig = only(loaded.problems, f('f-big.yaml'));
      assert.match(tooBig.message, new RegExp(`is ${MAX_CONFIG_FILE_BYTES + 1} bytes, more than the ${MAX_CONFIG_FILE_BYTES}`));

      const unreadable = only(loaded.problems, f('loop.yaml'));
      assert.match(formatProblemAt(unreadable), new RegExp(`^${f('loop.yaml').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: -: is a symbolic link to "loop.yaml", which loops back on itself`));
    },
  );
});

test('a problem in a resource is located at its field\'s line, in a List item too; a missing field at its enclosing field', async () => {
  const pool = [
    'apiVersion: inference.networking.x-k8s.io/v1alpha2', // 1
    'kind: InferencePool', // 2
    'metadata:', // 3
    '  name: p', // 4
    '  annotations:', // 5
    '    inference.networking.x-k8s.io/routing-strategie: PREFIX_CACHE', // 6
    'spec:', // 7
    '  targetPortNumber: 8000', // 8
    '  selector:', // 9
    '    app: x', // 10
    '  extensionRef:', // 11
    '    name: e', // 12
    '  wieght: 3', // 13
    '---', // 14
    'apiVersion: v1', // 15
    'kind: List', // 16
    'items:', // 17
    '- apiVersion: v1', // 18
    '  kind: Pod', // 19
    '  metadata:', // 20
    '    name: a', // 21
    '- apiVersion: v1', // 22
    '  kind: Pod', // 23
    '  metadata:', // 24
    '    name: Bad_Name', // 25
    '---', // 26
    'apiVersion: inference.networking.x-k8s.io/v1alpha2', // 27
    'kind: InferenceModel', // 28
    'metadata:', // 29
    '  name: m', // 30
    'spec:', // 31
    '  modelName: m', // 32
  ].join('\n');
  await withDir({ 'c.yaml': `${pool}\n` }, async (dir) => {
    const file = join(dir, 'c.yaml');
    const loaded = await loadFiles([file]);
    const at = (path: string): number | undefined => loaded.problems.find((p) => p.path === path)?.source?.line;
    assert.equal(at('spec.wieght'), 13);
    assert.equal(at('metadata.annotations["inference.networking.x-k8s.io/routing-strategie"]'), 6);
    assert.equal(at('metadata.name'), 25, 'the second List item\'s name');
    assert.equal(at('spec.poolRef'), 31, 'a required field that is missing: its enclosing field');
    const wieght = loaded.problems.find((p) => p.path === 'spec.wieght') as Problem;
    assert.equal(formatProblemAt(wieght), `InferencePool/p: spec.wieght: unknown field (${file}, line 13)`);
  });
});
