import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDocuments } from '../../src/api/index.js';
import { summarize } from '../../src/api/summary.js';
import { formatProblem } from '../../src/api/types.js';
import { compileSnapshot } from '../../src/config/compile.js';
import type { RewriteRuleConfig } from '../../src/config/snapshot.js';

const POOLS = `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool}
spec: {selector: {matchLabels: {app: m}}, targetPorts: [{number: 8000}]}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: other}
spec: {selector: {matchLabels: {app: o}}, targetPorts: [{number: 8000}]}
`;

function rewrite(name: string, rules: string, opts: { group?: string; created?: string; pool?: string } = {}): string {
  const created = opts.created === undefined ? '' : `, creationTimestamp: "${opts.created}"`;
  return `---
apiVersion: ${opts.group ?? 'inference.networking.x-k8s.io'}/v1alpha2
kind: InferenceModelRewrite
metadata: {name: ${name}${created}}
spec:
  poolRef: {name: ${opts.pool ?? 'pool'}}
  rules:
${rules}`;
}

function load(yaml: string): { errors: string[]; warnings: string[]; snapshot: ReturnType<typeof compileSnapshot>['snapshot'] | undefined; summaries: string[] } {
  const loaded = parseDocuments(yaml, 'test.yaml');
  const errors = loaded.problems.filter((p) => p.severity === 'error').map(formatProblem);
  if (errors.length > 0) return { errors, warnings: [], snapshot: undefined, summaries: [] };
  const { snapshot, warnings } = compileSnapshot(loaded.resources, 1);
  return { errors, warnings: warnings.map(formatProblem), snapshot, summaries: loaded.resources.map(summarize) };
}

/** Which target every draw of `rule` gives, over a fine sweep of the random number. */
function draws(rule: RewriteRuleConfig | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < 1000; i++) {
    const t = rule?.targets.pick(() => i / 1000) ?? '(none)';
    out.set(t, (out.get(t) ?? 0) + 1);
  }
  return out;
}

test('InferenceModelRewrite loads in both groups with one schema, and validate summarises it', () => {
  const { errors, snapshot, summaries } = load(
    POOLS +
      rewrite('canary', '  - matches: [{model: {value: travelhelper}}]\n    targets: [{modelRewrite: travel-helper-v1, weight: 90}, {modelRewrite: travel-helper-v2, weight: 10}]\n') +
      rewrite('fallback', '  - targets: [{modelRewrite: base}]\n', { group: 'llm-d.ai', pool: 'other' }),
  );
  assert.deepEqual(errors, []);
  const table = snapshot?.pools.get('default/pool')?.rewrites;
  assert.equal(table?.exact.get('travelhelper')?.resourceName, 'canary');
  assert.deepEqual(draws(table?.exact.get('travelhelper')), new Map([['travel-helper-v1', 900], ['travel-helper-v2', 100]]));
  assert.equal(table?.generic, undefined);
  assert.equal(snapshot?.pools.get('default/other')?.rewrites.generic?.resourceName, 'fallback', 'the llm-d.ai group is read the same');
  assert.ok(summaries.includes('InferenceModelRewrite/canary: in pool pool: [travelhelper → travel-helper-v1 (90), travel-helper-v2 (10)]'), summaries.join('\n'));
  assert.ok(summaries.includes('InferenceModelRewrite/fallback: in pool other (llm-d.ai): [any model → base]'), summaries.join('\n'));
});

test('InferenceModelRewrite is refused where the CRD refuses it, unknown fields with a suggestion', () => {
  const cases: Array<[string, RegExp]> = [
    ['  - matches: [{model: {value: a}}]\n    targets: []\n', /spec\.rules\[0\]\.targets: .*at least 1/i],
    ['  - matches: [{model: {type: Prefix, value: a}}]\n    targets: [{modelRewrite: b}]\n', /spec\.rules\[0\]\.matches\[0\]\.model\.type/],
    ['  - matches: [{model: {value: ""}}]\n    targets: [{modelRewrite: b}]\n', /spec\.rules\[0\]\.matches\[0\]\.model\.value/],
    ['  - matches: [{model: {value: a}}]\n    targets: [{modelRewrite: b, weight: 0}]\n', /spec\.rules\[0\]\.targets\[0\]\.weight/],
    ['  - matches: [{model: {value: a}}]\n    targets: [{modelRewrite: b, weight: 1000001}]\n', /spec\.rules\[0\]\.targets\[0\]\.weight/],
    ['  - matches: [{model: {value: a}}]\n    targets: [{modelRewite: b}]\n', /modelRewite.*did you mean .*modelRewrite/i],
    ['  - matches: [{model: {value: a}}]\n    targets: [{modelRewrite: b, wieght: 3}]\n', /wieght.*did you mean .*weight/i],
  ];
  for (const [rules, expected] of cases) {
    const { errors } = load(POOLS + rewrite('bad', rules));
    assert.ok(errors.some((e) => expected.test(e)), `${rules}: ${errors.join(' / ')}`);
  }
  const noPoolRef = load(`${POOLS}---\napiVersion: llm-d.ai/v1alpha2\nkind: InferenceModelRewrite\nmetadata: {name: x}\nspec:\n  rules: [{targets: [{modelRewrite: b}]}]\n`);
  assert.ok(noPoolRef.errors.some((e) => /spec\.poolRef/.test(e)), noPoolRef.errors.join(' / '));
});

