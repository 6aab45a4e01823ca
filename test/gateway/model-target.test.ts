import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../src/core/weighted.js';
import { GatewayError } from '../../src/core/errors.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { Pipeline } from '../../src/gateway/pipeline.js';
import { gatewayAndRoute } from '../support/config.js';
import { memoryLogger, MemorySource } from '../support/memory-source.js';

/**
 * The model step of the pipeline: which target the server gets (InferenceModel, then rewrite
 * rules exact before generic, then the `x-gateway-model-name-rewrite` header) and which name the
 * answers carry (served for an InferenceModel, requested for a rewrite, unless the pool says).
 */
function yaml(responseModelName?: string): string {
  const annotations = responseModelName === undefined ? '' : `, annotations: {infergate.dev/routing: "responseModelName: ${responseModelName}"}`;
  return `${gatewayAndRoute(8080, ['  - backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool}]'])}apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool${annotations}}
spec: {selector: {matchLabels: {app: m}}, targetPorts: [{number: 8000}]}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: loramodel}
spec: {modelName: travelhelper, criticality: Critical, poolRef: {name: pool}, targetModels: [{name: travel-helper-v2}]}
---
apiVersion: llm-d.ai/v1alpha2
kind: InferenceModelRewrite
metadata: {name: aliases}
spec:
  poolRef: {name: pool}
  rules:
  - targets: [{modelRewrite: fallback-model}]
  - matches: [{model: {value: food-review}}]
    targets: [{modelRewrite: food-review-v1}]
---
apiVersion: v1
kind: Pod
metadata: {name: m-0, labels: {app: m}}
status: {podIP: 127.0.2.1}
`;
}

const req = { method: 'POST', path: '/v1/completions', query: '', host: 'h', headers: {} };

async function withPipeline(responseModelName: string | undefined, fn: (prepare: (model: string, headers?: Record<string, string>) => ReturnType<Pipeline['prepare']>) => void): Promise<void> {
  const gateway = await Gateway.start({ sources: [new MemorySource(yaml(responseModelName))], logger: memoryLogger().logger, scrapeIntervalMs: 0 });
  try {
    const runtime = gateway.runtime!;
    const pipeline = new Pipeline(seededRandom(7));
    const { rule } = pipeline.route(runtime, 8080, req);
    fn((model, headers = {}) => pipeline.prepare(runtime, pipeline.backend(rule), Buffer.from(JSON.stringify({ model, prompt: 'hi' })), headers, 'id'));
  } finally {
    await gateway.close();
  }
}

test('model step: InferenceModel, then exact rule, then generic rule; the header only where nothing is configured', async () => {
  await withPipeline(undefined, (prepare) => {
    const im = prepare('travelhelper', { 'x-gateway-model-name-rewrite': 'forced' });
    assert.deepEqual([im.targetModel, im.targetSource, im.criticality], ['travel-helper-v2', 'inference-model', 'Critical'], 'the InferenceModel wins over the generic rule and the header');
    assert.equal(im.body?.toString(), '{"model":"travel-helper-v2","prompt":"hi"}');
    const exact = prepare('food-review', { 'x-gateway-model-name-rewrite': 'forced' });
    assert.deepEqual([exact.targetModel, exact.targetSource, exact.rewrite?.name, exact.rewrite?.generic], ['food-review-v1', 'rewrite', 'aliases', false], 'an exact rule beats the generic one listed before it, and the header');
    assert.equal(exact.criticality, 'Standard', 'a rewrite carries no criticality');
    const generic = prepare('anything');
    assert.deepEqual([generic.targetModel, generic.rewrite?.generic], ['fallback-model', true]);
  });
});

test('model step: answers carry the served target for an InferenceModel, the client name for a rewrite, as the pool switch says', async () => {
  await withPipeline(undefined, (prepare) => {
    assert.equal(prepare('travelhelper').answerModel, 'travel-helper-v2', 'an InferenceModel canary shows the adapter that served');
    assert.equal(prepare('food-review').answerModel, 'food-review', 'a rewrite puts the client name back');
    assert.equal(prepare('whatever').answerModel, 'whatever');
  });
  await withPipeline('requested', (prepare) => {
    assert.equal(prepare('travelhelper').answerModel, 'travelhelper');
    assert.equal(prepare('food-review').answerModel, 'food-review');
  });
  await withPipeline('served', (prepare) => {
    assert.equal(prepare('travelhelper').answerModel, 'travel-helper-v2');
    assert.equal(prepare('food-review').answerModel, 'food-review-v1');
    assert.equal(prepare('other').answerModel, 'fallback-model');
  });
});

/** A pool with no rewrite rule: the header decides. */
test('model step: the rewrite header forces any target where no rule matches, bounded like the body model', async () => {
  const gateway = await Gateway.start({
    sources: [new MemorySource(yaml().replace(/---\napiVersion: llm-d\.ai[\s\S]*?food-review-v1}\]\n/, ''))],
    logger: memoryLogger().logger,
    scrapeIntervalMs: 0,
  });
  try {
    const runtime = gateway.runtime!;
    const pipeline = new Pipeline(seededRandom(7));
    const { rule } = pipeline.route(runtime, 8080, req);
    const prepare = (model: string, headers: Record<string, string>): ReturnType<Pipeline['prepare']> =>
      pipeline.prepare(runtime, pipeline.backend(rule), Buffer.from(JSON.stringify({ model, prompt: 'hi' })), headers, 'id');
    const forced = prepare('plain', { 'x-gateway-model-name-rewrite': 'adapter-b' });
    assert.deepEqual([forced.targetModel, forced.targetSource, forced.answerModel, forced.rewrite], ['adapter-b', 'header', 'plain', undefined]);
    assert.equal(forced.body?.toString(), '{"model":"adapter-b","prompt":"hi"}');
    assert.equal(prepare('plain', { 'x-gateway-model-name-rewrite': '' }).targetModel, 'plain', 'empty is absent');
    assert.throws(() => prepare('plain', { 'x-gateway-model-name-rewrite': 'x'.repeat(257) }), (err: unknown) => err instanceof GatewayError && err.code === 'invalid_header' && err.status === 400 && err.message.length < 200);
    assert.equal(prepare('plain', { 'x-gateway-model-name-rewrite': 'x'.repeat(256) }).targetModel, 'x'.repeat(256));
  } finally {
    await gateway.close();
  }
});
