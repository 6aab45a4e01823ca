import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDocuments } from '../../src/api/index.js';
import { formatProblem } from '../../src/api/types.js';
import { compileSnapshot } from '../../src/config/compile.js';
import { DEFAULT_BUFFER_LIMIT_BYTES } from '../../src/config/defaults.js';
import type { RuleConfig } from '../../src/config/snapshot.js';
import { seededRandom } from '../../src/core/weighted.js';

function compile(yaml: string): ReturnType<typeof compileSnapshot> {
  const loaded = parseDocuments(yaml, 'test.yaml');
  assert.deepEqual(loaded.problems.filter((p) => p.severity === 'error').map(formatProblem), []);
  return compileSnapshot(loaded.resources, 1);
}

const GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: x
  listeners:
  - {name: a, protocol: HTTP, port: 8080}
  - {name: b, protocol: HTTP, port: 8081}
  - {name: tls, protocol: HTTPS, port: 8443}
`;

const POOL = `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: pool}
spec:
  selector: {app: m}
  targetPortNumber: 8000
`;

function ruleAt(snapshot: ReturnType<typeof compileSnapshot>['snapshot'], port: number, path = '/v1/completions'): RuleConfig | undefined {
  return snapshot.listeners.get(port)?.routes.match({ method: 'POST', path, query: '', host: 'h', headers: {} });
}

test('routes attach by sectionName; unsupported protocols and filters are warnings', () => {
  const { snapshot, warnings } = compile(
    GATEWAY +
      POOL +
      `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw, sectionName: b}]
  rules:
  - filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-a, value: "1"}]}
    backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: pool}]
`,
  );
  assert.deepEqual([...snapshot.listeners.keys()].sort(), [8080, 8081]);
  assert.equal(ruleAt(snapshot, 8080), undefined, 'not attached to listener a');
  const rule = ruleAt(snapshot, 8081);
  assert.equal(rule?.id, 'default/r#0');
  assert.deepEqual(rule?.requestHeaders?.set, [{ name: 'x-a', value: '1' }]);
  const messages = warnings.map(formatProblem);
  assert.ok(messages.includes('Gateway/gw: spec.listeners[2].protocol: protocol HTTPS is not supported (only HTTP); listener tls is not served'), messages.join('\n'));
  assert.ok(messages.includes('HTTPRoute/r: spec.rules[0].filters[0].type: filter URLRewrite is not supported; it is ignored'), messages.join('\n'));
});

test('dangling references are warnings naming resource, field and reason; drawn traffic gets 500', () => {
  const { snapshot, warnings } = compile(
    GATEWAY +
      POOL +
      `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw, sectionName: a}, {name: missing-gw}]
  rules:
  - backendRefs:
    - {group: inference.networking.x-k8s.io, kind: InferencePool, name: pool, weight: 1}
    - {group: inference.networking.x-k8s.io, kind: InferencePool, name: nope, weight: 1}
    - {kind: Service, name: no-svc, weight: 0}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: m}
spec:
  modelName: m
  poolRef: {name: ghost}
`,
  );
  const messages = warnings.map(formatProblem);
  assert.ok(messages.includes('HTTPRoute/r: spec.parentRefs[1].name: Gateway default/missing-gw not found; the route is not attached'), messages.join('\n'));
  assert.ok(messages.includes('HTTPRoute/r: spec.rules[0].backendRefs[1].name: InferencePool default/nope not found; requests drawn to it get 500'), messages.join('\n'));
  assert.ok(messages.includes('InferenceModel/m: spec.poolRef.name: InferencePool default/ghost not found; the model is not served'), messages.join('\n'));
  assert.ok(!messages.some((m) => m.includes('no-svc')), 'a weight-0 backend is never drawn, so it is not worth a warning');
  const rule = ruleAt(snapshot, 8080);
  assert.equal(rule?.backends.size, 2);
  const kinds = new Set<string>();
  const random = seededRandom(5);
  for (let i = 0; i < 200; i++) kinds.add(rule?.backends.pick(random)?.type ?? '');
  assert.deepEqual([...kinds].sort(), ['invalid', 'pool']);
});

test('policies: buffer limit and timeouts per listener, route policy over gateway policy, rule timeout over both', () => {
  const policies = `---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: ctp}
spec:
  connection: {bufferLimit: 20Mi}
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: a}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: gw-timeout}
spec:
  timeout: {http: {requestTimeout: 24h}}
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: route-timeout}
spec:
  timeout: {http: {requestTimeout: 30s}}
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: special}]
`;
  const route = (name: string, path: string, extra = ''): string => `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: ${path}}}]
${extra}    backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: pool}]
`;
  const { snapshot } = compile(GATEWAY + POOL + policies + route('plain', '/v1') + route('special', '/special') + route('ruled', '/ruled', '    timeouts: {request: 500ms}\n'));
  assert.equal(ruleAt(snapshot, 8080)?.bufferLimitBytes, 20 * 1024 * 1024);
  assert.equal(ruleAt(snapshot, 8081)?.bufferLimitBytes, DEFAULT_BUFFER_LIMIT_BYTES, 'sectionName a only');
  assert.equal(ruleAt(snapshot, 8080)?.requestTimeoutMs, 24 * 3600 * 1000);
  assert.equal(ruleAt(snapshot, 8080, '/special/x')?.requestTimeoutMs, 30_000);
  assert.equal(ruleAt(snapshot, 8080, '/ruled/x')?.requestTimeoutMs, 500);
  // The error of a timeout names the setting that fired (issue 9: a rule's timeout was blamed on a policy).
  assert.equal(ruleAt(snapshot, 8080)?.requestTimeoutSetting, 'BackendTrafficPolicy default/gw-timeout timeout.http.requestTimeout');
  assert.equal(ruleAt(snapshot, 8080, '/special/x')?.requestTimeoutSetting, 'BackendTrafficPolicy default/route-timeout timeout.http.requestTimeout');
  assert.match(ruleAt(snapshot, 8080, '/ruled/x')?.requestTimeoutSetting ?? '', /^HTTPRoute default\/ruled spec\.rules\[0\]\.timeouts\.request$/);
});

test('InferenceModels: oldest wins a duplicate modelName; no weights means equal shares; /v1/models lists names', () => {
  const model = (name: string, created: string, targets: string): string => `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: ${name}, creationTimestamp: "${created}"}
spec:
  modelName: chat
  poolRef: {name: pool}
  targetModels: ${targets}
`;
  const { snapshot, warnings } = compile(
    GATEWAY +
      POOL +
      model('newer', '2025-03-01T00:00:00Z', '[{name: x}]') +
      model('older', '2025-01-01T00:00:00Z', '[{name: a}, {name: b}]') +
      `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool}]}]
`,
  );
  const chat = snapshot.pools.get('default/pool')?.models.get('chat');
  assert.equal(chat?.resourceName, 'older');
  assert.equal(chat?.criticality, 'Standard', 'unset criticality is Standard');
  assert.deepEqual([...(chat?.targets.items ?? [])], ['a', 'b']);
  assert.equal(chat?.targets.total, 2);
  assert.ok(warnings.map(formatProblem).some((m) => m.startsWith('InferenceModel/newer: spec.modelName: modelName "chat" is already served')));
  assert.deepEqual(snapshot.listeners.get(8080)?.models, ['chat']);
  assert.ok(Object.isFrozen(snapshot), 'the snapshot is frozen');
});
