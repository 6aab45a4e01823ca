import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../src/core/weighted.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { Pipeline } from '../../src/gateway/pipeline.js';
import { gatewayAndRoute } from '../support/config.js';
import { memoryLogger, MemorySource } from '../support/memory-source.js';

const YAML = `${gatewayAndRoute(8080, ['  - matches: [{path: {type: PathPrefix, value: /svc}}]\n    backendRefs: [{name: web, port: 80}]', '  - backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: pool}]'])}apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata: {name: pool, annotations: {inference.networking.x-k8s.io/model-server-runtime: vllm}}
spec: {selector: {app: m}, targetPortNumber: 8000, extensionRef: {name: epp}}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: helper}
spec:
  modelName: assistant
  criticality: Sheddable
  poolRef: {name: pool}
  targetModels: [{name: adapter-v1, weight: 1}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: urgent}
spec: {priority: 10, poolRef: {name: pool}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 9000}]}
---
apiVersion: v1
kind: Pod
metadata: {name: m-0, labels: {app: m}}
status: {podIP: 127.0.2.1}
---
apiVersion: v1
kind: Pod
metadata: {name: w-0, labels: {app: web}}
status: {podIP: 127.0.2.2}
`;

async function setup(): Promise<{ gateway: Gateway; pipeline: Pipeline }> {
  const gateway = await Gateway.start({ sources: [new MemorySource(YAML)], logger: memoryLogger().logger, scrapeIntervalMs: 0 });
  return { gateway, pipeline: new Pipeline(seededRandom(1)) };
}

const req = (path: string) => ({ method: 'POST', path, query: '', host: 'h', headers: {} });

test('pipeline: an InferenceModel rewrites the model, sets the band; an objective header wins; streams ask for usage', async () => {
  const { gateway, pipeline } = await setup();
  try {
    const runtime = gateway.runtime!;
    const { rule } = pipeline.route(runtime, 8080, req('/v1/completions'));
    const body = Buffer.from('{"model":"assistant","prompt":"hello there","stream":true}');
    const p = pipeline.prepare(runtime, pipeline.backend(rule), body, {}, 'id');
    assert.equal(p.backend.kind, 'pool');
    assert.equal(p.model, 'assistant');
    assert.equal(p.targetModel, 'adapter-v1');
    assert.equal(p.criticality, 'Sheddable');
    assert.equal(p.body?.toString(), '{"stream_options":{"include_usage":true},"model":"adapter-v1","prompt":"hello there","stream":true}');
    assert.equal(p.stripUsage, true);
    assert.equal(p.request.promptText(), 'hello there');
    assert.equal(p.request.promptTokens, 3);
    const urgent = pipeline.prepare(runtime, pipeline.backend(rule), body, { 'x-gateway-inference-objective': 'urgent' }, 'id');
    assert.equal(urgent.criticality, 'Critical');
    assert.equal(urgent.objective, 'urgent');
    const unknown = pipeline.prepare(runtime, pipeline.backend(rule), Buffer.from('{"model":"other","prompt":"x"}'), {}, 'id');
    assert.equal(unknown.targetModel, 'other', 'no InferenceModel: the model passes through');
    assert.equal(unknown.criticality, 'Standard', 'and is never shed');
    assert.equal(unknown.body?.toString(), '{"model":"other","prompt":"x"}', 'an unchanged body is forwarded byte for byte');
    const result = pipeline.schedule(p);
    assert.equal(result.primary.endpoints[0]?.podName, 'm-0');
  } finally {
    await gateway.close();
  }
});

test('pipeline: a Service backend is plain balancing and never queues', async () => {
  const { gateway, pipeline } = await setup();
  try {
    const runtime = gateway.runtime!;
    const p = pipeline.prepare(runtime, pipeline.backend(pipeline.route(runtime, 8080, req('/svc/upload')).rule), Buffer.from('not json'), {}, 'id');
    assert.equal(p.backend.kind, 'service');
    assert.equal(p.body?.toString(), 'not json', 'a Service body is not parsed');
    const ticket = await pipeline.admit(p, new AbortController().signal);
    assert.equal(ticket.waitedMs, 0);
    assert.equal(pipeline.schedule(p).primary.endpoints[0]?.key, '127.0.2.2:9000');
  } finally {
    await gateway.close();
  }
});
