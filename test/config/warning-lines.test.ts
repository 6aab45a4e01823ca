import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseDocuments } from '../../src/api/index.js';
import { formatProblem, formatProblemAt, type Problem } from '../../src/api/types.js';
import { validatePaths } from '../../src/cli/validate-command.js';
import { compileSnapshot } from '../../src/config/compile.js';

// A warning (configuration that loads but is suspicious) says where as an error does: the line of
// the field it is about, not the first line of its document.

const YAML = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: x
  listeners:
  - {name: a, protocol: HTTP, port: 8080}
  - name: tls
    port: 8443
    protocol: HTTPS
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: pool}
spec:
  selector: {app: m}
  targetPortNumber: 8000
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs:
  - {name: gw, sectionName: a}
  - name: missing-gw
  rules:
  - filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: pool}}
    backendRefs:
    - {group: inference.networking.x-k8s.io, kind: InferencePool, name: pool, weight: 1}
    - group: inference.networking.x-k8s.io
      kind: InferencePool
      name: nope
      weight: 1
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: m}
spec:
  modelName: m
  criticality: Standard
  poolRef:
    name: ghost
`;

function lineOf(needle: string): number {
  const at = YAML.indexOf(needle);
  assert.ok(at >= 0, needle);
  return YAML.slice(0, at).split('\n').length;
}

function warningAbout(warnings: readonly Problem[], text: string): Problem {
  const w = warnings.find((p) => formatProblem(p).includes(text));
  assert.ok(w !== undefined, warnings.map(formatProblem).join('\n'));
  return w;
}

test('compile warnings carry the line of their field, in the file and document they came from', () => {
  const loaded = parseDocuments(YAML, 'cfg.yaml');
  assert.deepEqual(loaded.problems.map(formatProblem), []);
  const { warnings } = compileSnapshot(loaded.resources, 1);
  const cases: [string, string, number][] = [
    ['Gateway/gw: spec.listeners[1].protocol', '    protocol: HTTPS', 0],
    ['HTTPRoute/r: spec.parentRefs[1].name', '  - name: missing-gw', 2],
    ['HTTPRoute/r: spec.rules[0].filters[0].type', '    - type: RequestMirror', 2],
    ['HTTPRoute/r: spec.rules[0].backendRefs[1].name', '      name: nope', 2],
    ['InferenceModel/m: spec.poolRef.name', '    name: ghost', 3],
  ];
  for (const [about, needle, index] of cases) {
    const w = warningAbout(warnings, about);
    assert.equal(w.severity, 'warning');
    assert.deepEqual(w.source, { file: 'cfg.yaml', index, line: lineOf(needle) }, formatProblemAt(w));
    assert.match(formatProblemAt(w), new RegExp(`\\(cfg\\.yaml, line ${lineOf(needle)}\\)$`));
  }
});

test('a field not in the file gives its nearest enclosing field\'s line; a resource in a List gets its own lines', () => {
  const text = `apiVersion: v1
kind: List
items:
- apiVersion: inference.networking.x-k8s.io/v1alpha2
  kind: InferenceModel
  metadata: {name: a}
  spec:
    modelName: a
    poolRef: {name: ghost-a}
- apiVersion: inference.networking.x-k8s.io/v1alpha2
  kind: InferenceModel
  metadata: {name: b}
  spec:
    modelName: b
    poolRef:
      name: ghost-b
`;
  const loaded = parseDocuments(text, 'list.yaml');
  const { warnings } = compileSnapshot(loaded.resources, 1);
  assert.equal(warningAbout(warnings, 'InferenceModel/a: spec.poolRef.name').source?.line, 9);
  assert.equal(warningAbout(warnings, 'InferenceModel/b: spec.poolRef.name').source?.line, 16);
});

test('validate: its own warning of a selector matching no Pod names the file and the field\'s line', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'infergate-warn-'));
  try {
    const file = join(dir, 'pools.yaml');
    await writeFile(
      file,
      `apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: lonely}
spec:
  targetPortNumber: 8000
  selector:
    app: nobody
  extensionRef: {name: epp}
`,
    );
    const stderr: string[] = [];
    await validatePaths([dir], { stdout: () => undefined, stderr: (l) => stderr.push(l) });
    const w = stderr.find((l) => l.includes('InferencePool/lonely: spec.selector: matches no Pod'));
    assert.ok(w !== undefined, stderr.join('\n'));
    assert.ok(w.endsWith(`(${file}, line 6)`), w);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
