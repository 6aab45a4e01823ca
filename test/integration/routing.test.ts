import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configDir, gatewayYaml, modelYaml, podYaml, poolYaml, routeYaml } from '../support/config.js';
import { startSeed003Fleet } from '../support/fleet.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { waitFor } from '../support/smart.js';
import { freePort } from '../support/ports.js';
import { binomialZ, runConcurrently } from '../support/stats.js';

// Seed 003 on loopback: pool v1 (two pods with LoRA adapters) and pool v2 (one pod) behind a
// 90/10 HTTPRoute; InferenceModel travelhelper splits 90/10 across two adapters in pool v1.
// A third pool (unused) proves requests never leak to pods the route does not name.
describe('routing by pool weight and InferenceModel weight', { timeout: 120_000 }, () => {
  let fleet: Awaited<ReturnType<typeof startSeed003Fleet>>;
  let gateway: GatewayProcess;
  let cfg: Awaited<ReturnType<typeof configDir>>;
  let base: string;

  before(async () => {
    fleet = await startSeed003Fleet(['127.0.0.11', '127.0.0.12', '127.0.0.13'], 'deepseek-0', [{ host: '127.0.0.14', name: 'other-0', models: ['mymodel'] }]);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    cfg = await configDir(
      gatewayYaml(port) +
        poolYaml('pool-v1', 'qwen', fleet.port) +
        poolYaml('pool-v2', 'deepseek', fleet.port) +
        poolYaml('pool-other', 'other', fleet.port) +
        podYaml('qwen-0', 'qwen', '127.0.0.11') +
        podYaml('qwen-1', 'qwen', '127.0.0.12') +
        podYaml('deepseek-0', 'deepseek', '127.0.0.13') +
        podYaml('other-0', 'other', '127.0.0.14') +
        routeYaml('canary', [
          { pool: 'pool-v1', weight: 90 },
          { pool: 'pool-v2', weight: 10 },
        ]) +
        modelYaml('loramodel', 'travelhelper', 'pool-v1', [
          { name: 'travel-helper-v1', weight: 90 },
          { name: 'travel-helper-v2', weight: 10 },
        ]) +
        modelYaml('loramodel-v2', 'travelhelper', 'pool-v2', [{ name: 'mymodel', weight: 1 }], 'Standard'),
    );
    gateway = await startGatewayProcess(['-f', cfg.dir, '--log-level', 'info']);
  });

  after(async () => {
    await gateway?.stop();
    await fleet?.close();
    await cfg?.remove();
  });

  const chat = (model: string): Promise<Response> =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello there' }], max_tokens: 4 }),
    });

  test('90/10 across pools over 1200 requests lands within 4.5 sigma, never on an unrouted pod', async () => {
    const n = 1200;
    const pods = await runConcurrently(n, 16, async () => {
      const r = await chat('mymodel');
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      return r.headers.get('x-sim-pod');
    });
    const v1 = pods.filter((p) => p === 'qwen-0' || p === 'qwen-1').length;
    const v2 = pods.filter((p) => p === 'deepseek-0').length;
    assert.equal(v1 + v2, n, `every request served by a routed pod (got ${JSON.stringify([...new Set(pods)])})`);
    assert.ok(Math.abs(binomialZ(v1, n, 0.9)) < 4.5, `pool v1 share ${v1}/${n} is outside 4.5 sigma of 90%`);
    assert.equal(fleet.servers.get('other-0')?.stats().served, 0);
    // Within pool v1, least-in-flight with random tie-break uses both pods.
    assert.ok(pods.includes('qwen-0') && pods.includes('qwen-1'));
  });

  test('90/10 LoRA split in pool v1 rewrites the model the server receives', async () => {
    const n = 1200;
    const results = await runConcurrently(n, 16, async () => {
      const r = await chat('travelhelper');
      assert.equal(r.status, 200);
      const body = (await r.json()) as { model: string };
      return { pod: r.headers.get('x-sim-pod') ?? '', received: r.headers.get('x-sim-model'), model: body.model };
    });
    const inV1 = results.filter((r) => r.pod.startsWith('qwen-'));
    const inV2 = results.filter((r) => r.pod === 'deepseek-0');
    assert.equal(inV1.length + inV2.length, n);
    // Pool v2's InferenceModel maps travelhelper to its base model.
    assert.ok(inV2.every((r) => r.received === 'mymodel'));
    const v1Adapter = inV1.filter((r) => r.received === 'travel-helper-v1').length;
    const v2Adapter = inV1.filter((r) => r.received === 'travel-helper-v2').length;
    assert.equal(v1Adapter + v2Adapter, inV1.length, 'pool v1 only ever receives one of the two adapters');
    assert.ok(Math.abs(binomialZ(v1Adapter, inV1.length, 0.9)) < 4.5, `adapter v1 share ${v1Adapter}/${inV1.length} is outside 4.5 sigma of 90%`);
  });

  test('a model without an InferenceModel passes through unchanged, to the pool whose pods list it', async () => {
    // No InferenceModel names travel-helper-v2; pool v1's pods list it (their --lora-modules),
    // pool v2's do not: once the gateway has their lists, every request goes to pool v1.
    await waitFor('every routed pod listed its models (a model nobody serves is refused by the gateway)', async () => {
      const r = await chat('nobody-serves-this');
      await r.arrayBuffer();
      return r.status === 404 && r.headers.get('x-sim-pod') === null;
    }, 40_000);
    const results = await runConcurrently(50, 8, async () => {
      const r = await chat('travel-helper-v2');
      await r.arrayBuffer();
      return { status: r.status, pod: r.headers.get('x-sim-pod') ?? '', received: r.headers.get('x-sim-model') };
    });
    assert.ok(results.every((r) => r.status === 200 && r.pod.startsWith('qwen-') && r.received === 'travel-helper-v2'), JSON.stringify(results.find((r) => r.status !== 200)));
  });

  test('GET /v1/models lists the model names routable on the listener: InferenceModels, then what the pods serve', async () => {
    // The pods' own model lists are learned in the background; wait until they are in.
    let body: { object: string; data: Array<{ id: string; object: string; parent?: string }> } = { object: '', data: [] };
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const r = await fetch(`${base}/v1/models`);
      assert.equal(r.status, 200);
      body = (await r.json()) as typeof body;
      if (body.data.length >= 4) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(body.object, 'list');
    assert.deepEqual(body.data.map((m) => m.id), ['travelhelper', 'mymodel', 'travel-helper-v1', 'travel-helper-v2']);
    assert.equal(body.data.find((m) => m.id === 'travel-helper-v1')?.parent, 'mymodel', "an adapter names its base model, as vLLM's list does");
    const one = await fetch(`${base}/v1/models/travel-helper-v2`);
    assert.equal(one.status, 200);
    assert.equal(((await one.json()) as { id: string }).id, 'travel-helper-v2');
    const missing = await fetch(`${base}/v1/models/nope`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'model_not_found');
    // HEAD gets GET's headers and no body, from the gateway too (no pod sees it).
    const head = await fetch(`${base}/v1/models`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-type'), 'application/json');
    assert.equal(head.headers.get('x-sim-pod'), null);
    assert.equal(await head.text(), '');
    // The log line of an answer the gateway gave itself counts the bytes it sent.
    const id = 'models-list-bytes';
    const listed = await fetch(`${base}/v1/models`, { headers: { 'x-request-id': id } });
    const size = Buffer.byteLength(await listed.text());
    await waitFor('the /v1/models request logged', () => gateway.logs.some((l) => l.msg === 'Request Handled' && l['requestId'] === id));
    const line = gateway.logs.find((l) => l.msg === 'Request Handled' && l['requestId'] === id);
    assert.equal(line?.['bytesOut'], size);
  });

  test('errors: 404 for no route, 400 for bad JSON and for a missing model, with OpenAI bodies', async () => {
    const noRoute = await fetch(`${base}/other`, { method: 'POST', body: '{}' });
    assert.equal(noRoute.status, 404);
    assert.equal(((await noRoute.json()) as { error: { code: string } }).error.code, 'route_not_found');

    const badJson = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": ' });
    assert.equal(badJson.status, 400);
    const badBody = (await badJson.json()) as { error: { code: string; type: string; message: string } };
    assert.equal(badBody.error.code, 'invalid_json');
    assert.equal(badBody.error.type, 'invalid_request_error');

    const noModel = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt":"hi"}' });
    assert.equal(noModel.status, 400);
    assert.equal(((await noModel.json()) as { error: { code: string } }).error.code, 'missing_model');
  });

  test('every request leaves one Request Handled log line naming pod, pool and models', async () => {
    const r = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'trace-me-123' },
      body: JSON.stringify({ model: 'travelhelper', prompt: 'hello', max_tokens: 2 }),
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-request-id'), 'trace-me-123');
    const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === 'trace-me-123');
    assert.equal(line['status'], 200);
    assert.equal(line['model'], 'travelhelper');
    assert.equal(line['pod'], r.headers.get('x-sim-pod'));
    assert.equal(line['targetModel'], r.headers.get('x-sim-model'));
    assert.match(String(line['pool']), /^default\/pool-v[12]$/);
  });
});
