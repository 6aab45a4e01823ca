import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadFiles, parseDocuments } from '../../src/api/load.js';
import { formatProblemAt, type Problem } from '../../src/api/types.js';

// Every YAML-level refusal, at any depth, names the file, the document (index, and Kind/name when
// the text says them), the line and the field path where it occurs; the other documents of the
// file are still read and reported.

const FIRST = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\ndata: {a: b}\n';

/** Document 2 of a file: an InferencePool with `extra` lines added under `spec:` (2-space indented). */
function pool(extra: string): string {
  return `${FIRST}---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: pool
spec:
  selector:
    matchLabels: {app: m}
${extra}  targetPorts: [{number: 8000}]
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: later}
spec: {selector: {matchLabels: {app: m}}, targetPorts: [{number: 8000}], wieght: 1}
`;
}

function lineOf(text: string, needle: string): number {
  const at = text.indexOf(needle);
  assert.ok(at >= 0, needle);
  return text.slice(0, at).split('\n').length;
}

function theOne(problems: readonly Problem[], message: RegExp): Problem {
  const mine = problems.filter((p) => message.test(p.message));
  assert.equal(mine.length, 1, problems.map(formatProblemAt).join('\n'));
  return mine[0] as Problem;
}

const bomb = (indent: string): string => {
  const lines = [`${indent}a0: &a0 [x, x, x, x, x, x, x, x, x]`];
  for (let i = 1; i < 10; i++) lines.push(`${indent}a${i}: &a${i} [${Array.from({ length: 9 }, () => `*a${i - 1}`).join(', ')}]`);
  return `${lines.join('\n')}\n`;
};

const CASES: { name: string; extra: string; message: RegExp; path: string | RegExp; needle: string }[] = [
  { name: 'an alias bomb', extra: `  bomb:\n${bomb('    ')}`, message: /aliases \(\*a2\) expand to more than 100 nodes/, path: 'spec.bomb.a3[1]', needle: '    a3:' },
  { name: 'flow nesting too deep', extra: `  deep: ${'['.repeat(50_000)}${']'.repeat(50_000)}\n`, message: /nested more than 128 levels/, path: /^spec\.deep\[0\]\[0\].*…$/, needle: '  deep:' },
  { name: 'compact list nesting too deep (100,000 `- ` used to kill the process)', extra: `  deep:\n  - ${'- '.repeat(100_000)}x\n`, message: /nested more than 128 levels/, path: /^spec\.deep\[0\]\[0\]/, needle: '  - - - ' },
  {
    name: 'block mapping nesting too deep',
    extra: `  deep:\n${Array.from({ length: 200 }, (_, i) => `${' '.repeat(4 + 2 * i)}k:`).join('\n')} v\n`,
    message: /nested more than 128 levels/,
    path: /^spec\.deep\.k\.k\.k/,
    // Level 129 (the document's mapping, spec, deep, then k after k).
    needle: `${' '.repeat(4 + 2 * 126)}k:`,
  },
  { name: 'a duplicate key, nested', extra: '  selector:\n    matchLabels: {app: n}\n', message: /duplicate key/, path: 'spec.selector', needle: '  selector:\n    matchLabels: {app: n}' },
  { name: 'a duplicate key in a flow mapping', extra: '  x: {a: 1, a: 2}\n', message: /duplicate key/, path: 'spec.x.a', needle: '  x: {a: 1' },
  { name: 'an oversized scalar', extra: `  big: "${'x'.repeat(1024 * 1024 + 10)}"\n`, message: /a value of \d+ characters is refused/, path: 'spec.big', needle: '  big:' },
  { name: 'an oversized key', extra: `  ? ${'k'.repeat(5000)}\n  : v\n`, message: /a key of 5000 characters is refused/, path: /^spec\["k+…"\]$/, needle: '  ? kkk' },
  { name: 'a binary tag', extra: '  x: !!binary aGVsbG8=\n', message: /tag !!binary is refused/, path: 'spec.x', needle: '  x: !!binary' },
  { name: 'an application tag in a flow mapping', extra: '  x: {a: !Ref b}\n', message: /tag !Ref is refused/, path: 'spec.x.a', needle: '  x: {a: !Ref' },
  { name: 'a set', extra: '  x: !!set {a, b}\n', message: /tag !!set is refused/, path: 'spec.x', needle: '  x: !!set' },
];

