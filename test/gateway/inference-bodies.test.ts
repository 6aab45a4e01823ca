import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../src/core/errors.js';
import { seededRandom } from '../../src/core/weighted.js';
import { Gateway } from '../../src/gateway/index.js';
import { gatewayAndRoute } from '../support/config.js';
import { memoryLogger, MemorySource } from '../support/memory-source.js';

// The endpoint picker's entry (routePool: Envoy already routed to the pool) holds bodyless
// inference requests to the same rule as the proxy: the gateway's 400, never forwarded.

const YAML = `${gatewayAndRoute(8080, ['  - backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool}]'])}apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool}
spec: {selector: {matchLabels: {app: m}}, targetPorts: [{number: 8000}]}
---
apiVersion: v1
kind: Pod
metadata: {name: m-0, labels: {app: m}}
status: {phase: Running, podIP: 127.0.9.5}
`;

test('routePool: an inference POST without a body is 400 missing_model; other bodyless requests are balanced', async () => {
  const gateway = await Gateway.start({ sources: [new MemorySource(YAML)], logger: memoryLogger().logger, scrapeIntervalMs: 0, random: seededRandom(1) });
  try {
    // The trailing slash too: the model servers' routers redirect it to the endpoint (inference-paths.ts).
    for (const path of ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/v1/rerank', '/v1/score', '/v1/chat/completions/', '/v1/embeddings/']) {
      for (const body of [undefined, Buffer.alloc(0)]) {
        const h = gateway.begin({ method: 'POST', path, headers: {} });
        h.routePool('default/pool');
        await assert.rejects(h.decide(body, new AbortController().signal), (e: unknown) => e instanceof GatewayError && e.code === 'missing_model' && e.status === 400, path);
        h.failed(new GatewayError('missing_model', 'x'));
      }
    }
    // Unreadable bodies: their own 400 (the picker matches no routes, so nothing can hide it as a 404).
    for (const [body, code] of [['{"model":', 'invalid_json'], ['{"model":"m","model":"n"}', 'invalid_body'], ['{"model":"m","stream":"yes"}', 'invalid_body'], ['{"model":5}', 'missing_model'], ['{"prompt":"x"}', 'missing_model']] as const) {
      const h = gateway.begin({ method: 'POST', path: '/v1/completions', headers: {} });
      h.routePool('default/pool');
      await assert.rejects(h.decide(Buffer.from(body), new AbortController().signal), (e: unknown) => e instanceof GatewayError && e.code === code, body);
      h.failed(new GatewayError(code, 'x'));
    }
    for (const [method, path] of [['GET', '/health'], ['POST', '/reset_prefix_cache'], ['GET', '/v1/chat/completions']] as const) {
      const h = gateway.begin({ method, path, headers: {} });
      h.routePool('default/pool');
      const d = await h.decide(undefined, new AbortController().signal);
      assert.equal(d.endpoints[0]?.podName, 'm-0', `${method} ${path}`);
      h.finished({ status: 200 } as never);
    }
  } finally {
    await gateway.close();
  }
});
