import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateAnswer, renderChat, tokenize } from '../../src/sim/engine/index.js';
import type { SimRuntime } from '../../src/sim/index.js';
import { post, sseEvents, tinyServer, until, type Completion } from './helpers.js';

describe('OpenAI routes', () => {
  test('chat, non-streaming: the engine answer, usage with cached tokens, headers naming the pod', async () => {
    const s = await tinyServer({ name: 'pod-a' });
    try {
      const messages = [{ role: 'user', content: 'hello there' }];
      const r = await post(s, '/v1/chat/completions', { model: 'mymodel', messages, max_tokens: 6, temperature: 0.7 });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-sim-pod'), 'pod-a');
      assert.equal(r.headers.get('x-sim-port'), String(s.port));
      assert.equal(r.headers.get('x-sim-model'), 'mymodel');
      assert.equal(r.headers.get('x-sim-runtime'), 'vllm');
      assert.ok(Number(r.headers.get('x-sim-ttft-ms')) > 0);
      const body = (await r.json()) as Completion;
      assert.equal(body.object, 'chat.completion');
      assert.match(body.id, /^chatcmpl-/);
      assert.equal(body.model, 'mymodel');
      // Deterministic: the engine's answer for this prompt and model, starting with the model name.
      const expected = generateAnswer(tokenize(renderChat(messages)), 'mymodel', 6);
      assert.equal(body.choices[0]?.message?.content, expected.texts.join(''));
      assert.match(body.choices[0]?.message?.content ?? '', /^ mymodel:/);
      assert.equal(body.choices[0]?.finish_reason, 'length');
      const promptTokens = tokenize(renderChat(messages)).length;
      assert.deepEqual(body.usage, { prompt_tokens: promptTokens, total_tokens: promptTokens + 6, completion_tokens: 6, prompt_tokens_details: { cached_tokens: 0 } });
      assert.deepEqual(s.stats(), { received: 1, served: 1, inFlight: 0, aborted: 0 });
    } finally {
      await s.close();
    }
  });

  test('completions, streaming with include_usage: text chunks, the finish reason on the last, one usage chunk, [DONE]', async () => {
    const s = await tinyServer();
    try {
      const r = await post(s, '/v1/completions', { model: 'mymodel', prompt: ['say something'], max_tokens: 5, stream: true, stream_options: { include_usage: true } });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
      const events = sseEvents(await r.text());
      assert.equal(events.at(-1), '[DONE]');
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { object: string; choices: Array<{ text: string; finish_reason: string | null }>; usage?: { completion_tokens: number } });
      const usage = chunks.at(-1);
      assert.deepEqual(usage?.choices, []);
      assert.equal(usage?.usage?.completion_tokens, 5);
      const content = chunks.slice(0, -1);
      assert.equal(content.length, 5, 'one chunk per token');
      assert.ok(content.every((c) => c.object === 'text_completion'));
      assert.deepEqual(content.map((c) => c.choices[0]?.finish_reason), [null, null, null, null, 'length']);
      assert.equal(content.map((c) => c.choices[0]?.text).join(''), generateAnswer(tokenize('say something'), 'mymodel', 5).texts.join(''));
    } finally {
      await s.close();
    }
  });

  test('chat streaming: the first chunk carries the assistant role with empty content; no usage chunk unless asked', async () => {
    const s = await tinyServer();
    try {
      const r = await post(s, '/v1/chat/completions', { model: 'mymodel', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, stream: true });
      const events = sseEvents(await r.text());
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { object: string; choices: Array<{ delta: Record<string, string>; finish_reason: string | null }> });
      assert.deepEqual(chunks[0]?.choices[0]?.delta, { role: 'assistant', content: '' });
      assert.equal(chunks.length, 4, 'role chunk + 3 tokens');
      assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk' && c.choices.length === 1));
      assert.equal(chunks.at(-1)?.choices[0]?.finish_reason, 'length');
    } finally {
      await s.close();
    }
  });

  test('ignore_eos generates exactly max_tokens; without it the natural length (16..256 tokens) ends with "stop"', async () => {
    const s = await tinyServer();
    try {
      const long = (await (await post(s, '/v1/completions', { model: 'mymodel', prompt: 'count', max_tokens: 300, ignore_eos: true })).json()) as Completion;
      assert.equal(long.usage.completion_tokens, 300);
      assert.equal(long.choices[0]?.finish_reason, 'length');
      const natural = (await (await post(s, '/v1/completions', { model: 'mymodel', prompt: 'count', max_tokens: 300 })).json()) as Completion;
      assert.ok(natural.usage.completion_tokens >= 16 && natural.usage.completion_tokens <= 256);
      assert.equal(natural.choices[0]?.finish_reason, 'stop');
    } finally {
      await s.close();
    }
  });

  test('odd client input is a 400 or served, never a 500: content parts that are not objects, model names no header can carry', async () => {
    const s = await tinyServer();
    try {
      for (const content of [[null], [1], ['text'], [[]], [{ text: 'no type' }]]) {
        const r = await post(s, '/v1/chat/completions', { model: 'mymodel', max_tokens: 2, messages: [{ role: 'user', content }] });
        assert.equal(r.status, 400, JSON.stringify(content));
        assert.match(((await r.json()) as { error: { message: string } }).error.message, /content part/);
      }
      for (const model of ['mymodel\u0000x', 'mymodel\r\nX-Evil: 1', '\ud800', 'модель', '🦙']) {
        const r = await post(s, '/v1/chat/completions', { model, max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] });
        assert.ok(r.status < 500, `${JSON.stringify(model)}: ${r.status}`);
        assert.equal(r.headers.get('x-sim-model'), '', 'not echoed where a header cannot carry it');
      }
    } finally {
      await s.close();
    }
  });

  test('token-id prompts are served; batches of several prompts and n > 1 are refused clearly', async () => {
    const s = await tinyServer();
    try {
      const ids = (await (await post(s, '/v1/completions', { model: 'mymodel', prompt: [1, 2, 3, 4], max_tokens: 2 })).json()) as Completion;
      assert.equal(ids.usage.prompt_tokens, 4);
      const batch = await post(s, '/v1/completions', { model: 'mymodel', prompt: ['a', 'b'] });
      assert.equal(batch.status, 400);
      assert.match(((await batch.json()) as { error: { message: string } }).error.message, /one prompt per request.*2 prompts/);
      const n = await post(s, '/v1/chat/completions', { model: 'mymodel', messages: [{ role: 'user', content: 'x' }], n: 2 });
      assert.equal(n.status, 400);
      assert.match(((await n.json()) as { error: { message: string } }).error.message, /n=1/);
    } finally {
      await s.close();
    }
  });

  test('streaming is incremental: the first event arrives while the engine is still generating', async () => {
    // Real time, 25 ms per step: 10 tokens take a quarter of a second of wall time.
    const s = await tinyServer({ timeScale: 1, overrides: { decodeFloorMs: 25 } });
    try {
      const r = await post(s, '/v1/chat/completions', { model: 'mymodel', messages: [{ role: 'user', content: 'go' }], max_tokens: 10, ignore_eos: true, stream: true });
      const reader = (r.body as ReadableStream<Uint8Array>).getReader();
      const first = await reader.read();
      assert.match(new TextDecoder().decode(first.value), /^data: /);
      assert.equal(s.stats().inFlight, 1, 'the request is still in flight on the server');
      assert.equal(s.engine.stats().running, 1, 'and running in the engine');
      assert.ok(s.engine.stats().generationTokensTotal < 10);
      let reads = 1;
      while (!(await reader.read()).done) reads++;
      assert.ok(reads >= 5, `tokens arrive in separate writes (${reads} reads)`);
      assert.deepEqual(s.stats(), { received: 1, served: 1, inFlight: 0, aborted: 0 });
    } finally {
      await s.close();
    }
  });

  test('a client that disconnects aborts the engine request', async () => {
    const s = await tinyServer({ timeScale: 1, overrides: { decodeFloorMs: 50 } });
    try {
      const controller = new AbortController();
      const r = await post(s, '/v1/completions', { model: 'mymodel', prompt: 'go', max_tokens: 50, ignore_eos: true, stream: true }, {}, controller.signal);
      const reader = (r.body as ReadableStream<Uint8Array>).getReader();
      await reader.read();
      controller.abort();
      await until('the abort', () => (s.stats().aborted === 1 ? true : undefined));
      assert.deepEqual(s.stats(), { received: 1, served: 0, inFlight: 0, aborted: 1 });
      const e = s.engine.stats();
      assert.equal(e.requestSuccessTotal.abort, 1);
      assert.equal(e.running + e.waiting, 0);
      assert.ok(e.generationTokensTotal < 50);
    } finally {
      await s.close();
    }
  });

  test('test hooks: x-sim-reset before-headers and mid-stream destroy the connection', async () => {
    const s = await tinyServer();
    try {
      await assert.rejects(post(s, '/v1/completions', { model: 'mymodel', prompt: 'x' }, { 'x-sim-reset': 'before-headers' }));
      const r = await post(s, '/v1/completions', { model: 'mymodel', prompt: 'a b c', max_tokens: 10, ignore_eos: true, stream: true }, { 'x-sim-reset': 'mid-stream' });
      assert.equal(r.status, 200);
      const reader = (r.body as ReadableStream<Uint8Array>).getReader();
      let text = '';
      await assert.rejects(async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          text += new TextDecoder().decode(value);
        }
      });
      assert.equal(sseEvents(text).length, 5, 'half of the 10 tokens, then the reset');
      await until('the engine to drop the request', () => (s.engine.stats().running === 0 ? true : undefined));
      assert.equal(s.stats().inFlight, 0);
    } finally {
      await s.close();
    }
  });

  test('x-sim-first-token-delay-ms delays the submission by wall-clock time', async () => {
    const s = await tinyServer();
    try {
      const pending = post(s, '/v1/completions', { model: 'mymodel', prompt: 'x', max_tokens: 1 }, { 'x-sim-first-token-delay-ms': '150' });
      await until('the request to be accepted', () => (s.stats().inFlight === 1 ? true : undefined));
      assert.equal(s.engine.stats().arriving + s.engine.stats().waiting + s.engine.stats().running, 0, 'not yet in the engine');
      assert.equal((await pending).status, 200);
    } finally {
      await s.close();
    }
  });

  test('/v1/models lists the base model and the adapters with vLLM ModelCard fields', async () => {
    const s = await tinyServer({ model: ['base', 'alias'], loras: ['ad-1'] });
    try {
      const body = (await (await fetch(`${s.url}/v1/models`)).json()) as { object: string; data: Array<Record<string, unknown>> };
      assert.equal(body.object, 'list');
      assert.deepEqual(body.data.map((m) => [m['id'], m['parent'], m['max_model_len'], m['owned_by']]), [
        ['base', null, 1024, 'vllm'],
        ['alias', null, 1024, 'vllm'],
        ['ad-1', 'base', null, 'vllm'],
      ]);
      assert.ok(body.data.every((m) => m['object'] === 'model' && Array.isArray(m['permission']) && typeof m['root'] === 'string'));
    } finally {
      await s.close();
    }
  });

  test('health routes per runtime: vLLM /health, SGLang /health and /health_generate, Triton /health/ready', async () => {
    const cases: Array<[SimRuntime, string[], string]> = [
      ['vllm', ['/health', '/ping'], '/health/ready'],
      ['vllm-v0', ['/health'], '/health_generate'],
      ['sglang', ['/health', '/health_generate'], '/health/ready'],
      ['trtllm', ['/health/ready'], '/health'],
    ];
    for (const [runtime, ok, missing] of cases) {
      const s = await tinyServer({ runtime });
      try {
        for (const path of ok) {
          const r = await fetch(`${s.url}${path}`);
          assert.equal(r.status, 200, `${runtime} ${path}`);
          assert.equal(await r.text(), '', `${runtime} ${path} has an empty body`);
        }
        const r = await fetch(`${s.url}${missing}`);
        assert.equal(r.status, 404, `${runtime} has no ${missing}`);
        assert.deepEqual(await r.json(), { detail: 'Not Found' });
      } finally {
        await s.close();
      }
    }
  });

  test('/v1/models per runtime', async () => {
    for (const [runtime, owner] of [['sglang', 'sglang'], ['trtllm', 'Triton Inference Server']] as const) {
      const s = await tinyServer({ runtime });
      try {
        const body = (await (await fetch(`${s.url}/v1/models`)).json()) as { data: Array<Record<string, unknown>> };
        assert.equal(body.data[0]?.['id'], 'mymodel');
        assert.equal(body.data[0]?.['owned_by'], owner);
      } finally {
        await s.close();
      }
    }
  });
});