for (const c of CASES) {
  test(`YAML refusal inside a resource, ${c.name}: Kind/name, field path and line; the later document is still checked`, () => {
    const text = pool(c.extra);
    const r = parseDocuments(text, 'cfg.yaml');
    const p = theOne(r.problems, c.message);
    assert.equal(p.subject, 'InferencePool/pool', formatProblemAt(p));
    if (typeof c.path === 'string') assert.equal(p.path, c.path);
    else assert.match(p.path, c.path);
    assert.equal(p.source?.file, 'cfg.yaml');
    assert.equal(p.source?.index, 1, 'the second document');
    assert.equal(p.source?.line, lineOf(text, c.needle), formatProblemAt(p));
    assert.match(formatProblemAt(p), /^InferencePool\/pool: spec\S*: .* \(cfg\.yaml, line \d+(, column \d+)?\)$/);
    // The document after it keeps its index and line, and its own problem is reported.
    const later = r.problems.find((q) => q.subject === 'InferencePool/later');
    assert.ok(later !== undefined, r.problems.map(formatProblemAt).join('\n'));
    assert.equal(later.source?.index, 2);
    assert.equal(later.path, 'spec.wieght');
    assert.equal(later.source?.line, lineOf(text, 'wieght'));
    assert.deepEqual(r.ignored.map((x) => x.name), ['first'], 'the document before it is read as usual');
  });
}

test('a byte that is not UTF-8 inside a resource names the file, the document and the field', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-yaml-'));
  try {
    const file = join(dir, 'cfg.yaml');
    const text = pool('  x: caf\u0000\n');
    const bytes = Buffer.from(text);
    bytes[bytes.indexOf(0)] = 0xe9; // Latin-1 é
    await writeFile(file, bytes);
    const r = await loadFiles([file]);
    const p = theOne(r.problems, /not UTF-8/);
    assert.equal(p.subject, 'InferencePool/pool');
    assert.equal(p.path, 'spec.x');
    assert.equal(p.source?.index, 1);
    assert.equal(p.source?.line, lineOf(text, '  x: caf'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('ordinary YAML is not refused: anchors used a few times, long block scalars, deep-ish real nesting, quotes and brackets in values', () => {
  const text = `${FIRST}---
apiVersion: v1
kind: ConfigMap
metadata:
  name: fine
  annotations:
    a: "[not a list"
    b: 'it''s [fine'
    c: plain [text] with {braces}
data:
  script: |
    for i in [1 2 3]; do
      echo {{ $i }} [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
    done
  nested: '${JSON.stringify({ a: { b: { c: [[[[1]]]] } } })}'
  list: &l [1, 2, 3]
---
apiVersion: v1
kind: List
items:
- &pod {apiVersion: v1, kind: Pod, metadata: {name: p1, labels: {app: x}}, status: {podIP: 127.0.0.2}}
`;
  const r = parseDocuments(text, 'cfg.yaml');
  assert.deepEqual(r.problems.map(formatProblemAt), []);
  assert.deepEqual(r.resources.map((x) => x.metadata.name), ['p1']);
});

test('YAML inside the routing annotation is held to the same limits: deep nesting, aliases, tags', () => {
  for (const [value, message] of [
    [`streamUsage:\n${'- '.repeat(100_000)}x`, /nested more than 128 levels/],
    [`a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b, *b]`, /aliases \(\*b\) expand/],
    ['streamUsage: !!binary aGVsbG8=', /tag !!binary is refused/],
  ] as const) {
    const text = `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: pool
  annotations:
    infergate.dev/routing: ${JSON.stringify(value)}
spec: {selector: {matchLabels: {app: m}}, targetPorts: [{number: 8000}]}
`;
    const r = parseDocuments(text, 'cfg.yaml');
    const p = theOne(r.problems, message);
    assert.equal(p.subject, 'InferencePool/pool');
    assert.equal(p.path, 'metadata.annotations["infergate.dev/routing"]');
    assert.equal(p.source?.line, 6);
  }
});
