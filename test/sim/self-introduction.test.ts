import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { renderChat, tokenize } from '../../src/sim/engine/index.js';
import { post, sseEvents, tinyServer, type Completion } from './helpers.js';

const QWEN = '/models/Qwen-2.5-7B-Instruct';
const messages = [{ role: 'user', content: 'Who are you?' }];

interface Chunk {
  choices: Array<{ delta?: { content?: string } }>;
  usage?: { completion_tokens: number } | null;
}

describe('a simulated server answers as the model it stands for', () => {
  test('chat and completions start with "I am <model>" (and the adapter serving); usage counts the introduction as tokens', async () => {
    const s = await tinyServer({ model: 'mymodel', modelPath: QWEN, loras: ['travel-helper-v1'] });
    try {
      for (const [model, intro] of [
        ['mymodel', ' I am Qwen-2.5-7B-Instruct.'],
        ['travel-helper-v1', ' I am Qwen-2.5-7B-Instruct + LoRA travel-helper-v1.'],
      ] as const) {
        const r = await post(s, '/v1/chat/completions', { model, messages, max_tokens: 40 });
        assert.equal(r.status, 200);
        const body = (await r.json()) as Completion;
        const content = body.choices[0]?.message?.content ?? '';
        assert.ok(content.startsWith(intro), content);
        // The text is the tokens: usage adds up, and a client resending it is counted the same.
        assert.equal(tokenize(content).length, body.usage.completion_tokens);
        assert.equal(body.usage.prompt_tokens, tokenize(renderChat(messages)).length);
        assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + body.usage.completion_tokens);

        const c = await post(s, '/v1/completions', { model, prompt: 'Who are you?', max_tokens: 40 });
        const text = ((await c.json()) as Completion).choices[0]?.text ?? '';
        assert.ok(text.startsWith(intro), text);
      }
      // max_tokens bounds the introduction like any text.
      const short = (await (await post(s, '/v1/chat/completions', { model: 'mymodel', messages, max_tokens: 3 })).json()) as Completion;
      assert.equal(short.choices[0]?.message?.content, ' I am Qwen');
      assert.equal(short.usage.completion_tokens, 3);
      assert.equal(short.choices[0]?.finish_reason, 'length');
    } finally {
      await s.close();
    }
  });

  test('streamed answers carry the same introduction, token by token; the same seed gives the same answer', async () => {
    const s = await tinyServer({ modelPath: '/models/DeepSeek-R1-Distill-Qwen-7B' });
    try {
      const whole = (await (await post(s, '/v1/chat/completions', { model: 'mymodel', messages, max_tokens: 30 })).json()) as Completion;
      const r = await post(s, '/v1/chat/completions', { model: 'mymodel', messages, max_tokens: 30, stream: true, stream_options: { include_usage: true } });
      const chunks = sseEvents(await r.text())
        .filter((e) => e !== '[DONE]')
        .map((e) => JSON.parse(e) as Chunk);
      const streamed = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
      assert.ok(streamed.startsWith(' I am DeepSeek-R1-Distill-Qwen-7B.'), streamed);
      assert.equal(streamed, whole.choices[0]?.message?.content);
      assert.equal(chunks.at(-1)?.usage?.completion_tokens, tokenize(streamed).length);
    } finally {
      await s.close();
    }
  });

  test('without a model path the answer starts with the requested name, as before', async () => {
    const s = await tinyServer();
    try {
      const body = (await (await post(s, '/v1/chat/completions', { model: 'mymodel', messages, max_tokens: 6 })).json()) as Completion;
      assert.match(body.choices[0]?.message?.content ?? '', /^ mymodel:/);
    } finally {
      await s.close();
    }
  });

  test("/v1/models: vLLM's root is the model path; SGLang's is the served name, as each server lists it", async () => {
    const v = await tinyServer({ model: ['mymodel', 'alias'], modelPath: QWEN, loras: ['travel-helper-v1'] });
    const g = await tinyServer({ runtime: 'sglang', model: '/models/Qwen3-32B', modelPath: '/models/Qwen3-32B-FP8' });
    try {
      const vl = ((await (await fetch(`${v.url}/v1/models`)).json()) as { data: Array<{ id: string; root: string; parent: string | null }> }).data;
      assert.deepEqual(vl.map((c) => [c.id, c.root, c.parent]), [
        ['mymodel', QWEN, null],
        ['alias', QWEN, null],
        ['travel-helper-v1', 'travel-helper-v1', 'mymodel'],
      ]);
      const gl = ((await (await fetch(`${g.url}/v1/models`)).json()) as { data: Array<{ id: string; root: string }> }).data;
      assert.deepEqual(gl.map((c) => [c.id, c.root]), [['/models/Qwen3-32B', '/models/Qwen3-32B']]);
      const answer = (await (await post(g, '/v1/chat/completions', { model: '/models/Qwen3-32B', messages, max_tokens: 20 })).json()) as Completion;
      assert.ok(answer.choices[0]?.message?.content.startsWith(' I am Qwen3-32B-FP8.'));
    } finally {
      await v.close();
      await g.close();
    }
  });
});
