import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import OpenAI from 'openai';
import { post, tinyServer } from './helpers.js';

interface Card {
  id: string;
  object: string;
  owned_by: string;
  root?: string;
  parent?: string | null;
  max_model_len?: number | null;
}

const list = async (url: string): Promise<Card[]> => ((await (await fetch(`${url}/v1/models`)).json()) as { data: Card[] }).data;

describe('GET /v1/models and /v1/models/{id} per runtime', () => {
  test('vLLM lists every served name and every adapter (parent = the base name, root = the path); the official client reads it', async () => {
    for (const runtime of ['vllm', 'vllm-v0'] as const) {
      const s = await tinyServer({ runtime, model: ['base', 'alias'], loras: ['sql'], runtimeLoraUpdating: true });
      try {
        const load = await post(s, '/v1/load_lora_adapter', { lora_name: 'travel', lora_path: '/adapters/travel' });
        assert.equal(load.status, 200);
        await load.text();
        const cards = await list(s.url);
        assert.deepEqual(cards.map((c) => [c.id, c.parent, c.root, c.max_model_len]), [
          ['base', null, 'base', 1024],
          ['alias', null, 'base', 1024],
          ['sql', 'base', 'sql', null],
          ['travel', 'base', '/adapters/travel', null],
        ]);
        const viaClient = [];
        for await (const m of new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 }).models.list()) viaClient.push(m.id);
        assert.deepEqual(viaClient, ['base', 'alias', 'sql', 'travel']);
        // vLLM's OpenAI server has no retrieve route.
        const one = await fetch(`${s.url}/v1/models/base`);
        assert.equal(one.status, 404);
        assert.deepEqual(await one.json(), { detail: 'Not Found' });
      } finally {
        await s.close();
      }
    }
  });

  test('SGLang lists base and adapters (adapters without max_model_len); /v1/models/{id} finds served names only', async () => {
    const s = await tinyServer({ runtime: 'sglang', loras: ['sql'] });
    try {
      assert.deepEqual((await list(s.url)).map((c) => [c.id, c.owned_by, c.parent, c.max_model_len]), [
        ['mymodel', 'sglang', null, 1024],
        ['sql', 'sglang', 'mymodel', null],
      ]);
      const base = await fetch(`${s.url}/v1/models/mymodel`);
      assert.equal(base.status, 200);
      const { created, ...rest } = (await base.json()) as Card & { created: unknown };
      assert.equal(typeof created, 'number');
      assert.deepEqual(rest, { id: 'mymodel', object: 'model', owned_by: 'sglang', root: 'mymodel', parent: null, max_model_len: 1024 });
      for (const id of ['sql', 'nope']) {
        const r = await fetch(`${s.url}/v1/models/${id}`);
        assert.equal(r.status, 404, id);
        assert.deepEqual(await r.json(), { error: { message: `The model '${id}' does not exist`, type: 'invalid_request_error', param: 'model', code: 'model_not_found' } });
      }
    } finally {
      await s.close();
    }
  });

  test('Triton (TensorRT-LLM) lists its base models only; /v1/models/{name} answers the card or 404 Unknown model', async () => {
    const s = await tinyServer({ runtime: 'trtllm', loras: ['sql'] });
    try {
      assert.deepEqual((await list(s.url)).map((c) => [c.id, c.owned_by]), [['mymodel', 'Triton Inference Server']]);
      const card = (await (await fetch(`${s.url}/v1/models/mymodel`)).json()) as Card;
      assert.deepEqual([card.id, card.object, card.owned_by], ['mymodel', 'model', 'Triton Inference Server']);
      const r = await fetch(`${s.url}/v1/models/sql`);
      assert.equal(r.status, 404);
      assert.deepEqual(await r.json(), { detail: 'Unknown model: sql' });
      // A malformed escape is an unknown name, not a crash.
      const odd = await fetch(`${s.url}/v1/models/%E0%A4%A`);
      assert.deepEqual(await odd.json(), { detail: 'Unknown model: %E0%A4%A' });
      assert.equal((await fetch(`${s.url}/health/ready`)).status, 200);
    } finally {
      await s.close();
    }
  });
});
