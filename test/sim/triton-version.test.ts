import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseTritonVersion } from '../../src/sim/index.js';
import { post, sseEvents, tinyServer } from './helpers.js';

const chat = { model: 'mymodel', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, stream: true };
const withUsage = { ...chat, stream_options: { include_usage: true } };

/** A stream's JSON chunks (without [DONE]), failing on a non-200 answer. */
async function streamed(r: Response): Promise<Array<{ choices: unknown[]; usage?: { completion_tokens: number } }>> {
  assert.equal(r.status, 200, await r.clone().text());
  const events = sseEvents(await r.text());
  assert.equal(events.at(-1), '[DONE]');
  return events.slice(0, -1).map((e) => JSON.parse(e) as { choices: unknown[]; usage?: { completion_tokens: number } });
}

describe('Triton OpenAI frontend versions and stream_options', () => {
  test('before 2.60 any body carrying stream_options is refused with FastAPI 422 (extra fields forbidden); a plain stream is served', async () => {
    const s = await tinyServer({ runtime: 'trtllm', tritonVersion: '2.59' });
    try {
      for (const path of ['/v1/chat/completions', '/v1/completions']) {
        const body = path === '/v1/completions' ? { model: 'mymodel', prompt: 'hi', stream: true, stream_options: { include_usage: true } } : withUsage;
        const r = await post(s, path, body);
        assert.equal(r.status, 422, path);
        assert.deepEqual(await r.json(), {
          detail: [{ type: 'extra_forbidden', loc: ['body', 'stream_options'], msg: 'Extra inputs are not permitted', input: { include_usage: true } }],
        });
      }
      // Even include_usage: false is an unknown field to that schema.
      assert.equal((await post(s, '/v1/chat/completions', { ...chat, stream_options: { include_usage: false } })).status, 422);
      const chunks = await streamed(await post(s, '/v1/chat/completions', chat));
      assert.ok(chunks.every((c) => c.usage === undefined));
      assert.equal(s.stats().served, 1, 'only the plain stream reached the engine');
    } finally {
      await s.close();
    }
  });

  test('2.60 to 2.62: include_usage is refused with 400 {"detail": …} for TensorRT-LLM; other stream_options and plain streams are served', async () => {
    for (const version of ['2.60', '2.62']) {
      const s = await tinyServer({ runtime: 'trtllm', tritonVersion: version });
      try {
        const r = await post(s, '/v1/chat/completions', withUsage);
        assert.equal(r.status, 400, version);
        assert.match(((await r.json()) as { detail: string }).detail, /include_usage/);
        await streamed(await post(s, '/v1/chat/completions', { ...chat, stream_options: { include_usage: false } }));
        await streamed(await post(s, '/v1/chat/completions', chat));
      } finally {
        await s.close();
      }
    }
  });

  test('2.63 (25.11) and the default: include_usage is served with the usage chunk', async () => {
    for (const options of [{ tritonVersion: '2.63' }, {}]) {
      const s = await tinyServer({ runtime: 'trtllm', ...options });
      try {
        const chunks = await streamed(await post(s, '/v1/chat/completions', withUsage));
        const last = chunks.at(-1);
        assert.deepEqual(last?.choices, []);
        assert.equal(last?.usage?.completion_tokens, 3);
      } finally {
        await s.close();
      }
    }
  });

  test('the version must be 2.N, and only for the trtllm runtime', async () => {
    assert.equal(parseTritonVersion('2.59'), 59);
    assert.equal(parseTritonVersion('2.63.1'), 63);
    assert.equal(parseTritonVersion('25.11'), undefined);
    await assert.rejects(tinyServer({ runtime: 'trtllm', tritonVersion: '25.11' }), /tritonVersion must look like "2.59"/);
    await assert.rejects(tinyServer({ runtime: 'vllm', tritonVersion: '2.59' }), /tritonVersion needs runtime trtllm/);
  });
});