test('rewrite precedence: exact beats generic, then the oldest resource, then list order; shadowed matches are warned', () => {
  const { snapshot, warnings } = load(
    POOLS +
      // Listed first but younger: loses "a" to `old`, keeps "c".
      rewrite('young', '  - matches: [{model: {value: a}}, {model: {value: c}}]\n    targets: [{modelRewrite: young-a}]\n  - targets: [{modelRewrite: young-generic}]\n', { created: '2025-02-01T00:00:00Z' }) +
      rewrite('old', '  - targets: [{modelRewrite: old-generic}]\n  - matches: [{model: {value: a}}]\n    targets: [{modelRewrite: old-a}]\n  - matches: [{model: {value: a}}, {model: {value: b}}]\n    targets: [{modelRewrite: old-ab}]\n', { created: '2025-01-01T00:00:00Z' }),
  );
  const table = snapshot?.pools.get('default/pool')?.rewrites;
  assert.deepEqual([...draws(table?.exact.get('a')).keys()], ['old-a'], 'oldest resource, first rule in its list');
  assert.deepEqual([...draws(table?.exact.get('b')).keys()], ['old-ab'], 'the exact rule, although a generic rule comes first in the list');
  assert.deepEqual([...draws(table?.exact.get('c')).keys()], ['young-a']);
  assert.deepEqual([...draws(table?.generic).keys()], ['old-generic'], "the oldest resource's generic rule");
  assert.ok(warnings.some((w) => /InferenceModelRewrite\/young: spec\.rules\[0\]\.matches\[0\]\.model\.value: "a" is already rewritten in pool default\/pool by InferenceModelRewrite\/old/.test(w)), warnings.join('\n'));
  assert.ok(warnings.some((w) => /InferenceModelRewrite\/old: spec\.rules\[2\]\.matches\[0\]\.model\.value: "a" is already rewritten/.test(w)), warnings.join('\n'));
  assert.ok(warnings.some((w) => /InferenceModelRewrite\/young: spec\.rules\[1\]: pool default\/pool already has a generic rule/.test(w)), warnings.join('\n'));
  // Without timestamps, file order decides.
  const untimed = load(POOLS + rewrite('first', '  - matches: [{model: {value: a}}]\n    targets: [{modelRewrite: first-a}]\n') + rewrite('second', '  - matches: [{model: {value: a}}]\n    targets: [{modelRewrite: second-a}]\n'));
  assert.deepEqual([...draws(untimed.snapshot?.pools.get('default/pool')?.rewrites.exact.get('a')).keys()], ['first-a']);
});

test('rewrite weights: cumulative draw; none set shares equally; mixed draws only the weighted ones (warned)', () => {
  const { snapshot, warnings } = load(
    POOLS +
      rewrite('w', '  - matches: [{model: {value: even}}]\n    targets: [{modelRewrite: x}, {modelRewrite: y}, {modelRewrite: z}, {modelRewrite: w}]\n  - matches: [{model: {value: mixed}}]\n    targets: [{modelRewrite: heavy, weight: 3}, {modelRewrite: unset}]\n'),
  );
  const table = snapshot?.pools.get('default/pool')?.rewrites;
  assert.deepEqual(draws(table?.exact.get('even')), new Map([['x', 250], ['y', 250], ['z', 250], ['w', 250]]));
  assert.deepEqual(draws(table?.exact.get('mixed')), new Map([['heavy', 1000]]));
  assert.ok(warnings.some((w) => /InferenceModelRewrite\/w: spec\.rules\[1\]\.targets: .*never drawn/.test(w)), warnings.join('\n'));
});

test('an InferenceModel decides the names it serves: an exact rewrite of one is warned and never applies; other pools and missing pools', () => {
  const { snapshot, warnings } = load(
    POOLS +
      `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: loramodel}
spec: {modelName: travelhelper, poolRef: {name: pool}, targetModels: [{name: travel-helper-v1}]}
` +
      rewrite('clash', '  - matches: [{model: {value: travelhelper}}, {model: {value: other-name}}]\n    targets: [{modelRewrite: z}]\n') +
      rewrite('elsewhere', '  - matches: [{model: {value: travelhelper}}]\n    targets: [{modelRewrite: o}]\n', { pool: 'other' }) +
      rewrite('lost', '  - targets: [{modelRewrite: o}]\n', { pool: 'nope' }),
  );
  const table = snapshot?.pools.get('default/pool')?.rewrites;
  assert.equal(table?.exact.has('travelhelper'), false);
  assert.equal(table?.exact.has('other-name'), true, 'the rule still applies to its other names');
  assert.equal(snapshot?.pools.get('default/other')?.rewrites.exact.has('travelhelper'), true, 'another pool has no InferenceModel for it');
  assert.ok(warnings.some((w) => /InferenceModelRewrite\/clash: spec\.rules\[0\]\.matches\[0\]\.model\.value: InferenceModel\/loramodel serves "travelhelper" in pool default\/pool/.test(w)), warnings.join('\n'));
  assert.ok(warnings.some((w) => /InferenceModelRewrite\/lost: spec\.poolRef\.name: InferencePool default\/nope not found/.test(w)), warnings.join('\n'));
});

test('responseModelName in the routing annotation: served or requested, anything else refused', () => {
  const pool = (value: string): string => `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata:
  name: pool
  annotations: {infergate.dev/routing: "${value}"}
spec: {selector: {matchLabels: {app: m}}, targetPorts: [{number: 8000}]}
`;
  assert.equal(load(pool('responseModelName: requested')).snapshot?.pools.get('default/pool')?.routing?.responseModelName, 'requested');
  assert.equal(load(pool('responseModelName: served')).snapshot?.pools.get('default/pool')?.routing?.responseModelName, 'served');
  const bad = load(pool('responseModelName: client'));
  assert.ok(bad.errors.some((e) => /infergate\.dev\/routing"\]: responseModelName: must be one of served, requested/.test(e)), bad.errors.join(' / '));
});