describe('error bodies per runtime', () => {
  const unknown = { model: 'no-such-model', prompt: 'hi' };
  const tooLong = { model: 'mymodel', prompt: 'hi', max_tokens: 5000 };
  const optionsWithoutStream = { model: 'mymodel', prompt: 'hi', stream_options: { include_usage: true } };
  const contextMessage = /^This model's maximum context length is 1024 tokens\. However, you requested 5001 tokens \(1 in the messages, 5000 in the completion\)\./;

  test('vLLM V1 (>= 0.10.1): nested {"error": {...}}', async () => {
    const s = await tinyServer({ runtime: 'vllm' });
    try {
      const r404 = await post(s, '/v1/completions', unknown);
      assert.equal(r404.status, 404);
      assert.deepEqual(await r404.json(), { error: { message: 'The model `no-such-model` does not exist.', type: 'NotFoundError', param: null, code: 404 } });
      const r400 = await post(s, '/v1/completions', tooLong);
      assert.equal(r400.status, 400);
      const b400 = (await r400.json()) as { error: { message: string; type: string; code: number } };
      assert.equal(b400.error.type, 'BadRequestError');
      assert.equal(b400.error.code, 400);
      assert.match(b400.error.message, contextMessage);
      const rOpt = await post(s, '/v1/chat/completions', { ...optionsWithoutStream, messages: [{ role: 'user', content: 'x' }] });
      assert.equal(rOpt.status, 400);
      assert.equal(((await rOpt.json()) as { error: { message: string } }).error.message, 'Stream options can only be defined when `stream=True`.');
      const bad = await post(s, '/v1/completions', '{"model": ');
      assert.equal(bad.status, 400);
      assert.equal(((await bad.json()) as { error: { type: string } }).error.type, 'BadRequestError');
      assert.equal(s.stats().served + s.stats().inFlight, 0, 'refused requests are not counted');
    } finally {
      await s.close();
    }
  });

  test('vLLM V0: flat {"object":"error", ...}', async () => {
    const s = await tinyServer({ runtime: 'vllm-v0' });
    try {
      const r = await post(s, '/v1/completions', unknown);
      assert.equal(r.status, 404);
      assert.deepEqual(await r.json(), { object: 'error', message: 'The model `no-such-model` does not exist.', type: 'NotFoundError', param: null, code: 404 });
      const r400 = await post(s, '/v1/completions', tooLong);
      const b = (await r400.json()) as { object: string; type: string; message: string };
      assert.equal(r400.status, 400);
      assert.equal(b.object, 'error');
      assert.match(b.message, contextMessage);
    } finally {
      await s.close();
    }
  });

  test('SGLang: flat, type = the HTTP reason phrase', async () => {
    const s = await tinyServer({ runtime: 'sglang' });
    try {
      const r = await post(s, '/v1/completions', unknown);
      assert.equal(r.status, 404);
      assert.deepEqual(await r.json(), { object: 'error', message: 'The model `no-such-model` does not exist.', type: 'Not Found', param: null, code: 404 });
      const r400 = await post(s, '/v1/completions', tooLong);
      const b = (await r400.json()) as { type: string; code: number; message: string };
      assert.equal(r400.status, 400);
      assert.equal(b.type, 'Bad Request');
      assert.match(b.message, contextMessage);
    } finally {
      await s.close();
    }
  });

  test("Triton's OpenAI frontend: 400 {\"detail\": ...} for client errors, default max_tokens 16, finish_reason stop", async () => {
    const s = await tinyServer({ runtime: 'trtllm' });
    try {
      const r = await post(s, '/v1/completions', unknown);
      assert.equal(r.status, 400);
      assert.deepEqual(await r.json(), { detail: 'Unknown model: no-such-model' });
      const rOpt = await post(s, '/v1/completions', optionsWithoutStream);
      assert.deepEqual(await rOpt.json(), { detail: '`stream_options` can only be used when `stream` is True' });
      const ok = (await (await post(s, '/v1/completions', { model: 'mymodel', prompt: 'hi', ignore_eos: true })).json()) as Completion;
      assert.equal(ok.usage.completion_tokens, 16);
      assert.equal(ok.choices[0]?.finish_reason, 'stop');
    } finally {
      await s.close();
    }
  });
});

