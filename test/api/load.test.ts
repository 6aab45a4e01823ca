import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatProblem, formatProblemAt, parseDocuments, summarize, type InferencePool, type Resource } from '../../src/api/index.js';

function problems(yaml: string): string[] {
  return parseDocuments(yaml, 'in.yaml').problems.map((p) => `${p.severity}: ${formatProblem(p)}`);
}

const POOL_V1 = (spec: string): string => `apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: p}
spec:
${spec}`;

test('validation messages name the resource, the field path and the reason', () => {
  const cases: Array<[string, string, string]> = [
    [
      'weights all-or-none',
      'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata: {name: m}\nspec:\n  modelName: x\n  poolRef: {name: p}\n  targetModels: [{name: a, weight: 1}, {name: b}]\n',
      'error: InferenceModel/m: spec.targetModels: Weights should be set for all models, or none of the models.',
    ],
    [
      'weight range',
      'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata: {name: m}\nspec:\n  modelName: x\n  poolRef: {name: p}\n  targetModels: [{name: a, weight: 0}]\n',
      'error: InferenceModel/m: spec.targetModels[0].weight: must be at least 1',
    ],
    [
      'criticality enum',
      'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata: {name: m}\nspec:\n  modelName: x\n  criticality: Important\n  poolRef: {name: p}\n',
      'error: InferenceModel/m: spec.criticality: must be one of Critical, Standard, Sheddable (got the string "Important")',
    ],
    [
      'required field',
      'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata: {name: m}\nspec:\n  poolRef: {name: p}\n',
      'error: InferenceModel/m: spec.modelName: required',
    ],
    [
      'v1alpha2 port range',
      'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata: {name: p}\nspec:\n  selector: {app: x}\n  targetPortNumber: 70000\n',
      'error: InferencePool/p: spec.targetPortNumber: must be at most 65535',
    ],
    ['v1 unique ports', POOL_V1('  selector: {matchLabels: {app: x}}\n  targetPorts: [{number: 8000}, {number: 8000}]\n'), 'error: InferencePool/p: spec.targetPorts: port number must be unique'],
    ['v1 too many ports', POOL_V1(`  selector: {matchLabels: {app: x}}\n  targetPorts: [${Array.from({ length: 9 }, (_, i) => `{number: ${8000 + i}}`).join(', ')}]\n`), 'error: InferencePool/p: spec.targetPorts: must have at most 8 items'],
    [
      'v1 picker port rule',
      POOL_V1('  selector: {matchLabels: {app: x}}\n  targetPorts: [{number: 8000}]\n  endpointPickerRef: {name: epp}\n'),
      "error: InferencePool/p: spec.endpointPickerRef.port: port is required when kind is 'Service' or unspecified (defaults to 'Service')",
    ],
    [
      'runtime annotation',
      'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata:\n  name: p\n  annotations: {inference.networking.x-k8s.io/model-server-runtime: sglng}\nspec:\n  selector: {app: x}\n  targetPortNumber: 8000\n',
      'error: InferencePool/p: metadata.annotations["inference.networking.x-k8s.io/model-server-runtime"]: must be one of vllm, sglang, trt-llm (got "sglng"); absent means vllm',
    ],
    [
      'label value',
      'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata: {name: p}\nspec:\n  selector: {app: "-bad-"}\n  targetPortNumber: 8000\n',
      'error: InferencePool/p: spec.selector.app: must be a label value: at most 63 of A-Z a-z 0-9 - _ . starting and ending with a letter or digit, or empty',
    ],
    ['object name', 'apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\n', 'error: Pod/Bad_Name: metadata.name: must be a lower-case RFC 1123 subdomain (a-z, 0-9, \'-\', \'.\'; starting and ending with a letter or digit)'],
    [
      'listener port',
      'apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: x\n  listeners: [{name: l, protocol: HTTP, port: 0}]\n',
      'error: Gateway/g: spec.listeners[0].port: must be at least 1',
    ],
    [
      'listener names unique',
      'apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: x\n  listeners: [{name: l, protocol: HTTP, port: 1}, {name: l, protocol: HTTP, port: 2}]\n',
      'error: Gateway/g: spec.listeners[1].name: listener name "l" must be unique within the Gateway',
    ],
    [
      'path must start with /',
      'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: g}]\n  rules: [{matches: [{path: {value: v1}}]}]\n',
      'error: HTTPRoute/r: spec.rules[0].matches[0].path.value: must start with "/" (got "v1")',
    ],
    [
      'quantity',
      'apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: ClientTrafficPolicy\nmetadata: {name: c}\nspec:\n  targetRef: {kind: Gateway, name: g}\n  connection: {bufferLimit: 20MB}\n',
      'error: ClientTrafficPolicy/c: spec.connection.bufferLimit: "20MB" is not a quantity (examples: 20Mi, 512Ki, 1G, 1048576)',
    ],
    [
      'duration',
      'apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: b}\nspec:\n  targetRef: {kind: Gateway, name: g}\n  timeout: {http: {requestTimeout: 1d}}\n',
      'error: BackendTrafficPolicy/b: spec.timeout.http.requestTimeout: "1d" is not a duration (one to four of number+unit, units h, m, s, ms: 24h, 30s, 1h30m, 500ms)',
    ],
    ['policy without target', 'apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata: {name: b}\nspec:\n  timeout: {http: {requestTimeout: 1s}}\n', 'error: BackendTrafficPolicy/b: spec.targetRefs: required: the Gateway (or HTTPRoute) the policy applies to'],
    ['unknown apiVersion', 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: InferencePool\nmetadata: {name: p}\n', 'error: InferencePool/p: apiVersion: InferencePool is read in inference.networking.x-k8s.io/v2alpha2 or inference.networking.k8s.io/v1, not inference.networking.x-k8s.io/v1alpha1'.replace('v2alpha2', 'v1alpha2')],
    ['missing kind', 'apiVersion: v1\nmetadata: {name: x}\n', 'error: in.yaml (document 1): kind: required'],
    ['not a mapping', '- a\n- b\n', 'error: in.yaml (document 1): -: a document must be a mapping with apiVersion, kind and metadata, not a list'],
    [
      'unknown field is an error, with the field meant',
      'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata: {name: m}\nspec:\n  modelName: x\n  criticallity: Critical\n  poolRef: {name: p}\n',
      'error: InferenceModel/m: spec.criticallity: unknown field; did you mean "criticality"?',
    ],
    [
      'a misspelt backendRef weight',
      'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: g}]\n  rules: [{backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: p, wieght: 90}]}]\n',
      'error: HTTPRoute/r: spec.rules[0].backendRefs[0].wieght: unknown field; did you mean "weight"?',
    ],
    [
      'a field in the wrong case',
      'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata: {name: m}\nspec:\n  modelName: x\n  poolRef: {name: p}\n  targetmodels: [{name: a, weight: 1}]\n',
      'error: InferenceModel/m: spec.targetmodels: unknown field; did you mean "targetModels"?',
    ],
    [
      'an unknown field with nothing near it',
      'apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  gatewayClassName: c\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n  frobnicate: true\n',
      'error: Gateway/g: spec.frobnicate: unknown field',
    ],
    [
      'a misspelt annotation key under a prefix the gateway reads',
      'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferencePool\nmetadata:\n  name: p\n  annotations: {inference.networking.x-k8s.io/routing-stratgy: PREFIX_CACHE}\nspec: {targetPortNumber: 8000, selector: {app: a}, extensionRef: {name: e}}\n',
      'error: InferencePool/p: metadata.annotations["inference.networking.x-k8s.io/routing-stratgy"]: unknown annotation under inference.networking.x-k8s.io/; did you mean "inference.networking.x-k8s.io/routing-strategy"? (known: inference.networking.x-k8s.io/model-server-runtime, inference.networking.x-k8s.io/routing-strategy)',
    ],
    [
      'an unknown annotation on a Pod, under our own prefix',
      'apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  annotations: {infergate.dev/routin: "x"}\nstatus: {podIP: 127.0.0.2}\n',
      'error: Pod/a: metadata.annotations["infergate.dev/routin"]: unknown annotation under infergate.dev/; did you mean "infergate.dev/routing"? (known: infergate.dev/routing)',
    ],
  ];
  for (const [name, yaml, expected] of cases) {
    const got = problems(yaml);
    assert.ok(got.includes(expected), `${name}:\n  expected ${expected}\n  got ${JSON.stringify(got, null, 2)}`);
  }
});

test('YAML syntax errors carry the line; later documents still load', () => {
  const r = parseDocuments('apiVersion: v1\nkind: Pod\nmetadata: {name: a\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b}\nstatus: {podIP: 127.0.0.2}\n', 'f.yaml');
  assert.equal(r.problems.length > 0, true);
  const first = r.problems[0] ?? { severity: 'error', subject: '', path: '', message: '' };
  // The position is said once: in the problem's source, printed by formatProblemAt; the reason
  // is the parser's without its own `at line L, column C:` tail.
  // The resource and field the parser stopped in, when the text says them.
  assert.match(formatProblem(first), /^Pod\/a: metadata(\.name)?: YAML syntax error: [^:]+$/);
  assert.doesNotMatch(first.message, /line \d+|column \d+|:$/);
  assert.equal(first.source?.file, 'f.yaml');
  assert.equal(typeof first.source?.line, 'number');
  assert.equal(typeof first.source?.column, 'number');
  const printed = formatProblemAt(first);
  assert.match(printed, /^Pod\/a: metadata(\.name)?: YAML syntax error: [^:]+ \(f\.yaml, line \d+, column \d+\)$/);
  assert.equal(printed.match(/line \d+/g)?.length, 1, printed);
  assert.deepEqual(r.resources.map((x) => x.metadata.name), ['b']);
});

test('a List is unpacked, duplicates are errors, unknown kinds are ignored, defaults applied', () => {
  const r = parseDocuments(
    `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: a, labels: {app: x}}, status: {podIP: 127.0.0.2, phase: Running, conditions: [{type: Ready, status: "False"}]}}
- {apiVersion: v1, kind: Pod, metadata: {name: a}, status: {podIP: 127.0.0.3}}
- {apiVersion: apps/v1, kind: Deployment, metadata: {name: d}}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: p, namespace: prod}
spec:
  selector: {matchLabels: {app: x}}
  targetPorts: [{number: 8000}, {number: 8001}]
`,
    'list.yaml',
  );
  assert.deepEqual(r.problems.map(formatProblem), ['Pod/a: metadata.name: defined twice in namespace default: also in list.yaml (document 1)']);
  assert.deepEqual(r.ignored.map((d) => d.kind), ['Deployment']);
  const pod = r.resources.find((x) => x.kind === 'Pod');
  assert.equal(pod?.kind === 'Pod' ? pod.status.ready : undefined, false);
  const pool = r.resources.find((x): x is InferencePool => x.kind === 'InferencePool');
  assert.equal(pool?.metadata.namespace, 'prod');
  assert.deepEqual(pool?.spec.targetPorts, [8000, 8001]);
  assert.equal(pool?.spec.appProtocol, 'http');
  assert.equal(pool?.runtime, 'vllm');
  assert.equal(pool?.routingStrategy, 'DEFAULT');
});

test('HTTPRoute defaults: a rule without matches matches everything; weights default to 1', () => {
  const r = parseDocuments('apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: g}]\n  rules: [{backendRefs: [{name: s, port: 80}]}]\n', 'r.yaml');
  const route = r.resources[0];
  assert.equal(route?.kind, 'HTTPRoute');
  if (route?.kind !== 'HTTPRoute') return;
  assert.deepEqual(route.spec.rules[0]?.matches, [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }]);
  assert.equal(route.spec.rules[0]?.backendRefs[0]?.weight, 1);
  assert.equal(route.spec.rules[0]?.backendRefs[0]?.kind, 'Service');
  assert.equal(route.spec.parentRefs[0]?.group, 'gateway.networking.k8s.io');

  const noRules = parseDocuments('apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [{name: g}]\n', 'r.yaml');
  const nr = noRules.resources[0];
  assert.equal(nr?.kind === 'HTTPRoute' ? nr.spec.rules.length : -1, 1, 'no rules defaults to one catch-all rule');
});

