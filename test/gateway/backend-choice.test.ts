import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDocuments } from '../../src/api/index.js';
import { formatProblem } from '../../src/api/types.js';
import { compileSnapshot } from '../../src/config/compile.js';
import type { RuleConfig } from '../../src/config/snapshot.js';
import { GatewayError } from '../../src/core/errors.js';
import { seededRandom } from '../../src/core/weighted.js';
import { poolModels, type PodModels, type PoolModels } from '../../src/gateway/backend-choice.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { Pipeline } from '../../src/gateway/pipeline.js';
import { memoryLogger, MemorySource } from '../support/memory-source.js';
import { binomialZ } from '../support/stats.js';

const pool = (name: string, release: string): string => `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: ${name}}
spec: {selector: {release: ${release}}, targetPortNumber: 8000}
`;
const model = (name: string, modelName: string, poolName: string, target: string): string => `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: ${name}}
spec: {modelName: ${modelName}, poolRef: {name: ${poolName}}, targetModels: [{name: ${target}, weight: 1}]}
`;
const ref = (name: string, weight: number): string => `{group: inference.networking.x-k8s.io, kind: InferencePool, name: ${name}, weight: ${weight}}`;

/**
 * Seed 003's layout and then some: `mymodel` has an InferenceModel in every pool, `travelhelper`
 * only in v1; the split rule sends /v1 to v1, v2, v3 at 60/10/30, /one to v2 alone, /svc to v2
 * and a Service.
 */
const YAML = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec: {gatewayClassName: x, listeners: [{name: http, protocol: HTTP, port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: canary}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [${ref('v1', 60)}, ${ref('v2', 10)}, ${ref('v3', 30)}]
  - matches: [{path: {type: PathPrefix, value: /one}}]
    backendRefs: [${ref('v2', 1)}]
  - matches: [{path: {type: PathPrefix, value: /svc}}]
    backendRefs: [${ref('v2', 50)}, {name: web, port: 80, weight: 50}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 9000}]}
