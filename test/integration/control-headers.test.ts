import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { answer, chatRequest, jsonBody, startFakeEnv, type FakeEnv } from '../support/fake-engines.js';

/*
 * The client's control headers through the standalone proxy: the Inference Extension's
 * `x-gateway-*` names and llm-d's newer `x-llm-d-*` ones are read by the gateway, the
 * `x-gateway-*` name wins when both are sent, and none of them reaches the model server (other
 * headers, such as the PD sidecar's `x-prefiller-host-port`, pass).
 */

const A = '127.0.7.41';

describe('control headers through the proxy', { timeout: 60_000 }, () => {
  let env: FakeEnv;

  before(async () => {
    env = await startFakeEnv({ [A]: (_req, res, seen) => answer(res, seen) }, { a: A });
  });

  after(async () => {
    await env?.close();
  });

  async function send(headers: Record<string, string>): Promise<{ model: string | undefined; seen: Record<string, unknown> }> {
    const before = env.fakes.seen.length;
    const res = await fetch(`${env.base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: chatRequest(false) });
    assert.equal(res.status, 200, await res.clone().text());
    await res.arrayBuffer();
    const seen = env.fakes.seen[before];
    assert.ok(seen !== undefined, 'the model server got the request');
    return { model: jsonBody(seen).model, seen: seen.headers };
  }

  test('llm-d names are honoured and stripped', async () => {
    const { model, seen } = await send({
      'x-llm-d-model-name-rewrite': 'rewritten-by-llm-d',
      'x-llm-d-inference-objective': 'whatever',
      'x-llm-d-inference-fairness-id': 'tenant-a',
      'x-prefiller-host-port': '10.0.0.1:8000',
    });
    assert.equal(model, 'rewritten-by-llm-d', 'x-llm-d-model-name-rewrite named the target');
    for (const name of ['x-llm-d-model-name-rewrite', 'x-llm-d-inference-objective', 'x-llm-d-inference-fairness-id']) assert.equal(seen[name], undefined, `${name} reached the model server`);
    assert.equal(seen['x-prefiller-host-port'], '10.0.0.1:8000', 'headers that are not the gateway’s pass');
  });

  test('x-gateway-* wins over x-llm-d-* when both are sent; both are stripped', async () => {
    const { model, seen } = await send({ 'x-llm-d-model-name-rewrite': 'from-llm-d', 'x-gateway-model-name-rewrite': 'from-gateway', 'x-gateway-inference-fairness-id': 'tenant-b' });
    assert.equal(model, 'from-gateway');
    for (const name of ['x-llm-d-model-name-rewrite', 'x-gateway-model-name-rewrite', 'x-gateway-inference-fairness-id']) assert.equal(seen[name], undefined, `${name} reached the model server`);
  });
});
