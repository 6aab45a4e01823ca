import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { gatewayAndRoute, poolRule } from '../support/config.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { waitFor, type SimPods, startSmartEnv, type SmartEnv } from '../support/smart.js';

/**
 * Model-based routing (seed 001; ACK and upstream's body-based router): one listener, two pools
 * serving two base models, an HTTPRoute rule per model matching `X-Gateway-Model-Name`, which
 * the gateway fills from the body before matching. Also: answers carry the model name of the
 * InferenceModel's target that served them, error bodies arrive OpenAI-shaped, and client-chosen names stay bounded.
 */
function config(port: number, pods: SimPods): string {
  const route = (model: string, pool: string): string => poolRule(pool, { name: 'X-Gateway-Model-Name', value: model });
  const pool = (name: string, runtime: string): string => `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}, annotations: {inference.networking.x-k8s.io/model-server-runtime: ${runtime}}}
spec: {selector: {matchLabels: {pool: ${name}}}, targetPorts: [{number: ${pods.port}}]}
`;
  const rules = [route('llama', 'llama-pool'), route('qwen', 'qwen-pool'), route('assistant', 'qwen-pool'), route('travel-helper', 'llama-pool'), route('retired', 'qwen-pool'), poolRule('llama-pool')];
  return `${gatewayAndRoute(port, rules)}${pool('llama-pool', 'vllm')}${pool('qwen-pool', 'sglang')}---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: assistant}
spec: {modelName: assistant, poolRef: {name: qwen-pool}, targetModels: [{name: qwen}]}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: retired}
spec: {modelName: retired, poolRef: {name: qwen-pool}, targetModels: [{name: qwen-0.5}]}
${pods.podsYaml()}`;
}

describe('model-based routing, model names in answers, error shapes, bounded names', { timeout: 120_000 }, () => {
  let gateway: GatewayProcess;
  let base: string;
  let env: SmartEnv;

  before(async () => {
    env = await startSmartEnv([
      { name: 'llama-0', host: '127.0.3.2', runtime: 'vllm', model: 'llama', loras: ['travel-helper'], profile: 'tiny', timeScale: 20, labels: { pool: 'llama-pool' } },
      { name: 'qwen-0', host: '127.0.3.3', runtime: 'sglang', model: 'qwen', profile: 'tiny', timeScale: 20, labels: { pool: 'qwen-pool' } },
    ], config);
    ({ gateway, base } = env);
  });

  after(async () => {
    await env?.close();
  });

  const chat = (model: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ model, max_tokens: 6, messages: [{ role: 'user', content: 'Hi' }], ...extra }),
    });

  test('each model reaches its own pool by X-Gateway-Model-Name filled from the body; a client-sent header cannot steer', async () => {
    for (let i = 0; i < 3; i++) {
      const llama = await chat('llama');
      assert.equal(llama.status, 200);
      assert.equal(llama.headers.get('x-sim-pod'), 'llama-0');
      await llama.arrayBuffer();
      const qwen = await chat('qwen', {}, { 'x-gateway-model-name': 'llama' });
      assert.equal(qwen.status, 200, 'the body decides, not a header the client sent');
      assert.equal(qwen.headers.get('x-sim-pod'), 'qwen-0');
      await qwen.arrayBuffer();
    }
    // No rule for this model: the catch-all rule's pool, whose server does not serve it. Until
    // the gateway has the pod's model list the server says so (404 from llama-0); then the
    // gateway does, without bothering the server (backend-choice.ts).
    let pod: string | null = 'llama-0';
    let code: unknown;
    await waitFor("the gateway's own 404 for a model no backend serves", async () => {
      const unknown = await chat('mistral');
      assert.equal(unknown.status, 404);
      pod = unknown.headers.get('x-sim-pod');
      code = ((await unknown.json()) as { error?: { code?: unknown } }).error?.code;
      if (pod !== null) assert.equal(pod, 'llama-0', 'only the catch-all rule\'s pool');
      return pod === null;
    }, 40_000);
    assert.equal(code, 'model_not_found');
  });

  test('an adapter routes by its own name, and the gateway learns its base model from the pods', async () => {
    const r = await chat('travel-helper');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-sim-pod'), 'llama-0');
    await r.arrayBuffer();
    await waitFor('the pods model lists', async () => {
      const list = (await (await fetch(`${base}/v1/models`)).json()) as { data: Array<{ id: string; parent?: string }> };
      return list.data.some((m) => m.id === 'travel-helper' && m.parent === 'llama');
    }, 40_000);
  });

  test("an InferenceModel's answers name the target that served them, in JSON and in streams", async () => {
    const plain = await chat('assistant');
    assert.equal(plain.status, 200);
    const body = (await plain.json()) as { model: string; choices: Array<{ message: { content: string } }> };
    assert.equal(body.model, 'qwen', 'the served target stays visible (model-names.test.ts has the rest)');
    assert.match(body.choices[0]?.message.content ?? '', /^ qwen:/, 'the server did serve the target model');
    const streamed = await chat('assistant', { stream: true });
    const text = await streamed.text();
    const models = [...text.matchAll(/"model": ?"([^"]*)"/g)].map((m) => m[1]);
    assert.ok(models.length > 2);
    assert.deepEqual([...new Set(models)], ['qwen']);
    assert.ok(text.trimEnd().endsWith('data: [DONE]'));
  });

  test("a server's own error shape reaches the client as an OpenAI error with the server's status and message", async () => {
    // `retired` targets a model the SGLang pod no longer serves: SGLang answers its flat
    // `{"object":"error",…}` 404, which the OpenAI SDKs cannot read ("404 status code (no body)").
    const r = await chat('retired');
    assert.equal(r.status, 404);
    assert.equal(r.headers.get('x-sim-pod'), 'qwen-0');
    assert.equal(r.headers.get('content-type'), 'application/json');
    const err = (await r.json()) as { error?: { message?: string; type?: string; code?: unknown }; object?: string };
    assert.equal(err.object, undefined, 'not the flat shape');
    assert.match(err.error?.message ?? '', /qwen-0\.5/, "the server's own message");
    assert.equal(err.error?.code, 404);
  });

  test('client-chosen names are bounded: a huge model name is a 400, unknown names share one metric label', async () => {
    const huge = await chat('m'.repeat(1024 * 1024));
    assert.equal(huge.status, 400);
    const hugeBody = await huge.text();
    assert.ok(hugeBody.length < 1000, `the error does not echo the name (${hugeBody.length} bytes)`);
    for (let i = 0; i < 40; i++) await (await chat(`made-up-${i}`)).arrayBuffer();
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.adminPort}/metrics`)).text();
    assert.ok(!metrics.includes('made-up-'), 'unknown names never become labels');
    assert.ok(!metrics.includes('mmmmmmmm'));
    const handled = gateway.logs.filter((l) => l.msg === 'Request Handled');
    assert.ok(handled.every((l) => JSON.stringify(l).length < 4096), 'no log line carries the huge name');
  });
});