describe('vLLM runtime LoRA updating', () => {
  test('off by default, as in vLLM without VLLM_ALLOW_RUNTIME_LORA_UPDATING: the routes do not exist', async () => {
    const s = await tinyServer();
    try {
      const r = await post(s, '/v1/load_lora_adapter', { lora_name: 'x', lora_path: '/p' });
      assert.equal(r.status, 404);
      assert.deepEqual(await r.json(), { detail: 'Not Found' });
    } finally {
      await s.close();
    }
  });

  test('load / unload contract: plain-text successes, 400 InvalidUserInput, 404 NotFoundError', async () => {
    const s = await tinyServer({ runtimeLoraUpdating: true });
    try {
      const load = await post(s, '/v1/load_lora_adapter', { lora_name: 'sql_adapter', lora_path: '/adapters/sql' });
      assert.equal(load.status, 200);
      assert.match(load.headers.get('content-type') ?? '', /^text\/plain/);
      assert.equal(await load.text(), "Success: LoRA adapter 'sql_adapter' added successfully.");

      const again = await post(s, '/v1/load_lora_adapter', { lora_name: 'sql_adapter', lora_path: '/adapters/sql' });
      assert.equal(again.status, 400);
      assert.deepEqual(await again.json(), { error: { message: "The lora adapter 'sql_adapter' has already been loaded.", type: 'InvalidUserInput', param: null, code: 400 } });
      const missing = await post(s, '/v1/load_lora_adapter', { lora_name: 'x' });
      assert.equal(missing.status, 400);
      assert.equal(((await missing.json()) as { error: { message: string } }).error.message, "Both 'lora_name' and 'lora_path' must be provided.");

      const models = (await (await fetch(`${s.url}/v1/models`)).json()) as { data: Array<{ id: string; parent: string | null; root: string }> };
      const adapter = models.data.find((m) => m.id === 'sql_adapter');
      assert.equal(adapter?.parent, 'mymodel');
      assert.equal(adapter?.root, '/adapters/sql');
      const served = (await (await post(s, '/v1/completions', { model: 'sql_adapter', prompt: 'select', max_tokens: 4 })).json()) as Completion;
      assert.match(served.choices[0]?.text ?? '', /^ sql_adapter:/);

      const unload = await post(s, '/v1/unload_lora_adapter', { lora_name: 'sql_adapter' });
      assert.equal(unload.status, 200);
      assert.equal(await unload.text(), "Success: LoRA adapter 'sql_adapter' removed successfully.");
      const unknown = await post(s, '/v1/unload_lora_adapter', { lora_name: 'sql_adapter' });
      assert.equal(unknown.status, 404);
      assert.deepEqual(await unknown.json(), { error: { message: "The lora adapter 'sql_adapter' cannot be found.", type: 'NotFoundError', param: null, code: 404 } });
      assert.equal((await post(s, '/v1/completions', { model: 'sql_adapter', prompt: 'select' })).status, 404);
    } finally {
      await s.close();
    }
  });
});
