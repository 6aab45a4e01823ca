import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { validatePaths } from '../../src/cli/validate-command.js';

test('validate: an alias bomb, a syntax error and a bad field each name their file and line, then the N error(s) line', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-validate-'));
  try {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 9 }, () => `*a${i - 1}`).join(', ')}]`);
    await writeFile(join(dir, 'bomb.yaml'), `${lines.join('\n')}\n`);
    await writeFile(join(dir, 'syntax.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: [a\n');
    await writeFile(join(dir, 'typo.yaml'), 'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata:\n  name: p\nspec:\n  targetPortNumber: 8000\n  selector:\n    app: x\n  extensionRef:\n    name: e\n  wieght: 3\n');
    const stdout: string[] = [];
    const stderr: string[] = [];
    const code = await validatePaths([dir], { stdout: (l) => stdout.push(l), stderr: (l) => stderr.push(l) });
    assert.equal(code, 1);
    const bomb = stderr.find((l) => l.startsWith(`${join(dir, 'bomb.yaml')} (document 1): a3[1]: `));
    assert.ok(bomb !== undefined && /alias/.test(bomb) && bomb.endsWith('(line 4)'), stderr.join('\n'));
    // The field the parser stopped in (the unclosed list under metadata.name).
    const syntax = stderr.filter((l) => l.startsWith(`${join(dir, 'syntax.yaml')} (document 1): metadata.name`) && l.includes(': YAML syntax error: '));
    assert.ok(syntax.length > 0, stderr.join('\n'));
    for (const l of syntax) {
      assert.equal(l.match(/line \d+/g)?.length, 1, `the position once: ${l}`);
      assert.match(l, /[^:] \(line \d+, column \d+\)$/, `no dangling colon: ${l}`);
    }
    assert.ok(stderr.includes(`InferencePool/p: spec.wieght: unknown field (${join(dir, 'typo.yaml')}, line 11)`), stderr.join('\n'));
    assert.equal(stderr.at(-1), `${stderr.length - 1} error(s): serve would refuse this configuration`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('validate: the N error(s) line counts the YAML syntax errors not shown, not one per summary line', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-validate-'));
  try {
    // Seed 001's two InferencePools (SGLang, TensorRT-LLM) pasted with their indentation lost:
    // more errors than are shown one by one.
    const pool = (runtime: string, name: string, ext: string, app: string, port: number): string[] => ['apiVersion: inference.networking.x-k8s.io/v1alpha2', 'kind: InferencePool', 'metadata:', 'annotations:', `inference.networking.x-k8s.io/model-server-runtime: ${runtime}`, `name: ${name}`, 'spec:', 'extensionRef:', 'group: ""', 'kind: Service', `name: ${ext}`, 'selector:', `app: ${app}`, `targetPortNumber: ${port}`];
    const flat = [...pool('sglang', 'deepseek-sglang-pool', 'deepseek-sglang-ext-proc', 'deepseek-r1-sglang', 30000), ...pool('trt-llm', 'qwen-trt-pool', 'trt-llm-ext-proc', 'qwen-trt-llm', 8000)];
    await writeFile(join(dir, 'flat.yaml'), `${flat.join('\n')}\n`);
    const stderr: string[] = [];
    const code = await validatePaths([dir], { stdout: () => undefined, stderr: (l) => stderr.push(l) });
    assert.equal(code, 1);
    const more = stderr.map((l) => /(\d+) more YAML syntax error\(s\) not shown/.exec(l)).find((m) => m !== null);
    assert.ok(more, stderr.join('\n'));
    const shown = stderr.filter((l) => l.includes(': YAML syntax error: ') || l.includes('duplicate key')).length;
    assert.equal(stderr.at(-1), `${shown + Number(more[1])} error(s): serve would refuse this configuration`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
