import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { gatewayAndRoute, poolRule } from '../support/config.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { debugPools, handled, loadDirectly, waitForView, type SimPods, startSmartEnv, type SmartEnv } from '../support/smart.js';

/**
 * What real clients and real model servers meet through the gateway: the official OpenAI client
 * on chat, the Responses API and embeddings; server errors the SDK can read; a Triton pool whose
 * servers refuse `stream_options`; a pod whose /metrics lacks the load gauges.
 */
const POOLS = ['vllm-pool', 'triton-old', 'triton-forced', 'mixed'] as const;

function config(port: number, pods: SimPods): string {
  const pool = (name: string, annotations: Record<string, string>): string => `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}, annotations: ${JSON.stringify(annotations)}}
spec: {selector: {matchLabels: {pool: ${name}}}, targetPorts: [{number: ${pods.port}}]}
`;
  const rules = POOLS.map((p, i) => poolRule(p, i === 0 ? undefined : { name: 'x-pool', value: p }));
  return `${gatewayAndRoute(port, rules)}${pool('vllm-pool', { 'inference.networking.x-k8s.io/routing-strategy': 'PREFIX_CACHE' })}${pool('triton-old', { 'inference.networking.x-k8s.io/model-server-runtime': 'trt-llm' })}${pool('triton-forced', {
    'inference.networking.x-k8s.io/model-server-runtime': 'trt-llm',
    'infergate.dev/routing': 'streamUsage: inject',
  })}${pool('mixed', { 'infergate.dev/routing': 'queue: {ttl: 3s}' })}${pods.podsYaml()}`;
}

