import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import OpenAI from 'openai';
import { tokenize } from '../../src/sim/engine/index.js';
import { embeddingVector, type RunningSimServer } from '../../src/sim/index.js';
import { filler, post, scrape, tinyServer } from './helpers.js';

const client = (s: RunningSimServer): OpenAI => new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });

const norm = (v: readonly number[]): number => Math.sqrt(v.reduce((sum, x) => sum + x * x, 0));

interface EmbeddingBody {
  object: string;
  model: string;
  id?: string;
  data: Array<{ object: string; index: number; embedding: number[] | string }>;
  usage: { prompt_tokens: number; total_tokens: number };
}

describe('POST /v1/embeddings', () => {
  test('the official client (base64 by default) gets deterministic unit vectors of the default dimension', async () => {
    const s = await tinyServer();
    try {
      const text = 'The quick brown fox';
      const result = await client(s).embeddings.create({ model: 'mymodel', input: [text, 'something else'] });
      assert.equal(result.object, 'list');
      assert.equal(result.model, 'mymodel');
      assert.deepEqual(result.data.map((d) => [d.object, d.index, d.embedding.length]), [
        ['embedding', 0, 384],
        ['embedding', 1, 384],
      ]);
      const [a, b] = result.data.map((d) => d.embedding);
      assert.ok(Math.abs(norm(a ?? []) - 1) < 1e-5);
      assert.notDeepEqual(a, b, 'different texts, different vectors');
      assert.deepEqual(a, embeddingVector(tokenize(text), 'mymodel', 384), 'decoded base64 equals the float32 vector');
      // The same text asked for as floats gives the same numbers.
      const floats = (await (await post(s, '/v1/embeddings', { model: 'mymodel', input: text, encoding_format: 'float' })).json()) as EmbeddingBody;
      assert.deepEqual(floats.data[0]?.embedding, a);
      const promptTokens = tokenize(text).length + tokenize('something else').length;
      assert.deepEqual([result.usage.prompt_tokens, result.usage.total_tokens], [promptTokens, promptTokens]);
    } finally {
      await s.close();
    }
  });

  test('dimensions shortens the vector and keeps it unit length; token-id inputs are embedded as given', async () => {
    const s = await tinyServer({ runtime: 'sglang', embeddingDimension: 128 });
    try {
      const result = await client(s).embeddings.create({ model: 'mymodel', input: 'matryoshka', dimensions: 32, encoding_format: 'float' });
      const v = result.data[0]?.embedding ?? [];
      assert.equal(v.length, 32);
      assert.ok(Math.abs(norm(v) - 1) < 1e-5);
      const ids = [101, 202, 303];
      const byIds = (await (await post(s, '/v1/embeddings', { model: 'mymodel', input: [ids, ids.slice(0, 2)] })).json()) as EmbeddingBody;
      assert.equal(byIds.data.length, 2);
      assert.deepEqual(byIds.data[0]?.embedding, embeddingVector(ids, 'mymodel', 128));
      assert.equal(byIds.usage.prompt_tokens, 5);
      assert.equal(byIds.id, undefined, 'SGLang prints no id');
    } finally {
      await s.close();
    }
  });

  test('each input is a prefill through the engine: it takes steps and KV, shows in /metrics, and produces no text', async () => {
    const s = await tinyServer();
    try {
      const input = [filler(100), filler(60)];
      const before = s.engine.stats();
      const r = await post(s, '/v1/embeddings', { model: 'mymodel', input });
      assert.equal(r.status, 200);
      const body = (await r.json()) as EmbeddingBody;
      assert.match(body.id ?? '', /^embd-/);
      const after = s.engine.stats();
      assert.equal(after.promptTokensTotal - before.promptTokensTotal, body.usage.prompt_tokens);
      assert.ok(after.stepsTotal > before.stepsTotal);
      assert.ok(after.prefixQueriesTokens > before.prefixQueriesTokens, 'the prompts went through the prefix cache');
      assert.ok(!JSON.stringify(body).includes('mymodel:'), 'no generated text in the answer');
      assert.match(await scrape(s), new RegExp(`^vllm:prompt_tokens_total\\{[^}]*\\} ${body.usage.prompt_tokens}\\.0$`, 'm'));
      assert.deepEqual(s.stats(), { received: 1, served: 1, inFlight: 0, aborted: 0 });
    } finally {
      await s.close();
    }
  });

  test('hostile input is bounded and refused with 400 in the face shape', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ model: 'mymodel', input: '' }, /must not be empty/],
      [{ model: 'mymodel', input: [] }, /non-empty/],
      [{ model: 'mymodel', input: Array(2049).fill('x') }, /at most 2048/],
      [{ model: 'mymodel', input: [[1, -2]] }, /token ids/],
      [{ model: 'mymodel', input: [1.5] }, /token ids/],
      [{ model: 'mymodel', input: 'x', dimensions: 385 }, /dimensions must be an integer from 1 to 384/],
      [{ model: 'mymodel', input: 'x', encoding_format: 'int8' }, /encoding_format/],
      [{ model: 'mymodel', input: filler(2000) }, /maximum context length is 1024 tokens\. However, you requested \d+ tokens in the input for embedding generation/],
    ];
    for (const runtime of ['vllm', 'vllm-v0', 'sglang'] as const) {
      const s = await tinyServer({ runtime });
      try {
        for (const [body, message] of cases) {
          const r = await post(s, '/v1/embeddings', body);
          assert.equal(r.status, 400, `${runtime} ${JSON.stringify(body).slice(0, 60)}`);
          const b = (await r.json()) as { error?: { message: string }; object?: string; message?: string };
          assert.match(runtime === 'vllm' ? (b.error?.message ?? '') : (b.message ?? ''), message);
          if (runtime !== 'vllm') assert.equal(b.object, 'error');
        }
        const unknown = await post(s, '/v1/embeddings', { model: 'nope', input: 'x' });
        assert.equal(unknown.status, 404);
        assert.equal(s.stats().served + s.stats().inFlight, 0);
        assert.equal(s.engine.stats().promptTokensTotal, 0, 'nothing reached the engine');
      } finally {
        await s.close();
      }
    }
  });

  test('Triton with TensorRT-LLM does not embed: 400 {"detail": …} from the frontend', async () => {
    const s = await tinyServer({ runtime: 'trtllm' });
    try {
      const r = await post(s, '/v1/embeddings', { model: 'mymodel', input: 'hello' });
      assert.equal(r.status, 400);
      assert.match(((await r.json()) as { detail: string }).detail, /only the vLLM backend serves \/v1\/embeddings/);
      const unknown = await post(s, '/v1/embeddings', { model: 'nope', input: 'hello' });
      assert.deepEqual(await unknown.json(), { detail: 'Unknown model: nope' });
      assert.equal(s.engine.stats().promptTokensTotal, 0);
      assert.equal(s.stats().received, 2, 'the route exists and read both bodies');
    } finally {
      await s.close();
    }
  });
});
