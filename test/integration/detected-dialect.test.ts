import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GatewayProcess } from '../support/gateway-process.js';
import { startGatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';
import { handled, startPods, waitFor, type SimPods } from '../support/smart.js';

/**
 * The quick start against Triton servers older than 25.11 (which refuse `stream_options`):
 * `infergate serve --backend …` has no runtime annotation, so the pool's runtime is vLLM; the
 * scraper detects the endpoints' dialect from their /metrics page, and the gateway must decide
 * on that, not on the pool: no `stream_options` added, tokens counted from the stream.
 */
describe('serve --backend over Triton before 25.11 (dialect detected from /metrics)', { timeout: 120_000 }, () => {
  let pods: SimPods;
  let gateway: GatewayProcess;
  let base: string;

  before(async () => {
    pods = await startPods([
      // 2.55: 422 for any stream_options; 2.61: 400 for include_usage on a TensorRT-LLM model.
      { name: 'triton-55', host: '127.0.63.2', runtime: 'trtllm', tritonVersion: '2.55', profile: 'tiny', timeScale: 20, model: 'tq' },
      { name: 'triton-61', host: '127.0.63.3', runtime: 'trtllm', tritonVersion: '2.61', profile: 'tiny', timeScale: 20, model: 'tq' },
    ]);
    const port = await freePort();
    gateway = await startGatewayProcess(['--backend', `http://127.0.63.2:${pods.port}`, '--backend', `http://127.0.63.3:${pods.port}`, '--port', String(port), '--scrape-timeout', '10000', '--metrics-staleness', '10000']);
    base = `http://127.0.0.1:${port}`;
    await waitFor('both endpoints detected as trt-llm', async () => {
      const r = await fetch(`http://127.0.0.1:${gateway.adminPort}/debug/endpoints`);
      const { pools } = (await r.json()) as { pools: { endpoints: { dialect?: string; metrics: unknown }[] }[] };
      const endpoints = pools.flatMap((p) => p.endpoints);
      return endpoints.length === 2 && endpoints.every((e) => e.dialect === 'trt-llm' && e.metrics !== null);
    }, 60_000);
  });

  after(async () => {
    await gateway?.stop();
    await pods?.close();
  });

  test('a plain stream (no stream_options) is answered, with its tokens counted', async () => {
    const pods = new Set<string>();
    for (let i = 0; i < 8; i++) {
      const id = `plain-${i}`;
      const r = await fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': id },
        body: JSON.stringify({ model: 'tq', stream: true, max_tokens: 5, messages: [{ role: 'user', content: `hello ${i}` }] }),
      });
      const text = await r.text();
      assert.equal(r.status, 200, text);
      assert.match(text, /data: \[DONE\]/);
      assert.doesNotMatch(text, /"error"/);
      pods.add(r.headers.get('x-sim-pod') ?? '');
      const line = await handled(gateway, id);
      assert.equal(line['status'], 200);
      assert.equal(line['usageEstimated'], true);
      assert.equal(line['completionTokens'], 5, 'one token per streamed event');
    }
    assert.ok(pods.size >= 1);
  });

  test('completions too; a non-streamed request keeps the server\'s own usage', async () => {
    const s = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tq', stream: true, max_tokens: 4, prompt: 'hi' }) });
    assert.equal(s.status, 200, await s.clone().text());
    assert.match(await s.text(), /data: \[DONE\]/);
    const whole = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tq', max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] }) });
    assert.equal(whole.status, 200);
    const body = (await whole.json()) as { usage?: { completion_tokens: number } };
    assert.equal(body.usage?.completion_tokens, 4);
  });
});