${pool('v1', 'a')}${pool('v2', 'b')}${pool('v3', 'c')}${model('m1', 'mymodel', 'v1', 'mymodel')}${model('m2', 'mymodel', 'v2', 'mymodel')}${model('m3', 'mymodel', 'v3', 'mymodel')}${model('lora', 'travelhelper', 'v1', 'travel-helper-v1')}`;

function compiled(): { rule: (path: string) => RuleConfig; warnings: string[] } {
  const loaded = parseDocuments(YAML, 'test.yaml');
  assert.deepEqual(loaded.problems.filter((p) => p.severity === 'error').map(formatProblem), []);
  const { snapshot, warnings } = compileSnapshot(loaded.resources, 1);
  const rule = (path: string): RuleConfig => {
    const r = snapshot.listeners.get(8080)?.routes.match({ method: 'POST', path, query: '', host: 'h', headers: {} });
    assert.ok(r !== undefined);
    return r;
  };
  return { rule, warnings: warnings.map(formatProblem) };
}

const listed = (...names: string[]): PodModels => ({ names: new Set(names), complete: true });
const partial = (...names: string[]): PodModels => ({ names: new Set(names), complete: false });

/** The pools `n` draws land on, by pool name (a Service as `svc`). */
function draws(rule: RuleConfig, model: string | undefined, pods: PoolModels, n = 4000): Map<string, number> {
  const pipeline = new Pipeline(seededRandom(3));
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const b = pipeline.backend(rule, model, pods);
    const name = b.type === 'pool' ? b.pool.name : 'svc';
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

function assertShare(counts: Map<string, number>, name: string, p: number, n = 4000): void {
  const z = binomialZ(counts.get(name) ?? 0, n, p);
  assert.ok(Math.abs(z) < 4.5, `${name}: ${counts.get(name) ?? 0}/${n}, expected share ${p} (z=${z.toFixed(2)})`);
}

function refusal(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof GatewayError);
    return err;
  }
  assert.fail('expected a refusal');
}

test('a model served by some backends of a rule is split among those, by their weights renormalised', () => {
  const { rule } = compiled();
  const split = rule('/v1/chat/completions');
  // By InferenceModel alone (no pod has listed yet): travelhelper exists in v1 only.
  const onlyV1 = draws(split, 'travelhelper', new Map());
  assert.deepEqual([...onlyV1.keys()], ['v1']);
  // v3's pods list it too (an adapter loaded there without an InferenceModel): 60/30 → 2/3, 1/3.
  const pods = new Map([
    ['default/v1', partial()],
    ['default/v2', listed('mymodel')],
    ['default/v3', listed('mymodel', 'travelhelper')],
  ]);
  const two = draws(split, 'travelhelper', pods);
  assert.equal(two.get('v2'), undefined, 'never the pool that cannot serve it');
  assertShare(two, 'v1', 60 / 90);
  assertShare(two, 'v3', 30 / 90);
  // A pods-only name (an adapter listed by v3's pods alone).
  assert.deepEqual([...draws(split, 'travel-helper-v9', new Map([['default/v3', partial('travel-helper-v9')]])).keys()], ['v3']);
});

test('a model every backend serves, or a request without a model, keeps the route weights', () => {
  const { rule } = compiled();
  const split = rule('/v1/chat/completions');
  for (const m of ['mymodel', undefined]) {
    const all = draws(split, m, new Map([['default/v2', listed('mymodel')]]));
    assertShare(all, 'v1', 0.6);
    assertShare(all, 'v2', 0.1);
    assertShare(all, 'v3', 0.3);
  }
});

test('when the gateway does not know, the weighted draw stays (among the backends not known to lack the model)', () => {
  const { rule } = compiled();
  const split = rule('/v1/chat/completions');
  // Nothing listed yet: today's draw over all three.
  const blind = draws(split, 'nope', new Map());
  assertShare(blind, 'v1', 0.6);
  assertShare(blind, 'v2', 0.1);
  assertShare(blind, 'v3', 0.3);
  // v2 and v3 are known not to serve it, v1 has a pod that has not listed: v1 may, so v1.
  const some = draws(split, 'nope', new Map([['default/v1', partial('mymodel')], ['default/v2', listed('mymodel')], ['default/v3', listed('mymodel')]]));
  assert.deepEqual([...some.keys()], ['v1']);
  // A Service backend is never known: with v2 known not to serve it, the Service gets it.
  const svc = draws(rule('/svc'), 'nope', new Map([['default/v2', listed('mymodel')]]));
  assert.deepEqual([...svc.keys()], ['svc']);
  // A single backend not known either way gets the request as today.
  assert.equal(new Pipeline().backend(rule('/one'), 'nope', new Map([['default/v2', partial()]])).type, 'pool');
});

test('a model no backend serves, where every backend is known, is a 404 model_not_found from the gateway', () => {
  const { rule } = compiled();
  const pods = new Map([['default/v1', listed('mymodel', 'travel-helper-v1')], ['default/v2', listed('mymodel')], ['default/v3', listed('mymodel')]]);
  const err = refusal(() => new Pipeline().backend(rule('/v1/completions'), 'nope', pods));
  assert.equal(err.code, 'model_not_found');
  assert.equal(err.status, 404);
  assert.match(err.message, /`nope` is not served here/);
  assert.match(err.message, /v1, v2, v3/);
  // One backend, known: the same.
  assert.equal(refusal(() => new Pipeline().backend(rule('/one'), 'travelhelper', pods)).code, 'model_not_found');
  // A name too long to echo whole is cut.
  assert.ok(refusal(() => new Pipeline().backend(rule('/one'), 'x'.repeat(5000), pods)).message.length < 600);
});

test("what a pool's pods serve: complete only when every pod listed a non-empty list and refuses names it does not list", async () => {
  const sglang = `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: sg, annotations: {inference.networking.x-k8s.io/model-server-runtime: sglang}}
