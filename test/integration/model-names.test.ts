import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gatewayForPools, poolYaml, type SimPods, startSmartEnv, type SmartEnv } from '../support/smart.js';

/**
 * Which model name the client sees (seed 003's LoRA canary): an InferenceModel's answers name the
 * adapter that served them, so a user verifies the split by reading `"model"`; an
 * InferenceModelRewrite's answers name the model the client asked for, as upstream's newer
 * endpoint picker does; the pool's `responseModelName` flips either. Three pools, one per setting
 * (chosen by the `x-pool` header), each over a simulated vLLM server with two LoRA adapters.
 */
const ADAPTERS = ['travel-helper-v1', 'travel-helper-v2'];
const POOLS = { a: undefined, requested: 'requested', served: 'served' } as const;

function config(port: number, pods: SimPods): string {
  const perPool = Object.entries(POOLS).map(([pool, mode], i) => {
    const annotations: Record<string, string> = mode === undefined ? {} : { 'infergate.dev/routing': `responseModelName: ${mode}` };
    // Both of the rewrite's groups are exercised (the same schema).
    const group = i % 2 === 0 ? 'llm-d.ai' : 'inference.networking.x-k8s.io';
    return `${poolYaml(pool, pods.port, annotations)}---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: loramodel-${pool}}
spec:
  modelName: travelhelper
  poolRef: {group: inference.networking.k8s.io, name: ${pool}}
  targetModels: [{name: travel-helper-v1, weight: 50}, {name: travel-helper-v2, weight: 50}]
---
apiVersion: ${group}/v1alpha2
kind: InferenceModelRewrite
metadata: {name: travel-rollout-${pool}}
spec:
  poolRef: {name: ${pool}}
  rules:
  - matches: [{model: {value: travel}}]
    targets: [{modelRewrite: travel-helper-v1, weight: 50}, {modelRewrite: travel-helper-v2, weight: 50}]
`;
  });
  return `${gatewayForPools(port, Object.keys(POOLS))}${perPool.join('')}${pods.podsYaml()}`;
}

describe('the model name in answers: the served adapter for an InferenceModel, the client name for a rewrite, per pool switch', { timeout: 180_000 }, () => {
  let env: SmartEnv;

  before(async () => {
    env = await startSmartEnv(
      Object.keys(POOLS).map((pool, i) => ({ name: `lora-${pool}`, host: `127.0.17.${i + 2}`, runtime: 'vllm' as const, model: 'qwen', loras: ADAPTERS, profile: 'tiny', timeScale: 20, labels: { pool } })),
      config,
    );
  });

  after(async () => {
    await env?.close();
  });

  let n = 0;
  /** One answer's `model` values and the target the gateway sent (from its `Request Handled` line). */
  async function ask(pool: string, model: string, stream: boolean): Promise<{ models: string[]; target: unknown }> {
    const id = `names-${pool}-${model}-${n++}`;
    const r = await fetch(`${env.base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-pool': pool, 'x-request-id': id },
      body: JSON.stringify({ model, max_tokens: 4, stream, messages: [{ role: 'user', content: 'I just arrived in Beijing' }] }),
    });
    const text = await r.text();
    assert.equal(r.status, 200, text);
    assert.equal(r.headers.get('x-sim-pod'), `lora-${pool}`);
    const models = stream ? [...text.matchAll(/"model": ?"([^"]*)"/g)].map((m) => m[1] as string) : [(JSON.parse(text) as { model: string }).model];
    if (stream) {
      assert.ok(models.length > 1, 'every chunk names a model');
      assert.ok(text.trimEnd().endsWith('data: [DONE]'));
    }
    const line = await env.gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
    return { models, target: line['targetModel'] };
  }

  /** Asks until both adapters were drawn (50/50: 200 tries miss one with probability 2^-199). */
  async function bothDrawn(pool: string, model: string, stream: boolean, expect: (target: string) => string): Promise<void> {
    const seen = new Set<unknown>();
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      const { models, target } = await ask(pool, model, stream);
      assert.ok(ADAPTERS.includes(target as string), `the server got an adapter (${String(target)})`);
      seen.add(target);
      assert.deepEqual([...new Set(models)], [expect(target as string)], `${pool}/${model}${stream ? ' (stream)' : ''}`);
    }
    assert.equal(seen.size, 2, 'both adapters were drawn');
  }

  const served = (target: string): string => target;

  test("an InferenceModel canary's answers name the adapter that served them, in JSON and in streams (seed 003)", async () => {
    await bothDrawn('a', 'travelhelper', false, served);
    await bothDrawn('a', 'travelhelper', true, served);
  });

  test("an InferenceModelRewrite's answers name the model the client asked for, and each decision is counted", async () => {
    await bothDrawn('a', 'travel', false, () => 'travel');
    await bothDrawn('a', 'travel', true, () => 'travel');
    const list = (await (await fetch(`${env.base}/v1/models`)).json()) as { data: Array<{ id: string }> };
    assert.ok(list.data.some((m) => m.id === 'travel'), 'a rewritten name is a model clients may ask for');
    const metrics = await (await fetch(`http://127.0.0.1:${env.gateway.adminPort}/metrics`)).text();
    for (const target of ADAPTERS) {
      assert.match(metrics, new RegExp(`^inference_extension_model_rewrite_decisions_total\\{model_rewrite_name="travel-rollout-a",model_name="travel",target_model="${target}"\\} [1-9]`, 'm'));
    }
  });

  test('responseModelName: requested puts the client name back for the InferenceModel too', async () => {
    await bothDrawn('requested', 'travelhelper', false, () => 'travelhelper');
    await bothDrawn('requested', 'travelhelper', true, () => 'travelhelper');
    await bothDrawn('requested', 'travel', true, () => 'travel');
  });

  test('responseModelName: served shows the adapter for the InferenceModelRewrite too', async () => {
    await bothDrawn('served', 'travel', false, served);
    await bothDrawn('served', 'travel', true, served);
    await bothDrawn('served', 'travelhelper', true, served);
  });
});
