import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDocuments } from '../../src/api/index.js';
import { formatProblem } from '../../src/api/types.js';
import { compileSnapshot } from '../../src/config/compile.js';
import { poolSchedulerConfig } from '../../src/gateway/runtime.js';

function compile(yaml: string): ReturnType<typeof compileSnapshot> {
  const loaded = parseDocuments(yaml, 'test.yaml');
  assert.deepEqual(loaded.problems.filter((p) => p.severity === 'error').map(formatProblem), []);
  return compileSnapshot(loaded.resources, 1);
}

function pool(annotations: string): string {
  return `apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata:
  name: pool
  annotations:
${annotations}
spec:
  selector: {app: m}
  targetPortNumber: 8000
`;
}

const PRECISE_ROUTING = `    inference.networking.x-k8s.io/routing-strategy: PREFIX_CACHE
    infergate.dev/routing: |
      prefix:
        mode: precise
        tokenizers: [{model: llama, path: /models/llama}]
`;

const PD_POLICY = (prefixCache: string): string => `---
apiVersion: inferenceextension.alibabacloud.com/v1alpha1
kind: InferenceTrafficPolicy
metadata: {name: pd}
spec:
  poolRef: {name: pool}
  modelServerRuntime: sglang
  profile:
    pd:
      pdRoleLabelName: role
      kvTransfer: {bootstrapPort: 34000}
      trafficPolicy:
        prefixCache: ${prefixCache}
      prefillPolicyRef: prefixCache
      decodePolicyRef: prefixCache
`;

function prefixPlugins(snapshot: ReturnType<typeof compileSnapshot>['snapshot']): Array<{ name: string; type: string; parameters?: Readonly<Record<string, unknown>> }> {
  const p = snapshot.pools.get('default/pool');
  assert.ok(p);
  return poolSchedulerConfig(p).config.plugins.filter((x) => x.type.includes('prefix'));
}

test('precise mode in the routing annotation: vLLM and llm-d defaults, and the precise scorer in place of the estimate one', () => {
  const { snapshot, warnings } = compile(pool(PRECISE_ROUTING));
  assert.deepEqual(warnings.map(formatProblem), []);
  const precise = snapshot.pools.get('default/pool')?.precise;
  assert.deepEqual(precise, {
    blockSize: 16,
    events: 'tcp://{ip}:5557',
    replay: 'tcp://{ip}:5558',
    topic: 'kv@{ip}:{port}@{model}',
    tokenizers: [{ model: 'llama', path: '/models/llama' }],
  });
  const plugins = prefixPlugins(snapshot);
  assert.deepEqual(
    plugins.map((p) => p.type),
    ['precise-prefix-scorer'],
  );
  assert.deepEqual(plugins[0]?.parameters, { blockSize: 16, tokenizers: [{ model: 'llama', path: '/models/llama' }] });
});

test('estimate mode (the default, and written out) keeps the estimate scorer and no precise settings', () => {
  for (const annotations of [`    inference.networking.x-k8s.io/routing-strategy: PREFIX_CACHE\n`, `    inference.networking.x-k8s.io/routing-strategy: PREFIX_CACHE\n    infergate.dev/routing: "prefix: {mode: estimate, homeBonus: 0.5}"\n`]) {
    const { snapshot } = compile(pool(annotations));
    assert.equal(snapshot.pools.get('default/pool')?.precise, undefined);
    const plugins = prefixPlugins(snapshot);
    assert.deepEqual(
      plugins.map((p) => p.type),
      ['prefix-cache-scorer'],
    );
    // The mode fields never reach the estimate scorer's strict parameters.
    assert.equal(plugins[0]?.parameters?.['mode'], undefined);
  }
});