test('an object exported from a cluster loads: ObjectMeta and status fields a cluster sets are accepted', () => {
  const r = parseDocuments(
    `apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata:
  name: m
  namespace: default
  uid: 5c4f1a2e-0000-4000-8000-000000000001
  resourceVersion: "12345"
  generation: 3
  creationTimestamp: 2025-05-01T10:00:00Z
  managedFields:
  - manager: kubectl-client-side-apply
    operation: Update
    apiVersion: inference.networking.x-k8s.io/v1alpha2
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: "{}"
  finalizers: []
  ownerReferences: []
spec:
  modelName: x
  poolRef: {name: p}
status:
  conditions: [{type: Accepted, status: "True"}]
`,
    'exported.yaml',
  );
  assert.deepEqual(r.problems.map(formatProblem), []);
  assert.deepEqual(r.resources.map((x) => `${x.kind}/${x.metadata.name}`), ['InferenceModel/m']);
});

test('a refused document is not loaded; the others in the file are', () => {
  const r = parseDocuments(
    'apiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata: {name: bad}\nspec: {modelName: x, poolRef: {name: p}, criticalty: Critical}\n---\napiVersion: inference.networking.x-k8s.io/v1alpha2\nkind: InferenceModel\nmetadata: {name: good}\nspec: {modelName: y, poolRef: {name: p}}\n',
    'two.yaml',
  );
  assert.deepEqual(r.resources.map((x) => x.metadata.name), ['good']);
  assert.equal(r.problems.filter((p) => p.severity === 'error').length, 1);
});

test('validate summary of an HTTPRoute shows header and query matches, so model-name rules are told apart', () => {
  const r = parseDocuments(
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: by-model}
spec:
  parentRefs: [{name: g}]
  rules:
  - matches: [{path: {value: /v1}, headers: [{name: X-Gateway-Model-Name, value: qwen}]}]
    backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: qwen-pool}]
  - matches: [{path: {value: /v1}, headers: [{type: RegularExpression, name: X-Gateway-Model-Name, value: 'deepseek.*'}], queryParams: [{name: debug, value: '1'}]}]
    backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: deepseek-pool}]
`,
    'route.yaml',
  );
  assert.deepEqual(r.problems, []);
  assert.equal(
    summarize(r.resources[0] as Resource),
    'HTTPRoute/by-model: on g: [PathPrefix /v1, header X-Gateway-Model-Name=qwen → InferencePool qwen-pool (1)] [PathPrefix /v1, header X-Gateway-Model-Name~deepseek.*, query debug=1 → InferencePool deepseek-pool (1)]',
  );
});
