import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gatewayAndRoute, poolRule } from '../support/config.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { handled, startSmartEnv, waitFor, type PodSpec, type SimPods, type SmartEnv } from '../support/smart.js';

const ROLE = 'llm-d.ai/role';

/**
 * vLLM prefill/decode disaggregation in llm-d's NIXL dialect, through the gateway: a vLLM pool
 * with an InferenceTrafficPolicy `profile.pd`, over simulated vLLM prefill (kv producer) and
 * decode (kv consumer) servers, 1 + 1 so every request's pair is known.
 */
function config(port: number, pods: SimPods): string {
  return `${gatewayAndRoute(port, [poolRule('vllm-pd')])}apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: vllm-pd}
spec: {selector: {matchLabels: {app: vllm-pd}}, targetPorts: [{number: ${pods.port}}]}
---
apiVersion: inferenceextension.alibabacloud.com/v1alpha1
kind: InferenceTrafficPolicy
metadata: {name: vllm-pd}
spec:
  poolRef: {name: vllm-pd}
  modelServerRuntime: vllm
  profile: {pd: {pdRoleLabelName: ${ROLE}, trafficPolicy: {prefixCache: {mode: estimate}}, prefillPolicyRef: prefixCache}}
${pods.podsYaml()}`;
}

const vllm = (name: string, host: string, pdRole: 'prefill' | 'decode'): PodSpec => ({ name, host, runtime: 'vllm', profile: 'tiny', timeScale: 20, pdRole, labels: { app: 'vllm-pd', [ROLE]: pdRole } });

describe('prefill/decode disaggregation, vLLM (NIXL, llm-d\'s dialect)', { timeout: 120_000 }, () => {
  let env: SmartEnv;
  let pods: SimPods;
  let gateway: GatewayProcess;
  let base: string;

  before(async () => {
    env = await startSmartEnv([vllm('vp-0', '127.0.8.2', 'prefill'), vllm('vd-0', '127.0.8.3', 'decode')], config);
    ({ pods, gateway, base } = env);
  });

  after(async () => {
    await env?.close();
  });

  const long = (topic: string): string => `Write about ${topic}. ${'Consider every angle carefully and give details. '.repeat(60)}`;
  const send = async (id: string, content: string, stream: boolean): Promise<{ status: number; text: string }> => {
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': id },
      body: JSON.stringify({ model: 'mymodel', max_tokens: 10, ignore_eos: true, stream, messages: [{ role: 'user', content }] }),
    });
    return { status: r.status, text: await r.text() };
  };
  const reason = async (id: string): Promise<unknown> => ((await handled(gateway, id))['pd'] as Record<string, unknown>)['reason'];

  test('a cold prompt runs disaggregated: the prefill computes it, the decode answers in full, streamed or not', async () => {
    for (const stream of [false, true]) {
      const id = `cold-${stream}`;
      const [p0, d0] = [pods.get('vp-0').stats().received, pods.get('vd-0').stats().received];
      const r = await send(id, long(`rivers ${stream}`), stream);
      assert.equal(r.status, 200, r.text);
      if (stream) assert.ok(r.text.trimEnd().endsWith('data: [DONE]'));
      else assert.equal((JSON.parse(r.text) as { usage: { completion_tokens: number } }).usage.completion_tokens, 10, 'the decode server\'s whole answer');
      assert.equal(pods.get('vp-0').stats().received - p0, 1);
      assert.equal(pods.get('vd-0').stats().received - d0, 1);
      assert.equal(await reason(id), 'disaggregated');
    }
  });

  test('the decider keeps a prompt the decode pod already holds there: no prefill leg', async () => {
    const prompt = long('mountains');
    assert.equal((await send('warm-1', prompt, false)).status, 200);
    assert.equal(await reason('warm-1'), 'disaggregated');
    const before = pods.get('vp-0').stats().received;
    const r = await send('warm-2', prompt, false);
    assert.equal(r.status, 200, r.text);
    assert.equal(await reason('warm-2'), 'cached-on-decode');
    assert.equal(pods.get('vp-0').stats().received, before, 'the prefill pod never saw the second request');
  });

  test('a prefill that answers 5xx: the whole request runs on the decode pod', async () => {
    pods.get('vp-0').setFaults({ generation: 'status:503' });
    try {
      const r = await send('fallback-1', long('deserts'), false);
      assert.equal(r.status, 200, r.text);
      assert.equal((JSON.parse(r.text) as { usage: { completion_tokens: number } }).usage.completion_tokens, 10);
      const pd = (await handled(gateway, 'fallback-1'))['pd'] as Record<string, unknown>;
      assert.equal(pd['reason'], 'prefill-fallback');
      assert.match(String(pd['fallback']), /prefill answered 503/);
    } finally {
      pods.get('vp-0').setFaults({ generation: 'ok' });
    }
  });

  test('a prefill that refuses the request (4xx): the client gets that answer', async () => {
    pods.get('vp-0').setFaults({ generation: 'status:400' });
    try {
      const r = await send('refused-1', long('oceans'), false);
      assert.equal(r.status, 400, r.text);
      assert.equal(typeof (JSON.parse(r.text) as { error: { message: string } }).error.message, 'string');
      assert.equal((await handled(gateway, 'refused-1'))['attempts'], 1);
    } finally {
      pods.get('vp-0').setFaults({ generation: 'ok' });
    }
  });

  test('nothing leaks', async () => {
    for (const name of ['vp-0', 'vd-0']) await waitFor(`${name} in flight 0`, () => pods.get(name).stats().inFlight === 0, 10_000);
  });
});