test('precise without a tokenizer, or without prefix affinity, is warned naming the field, and the pool runs in estimate mode', () => {
  const noTokenizer = compile(pool(`    inference.networking.x-k8s.io/routing-strategy: PREFIX_CACHE\n    infergate.dev/routing: "prefix: {mode: precise}"\n`));
  assert.equal(noTokenizer.snapshot.pools.get('default/pool')?.precise, undefined);
  assert.equal(noTokenizer.snapshot.pools.get('default/pool')?.preciseUnavailable, 'no_tokenizer');
  assert.match(noTokenizer.warnings.map(formatProblem).join('\n'), /InferencePool\/pool.*prefix\.tokenizers.*estimate mode/);
  assert.deepEqual(
    prefixPlugins(noTokenizer.snapshot).map((p) => p.type),
    ['prefix-cache-scorer'],
  );

  const noAffinity = compile(pool(`    infergate.dev/routing: |\n      prefix: {mode: precise, tokenizers: [{model: m, path: /t}]}\n`));
  assert.equal(noAffinity.snapshot.pools.get('default/pool')?.precise, undefined);
  assert.equal(noAffinity.snapshot.pools.get('default/pool')?.preciseUnavailable, 'no_prefix_affinity');
  assert.match(noAffinity.warnings.map(formatProblem).join('\n'), /prefix\.mode.*no effect/);
  // A prefix weight alone gives a DEFAULT pool prefix affinity, and so precise mode.
  const weighted = compile(pool(`    infergate.dev/routing: |\n      scorers: {prefix: 2}\n      prefix: {mode: precise, tokenizers: [{model: m, path: /t}]}\n`));
  assert.notEqual(weighted.snapshot.pools.get('default/pool')?.precise, undefined);
});

test('an InferenceTrafficPolicy says precise for both prefill/decode roles, with its own events settings', () => {
  const { snapshot, warnings } = compile(
    pool('    {}\n') +
      PD_POLICY(`{mode: precise, blockSize: 64, kvEvents: {endpoint: "tcp://{ip}:6000", replayEndpoint: "", topic: "kv@{ip}@{model}"}, tokenizers: [{model: qwen, path: /t/qwen}]}`),
  );
  assert.deepEqual(warnings.map(formatProblem), []);
  assert.deepEqual(snapshot.pools.get('default/pool')?.precise, { blockSize: 64, events: 'tcp://{ip}:6000', replay: undefined, topic: 'kv@{ip}@{model}', tokenizers: [{ model: 'qwen', path: '/t/qwen' }] });
  assert.deepEqual(
    prefixPlugins(snapshot).map((p) => `${p.name}:${p.type}`),
    ['prefill-prefix:precise-prefix-scorer', 'decode-prefix:precise-prefix-scorer'],
  );
  // Seed 002's own policy (estimate) is unchanged, and warns nothing.
  const seed = compile(pool('    {}\n') + PD_POLICY('{mode: estimate}'));
  assert.deepEqual(seed.warnings.map(formatProblem), []);
  assert.equal(seed.snapshot.pools.get('default/pool')?.precise, undefined);
});

test('bad precise settings are refused naming the field', () => {
  const cases: Array<[string, RegExp]> = [
    [`prefix: {mode: exact}`, /prefix\.mode/],
    [`prefix: {mode: precise, blockSize: 0}`, /prefix\.blockSize/],
    [`prefix: {mode: precise, kvEvents: {endpoint: "http://x:1"}}`, /prefix\.kvEvents\.endpoint.*tcp:\/\//],
    [`prefix: {mode: precise, tokenizers: [{model: a, path: /x}, {model: a, path: /y}]}`, /tokenizers\[1\]\.model.*"a" a second time/],
    [`prefix: {mode: precise, tokenizers: [{model: a}]}`, /tokenizers/],
  ];
  for (const [routing, expected] of cases) {
    const loaded = parseDocuments(pool(`    infergate.dev/routing: "${routing.replaceAll('"', '\\"')}"\n`), 'test.yaml');
    const errors = loaded.problems.filter((p) => p.severity === 'error').map(formatProblem);
    assert.match(errors.join('\n'), expected, routing);
  }
  const policy = parseDocuments(pool('    {}\n') + PD_POLICY('{mode: fast}'), 'test.yaml');
  assert.match(policy.problems.filter((p) => p.severity === 'error').map(formatProblem).join('\n'), /InferenceTrafficPolicy\/pd.*prefixCache\.mode/);
});