describe('real clients and real servers through the gateway', { timeout: 180_000 }, () => {
  let pods: SimPods;
  let gateway: GatewayProcess;
  let base: string;
  let env: SmartEnv;
  const client = (pool?: string): OpenAI =>
    new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0, ...(pool === undefined ? {} : { defaultHeaders: { 'x-pool': pool } }) });

  before(async () => {
    const tiny = { profile: 'tiny', timeScale: 20 } as const;
    env = await startSmartEnv([
      { name: 'v-0', host: '127.0.4.2', runtime: 'vllm', ...tiny, labels: { pool: 'vllm-pool' } },
      { name: 'v-1', host: '127.0.4.3', runtime: 'vllm', ...tiny, labels: { pool: 'vllm-pool' } },
      { name: 't-old', host: '127.0.4.4', runtime: 'trtllm', tritonVersion: '2.59', ...tiny, labels: { pool: 'triton-old' } },
      { name: 't-forced', host: '127.0.4.5', runtime: 'trtllm', tritonVersion: '2.59', ...tiny, labels: { pool: 'triton-forced' } },
      { name: 'busy', host: '127.0.4.6', runtime: 'vllm', profile: 'tiny', timeScale: 1, overrides: { maxNumSeqs: 1 }, labels: { pool: 'mixed' } },
      { name: 'blind', host: '127.0.4.7', runtime: 'vllm', ...tiny, metricsFault: 'no-stats', labels: { pool: 'mixed' } },
    ], config, (e) => e.metrics !== null || e.name === 'blind');
    ({ pods, gateway, base } = env);
  });

  after(async () => {
    await env?.close();
  });

  test('the official client: chat streamed and not, with usage only when it asked', async () => {
    const c = client();
    const plain = await c.chat.completions.create({ model: 'mymodel', max_tokens: 5, messages: [{ role: 'user', content: 'Hello' }] });
    assert.ok((plain.choices[0]?.message.content ?? '').length > 0);
    assert.ok((plain.usage?.completion_tokens ?? 0) > 0);
    const chunks = [];
    for await (const chunk of await c.chat.completions.create({ model: 'mymodel', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'Hello' }] })) chunks.push(chunk);
    assert.ok(chunks.length > 2);
    assert.ok(chunks.every((ch) => ch.usage === undefined || ch.usage === null), 'the usage event the gateway asked for does not reach a client that did not');
  });

  test('the Responses API, streamed and not, is routed with the pool policy: prefix affinity from instructions and input', async () => {
    const instructions = `You are a careful travel assistant. ${'Always check the opening hours and the weather before answering. '.repeat(30)}`;
    const first = await client().responses.create({ model: 'mymodel', instructions, input: 'Where should I eat in Lyon?', max_output_tokens: 5 }, { headers: { 'x-request-id': 'resp-1' } });
    assert.equal(first.status, 'completed');
    assert.ok(first.output_text.length > 0);
    const stream = await client().responses.create({ model: 'mymodel', instructions, input: 'And in Paris?', max_output_tokens: 5, stream: true }, { headers: { 'x-request-id': 'resp-2' } });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    assert.equal(types.at(-1), 'response.completed');
    const [l1, l2] = await Promise.all([handled(gateway, 'resp-1'), handled(gateway, 'resp-2')]);
    assert.equal(l2['pod'], l1['pod'], 'the shared instructions keep the second request on the first one\'s pod');
    assert.match(String(l2['prefixBlocks']), /^[1-9]\d*\/\d+$/);
    assert.ok(Number(l1['promptTokens']) > 0 && Number(l2['completionTokens']) > 0, `usage read from both answers: ${JSON.stringify(l2)}`);
  });

  test('embeddings through the gateway with the official client (its default base64 encoding)', async () => {
    const r = await client().embeddings.create({ model: 'mymodel', input: ['one sentence', 'another sentence'] }, { headers: { 'x-request-id': 'emb-1' } });
    assert.equal(r.data.length, 2);
    assert.equal(r.data[0]?.embedding.length, 384);
    const norm = Math.sqrt((r.data[0]?.embedding ?? []).reduce((s, v) => s + v * v, 0));
    assert.ok(Math.abs(norm - 1) < 1e-3, 'a unit vector decoded intact');
    const line = await handled(gateway, 'emb-1');
    assert.equal(line['status'], 200);
    assert.ok(Number(line['promptTokens']) > 0);
  });

  test('a server error reaches the SDK with its status and message (not "no body")', async () => {
    await assert.rejects(
      client('triton-forced').chat.completions.create({ model: 'mymodel', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'Hi' }] }),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 422 && /stream_options/.test(e.message) && !/no body/.test(e.message),
    );
  });

  test('Triton before 25.11: plain streams work because the gateway does not inject stream_options there; tokens are counted from the stream', async () => {
    const c = client('triton-old');
    for (let i = 0; i < 3; i++) {
      const chunks = [];
      const stream = await c.chat.completions.create({ model: 'mymodel', max_tokens: 6, stream: true, messages: [{ role: 'user', content: 'Hello' }] }, { headers: { 'x-request-id': `triton-${i}` } });
      for await (const chunk of stream) chunks.push(chunk);
      assert.ok(chunks.length > 0);
      const line = await handled(gateway, `triton-${i}`);
      assert.equal(line['status'], 200);
      assert.equal(line['usageEstimated'], true);
      assert.equal(line['completionTokens'], 6, 'one token per streamed event');
    }
    // A client that asks for usage itself still gets the server's own refusal, readable.
    await assert.rejects(c.chat.completions.create({ model: 'mymodel', max_tokens: 5, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'Hi' }] }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 422);
  });

  test('a pod without usable metrics next to a queueing one: requests are served there, not held until 503', async () => {
    // `busy` runs one sequence at a time in real time: a direct load (12 × 1000 tokens at 4 ms, well
    // over the test) makes its own metrics show a queue. The pool's queue TTL is 3 s: a request
    // held at the gateway because the pool looks saturated would get 503.
    const load = loadDirectly(pods.get('busy'), 12, { model: 'mymodel', prompt: 'load', max_tokens: 1000, ignore_eos: true });
    try {
      await waitForView(gateway, 'busy', 'queueing in its metrics', (e) => (e.metrics?.waitingRequests ?? 0) >= 5, 20_000);
      const served: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await fetch(`${base}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-pool': 'mixed' },
          body: JSON.stringify({ model: 'mymodel', prompt: `q ${i}`, max_tokens: 4 }),
          signal: AbortSignal.timeout(30_000),
        });
        assert.equal(r.status, 200);
        served.push(r.headers.get('x-sim-pod') ?? '');
        await r.arrayBuffer();
      }
      assert.deepEqual([...new Set(served)], ['blind'], 'the idle pod without metrics serves, judged by the gateway\'s in-flight count');
      const view = (await debugPools(gateway)).find((p) => p.pool === 'default/mixed');
      assert.ok((view?.endpoints.find((e) => e.name === 'busy')?.metrics?.waitingRequests ?? 0) >= 5, 'busy was still queueing throughout');
    } finally {
      load.stop();
      await load.done;
    }
  });
});