spec: {selector: {release: e}, targetPortNumber: 8000}
`;
  const yaml = `${pool('full', 'a')}${pool('half', 'b')}${pool('empty', 'c')}${pool('blank', 'd')}${sglang}---
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: a-0, labels: {release: a}}, status: {podIP: 127.0.2.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: b-0, labels: {release: b}}, status: {podIP: 127.0.2.2}}
- {apiVersion: v1, kind: Pod, metadata: {name: b-1, labels: {release: b}}, status: {podIP: 127.0.2.3}}
- {apiVersion: v1, kind: Pod, metadata: {name: d-0, labels: {release: d}}, status: {podIP: 127.0.2.4}}
- {apiVersion: v1, kind: Pod, metadata: {name: e-0, labels: {release: e}}, status: {podIP: 127.0.2.5}}
`;
  const gateway = await Gateway.start({ sources: [new MemorySource(yaml)], logger: memoryLogger().logger, scrapeIntervalMs: 0 });
  try {
    const runtime = gateway.runtime!;
    const endpoint = (poolName: string, i: number) => runtime.pools.get(`default/${poolName}`)!.members.endpoints[i]!;
    endpoint('full', 0).servedModels = [{ id: 'mymodel', parent: null }, { id: 'lora-a', parent: 'mymodel' }];
    endpoint('half', 0).servedModels = [{ id: 'mymodel', parent: null }];
    endpoint('blank', 0).servedModels = [];
    endpoint('sg', 0).servedModels = [{ id: 'qwen', parent: null }];
    // Pools that name no runtime: vLLM is only a guess until a scrape shows the runtime's names
    // (an SGLang pod's list would otherwise be read as a refusal of every other name).
    assert.equal(poolModels(runtime).get('default/full')?.complete, false, 'runtime not known yet');
    for (const name of ['full', 'half', 'blank']) endpoint(name, 0).dialectDetected = true;
    const view = poolModels(runtime);
    assert.deepEqual(view.get('default/full'), { names: new Set(['mymodel', 'lora-a']), complete: true });
    assert.deepEqual(view.get('default/half'), { names: new Set(['mymodel']), complete: false }, 'a pod that has not listed');
    assert.equal(view.get('default/empty')?.complete, false, 'a pool without pods');
    assert.equal(view.get('default/blank')?.complete, false, 'a pod listing nothing does not say what it serves');
    // Older SGLang servers ignore `model`: their list says what they serve, not what they refuse.
    assert.deepEqual(view.get('default/sg'), { names: new Set(['qwen']), complete: false });
  } finally {
    await gateway.close();
  }
});

test('a split rule where a model exists in only some pools is a config warning naming them', () => {
  const { warnings } = compiled();
  assert.deepEqual(
    warnings.filter((w) => w.includes('served by')),
    [
      'HTTPRoute/canary: spec.rules[0]: model travelhelper is served by v1 only; requests for it go there (weights apply among the pools that serve it)',
      // A Service has no InferenceModels: a model of the pool beside it goes to the pool.
      'HTTPRoute/canary: spec.rules[2]: model mymodel is served by v2 only; requests for it go there (weights apply among the pools that serve it)',
    ],
    'mymodel in all three pools of rule 0 and the single-backend rule 1 say nothing',
  );
});

test('an InferenceModelRewrite takes a model into its pool: an exact rule its name, a generic rule every name', () => {
  const rewrite = (name: string, poolName: string, match: string | undefined): string => `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModelRewrite
metadata: {name: ${name}}
spec:
  poolRef: {name: ${poolName}}
  rules:
  - ${match === undefined ? '' : `matches: [{model: {value: ${match}}}]\n    `}targets: [{modelRewrite: base, weight: 1}]
`;
  const yaml = `${YAML}${rewrite('travel-rollout', 'v2', 'travel')}${rewrite('catch-all', 'v3', undefined)}`;
  const loaded = parseDocuments(yaml, 'test.yaml');
  assert.deepEqual(loaded.problems.filter((p) => p.severity === 'error').map(formatProblem), []);
  const { snapshot } = compileSnapshot(loaded.resources, 1);
  const split = snapshot.listeners.get(8080)?.routes.match({ method: 'POST', path: '/v1/chat/completions', query: '', host: 'h', headers: {} });
  assert.ok(split !== undefined);
  // Every pod has listed only `mymodel`, yet v2's rule takes `travel` and v3's generic rule any name.
  const pods = new Map([
    ['default/v1', listed('mymodel')],
    ['default/v2', listed('mymodel')],
    ['default/v3', listed('mymodel')],
  ]);
  const travel = draws(split, 'travel', pods);
  assert.deepEqual([...travel.keys()].sort(), ['v2', 'v3']);
  assertShare(travel, 'v2', 10 / 40);
  assert.deepEqual([...draws(split, 'anything-else', pods).keys()], ['v3']);
});
