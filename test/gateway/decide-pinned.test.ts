import assert from 'node:assert/strict';
import { test } from 'node:test';
import { seededRandom } from '../../src/core/weighted.js';
import { GatewayError } from '../../src/core/errors.js';
import type { Endpoint } from '../../src/core/endpoint.js';
import { Gateway, type Decision } from '../../src/gateway/index.js';
import { modelYaml } from '../support/config.js';
import { memoryLogger, MemorySource } from '../support/memory-source.js';
import { chat, machine, pdConfig } from '../support/pd-gateway.js';

// The PD sidecar's entry into the core: the endpoint picker already decided, so nothing is
// decided again (model step, admission, scheduling), and the pinned pair is never replaced.

const SECOND_PREFILL = `---
apiVersion: v1
kind: Pod
metadata: {name: prefill-1, labels: {app: pd, role: prefill}}
status: {podIP: 127.0.5.4}
`;

async function sidecarCore(runtime: 'sglang' | 'vllm'): Promise<Gateway> {
  const { logger } = memoryLogger();
  // An InferenceModel that would send `qwen` elsewhere: the picker applied it already.
  return Gateway.start({ sources: [new MemorySource(pdConfig(runtime, modelYaml('m', 'qwen', 'pd', [{ name: 'qwen-canary', weight: 1 }]) + SECOND_PREFILL))], logger, scrapeIntervalMs: 0, random: seededRandom(1) });
}

function pinned(gateway: Gateway, prefiller: string | undefined, decode: Endpoint): { h: ReturnType<Gateway['begin']>; d: Decision } {
  const h = gateway.begin({ method: 'POST', path: '/v1/chat/completions', headers: {} });
  h.routePool('default/pd');
  return { h, d: h.decidePinned(chat('pinned'), prefiller, decode) };
}

test('decidePinned: no model step again, the named prefill planned with the local decode, nothing admitted or scheduled', async () => {
  for (const runtime of ['sglang', 'vllm'] as const) {
    const gateway = await sidecarCore(runtime);
    try {
      const pool = gateway.runtime?.pools.get('default/pd');
      const decode = pool?.members.endpoints.find((e) => e.podName === 'decode-0') as Endpoint;
      const { h, d } = pinned(gateway, '127.0.5.4:8000', decode);
      assert.equal(d.pd?.prefill.podName, 'prefill-1', 'the prefill the header names, not the scheduler\'s choice');
      assert.equal(d.pd?.decode, decode);
      const sent = JSON.parse(String(d.pd?.prefillBody)) as { model: string };
      assert.equal(sent.model, 'qwen', 'the model as the picker sent it: no InferenceModel applied twice');
      assert.equal(h.prepared?.stripUsage, false, 'the usage event is the picker\'s to strip');
      h.failed(new GatewayError('upstream_unavailable', 'not sent'));
      assert.throws(() => pinned(gateway, '127.0.5.2:8000', decode), (e: unknown) => e instanceof GatewayError && e.code === 'prefill_not_allowed');
      assert.throws(() => pinned(gateway, 'prefill-1:8000', decode), (e: unknown) => e instanceof GatewayError && e.code === 'invalid_header');
    } finally {
      await gateway.close();
    }
  }
});

test('a pinned pair that fails is not replaced by another pair: the request fails with it', async () => {
  const gateway = await sidecarCore('sglang');
  try {
    const pool = gateway.runtime?.pools.get('default/pd');
    const decode = pool?.members.endpoints.find((e) => e.podName === 'decode-0') as Endpoint;
    const { h, d } = pinned(gateway, '127.0.5.1:8000', decode);
    const m = machine(h, d);
    // As the leg runner reports it: both legs out (SGLang), the prefill refused, the decode leg stopped with it.
    m.pair.prefill();
    m.pair.decode();
    m.pair.prefillFailed(new GatewayError('upstream_unavailable', 'connection refused'));
    m.pair.decodeFailed(new GatewayError('upstream_unavailable', 'aborted'));
    m.pair.end();
    assert.equal(m.pair.failure?.blame, 'prefill');
    m.run.pairFailed(m.pair);
    const next = m.next();
    assert.equal(next.kind, 'fail', 'another prefill (prefill-1) exists, but the picker chose this pair');
    h.failed(next.kind === 'fail' ? next.error : new Error('unexpected'));
    assert.ok(pool?.members.endpoints.every((e) => e.inFlight === 0), 'nothing leaks');
  } finally {
    await gateway.close();
  }
});
