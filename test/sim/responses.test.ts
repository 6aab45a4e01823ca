import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import OpenAI from 'openai';
import { generateAnswer, renderChat, tokenize } from '../../src/sim/engine/index.js';
import type { RunningSimServer, SimRuntime } from '../../src/sim/index.js';
import { filler, post, scrape, tinyServer } from './helpers.js';

const client = (s: RunningSimServer): OpenAI => new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });

/** The engine's answer to a Responses request, through the same chat template. */
function expected(messages: Array<{ role: string; content: string }>, model: string, tokens: number): { text: string; promptTokens: number } {
  const prompt = tokenize(renderChat(messages));
  return { text: generateAnswer(prompt, model, tokens).texts.join(''), promptTokens: prompt.length };
}

/** `event:` / `data:` pairs of a Responses SSE body. */
function events(text: string): Array<{ event: string; data: Record<string, unknown> }> {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const [eventLine = '', dataLine = ''] = block.split('\n');
      assert.match(eventLine, /^event: /);
      assert.match(dataLine, /^data: /);
      return { event: eventLine.slice('event: '.length), data: JSON.parse(dataLine.slice('data: '.length)) as Record<string, unknown> };
    });
}

const STREAM_ORDER = ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added'];
const STREAM_END = ['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed'];

describe('POST /v1/responses', () => {
  for (const runtime of ['vllm', 'sglang'] as const) {
    test(`${runtime}: the official client parses a non-streaming response; the prompt runs through the engine and its prefix cache`, async () => {
      const s = await tinyServer({ runtime });
      try {
        const instructions = `You answer briefly. ${filler(40)}`;
        const ask = { model: 'mymodel', instructions, input: 'What is a KV cache?', max_output_tokens: 6 };
        const first = await client(s).responses.create(ask);
        const want = expected(
          [
            { role: 'system', content: instructions },
            { role: 'user', content: ask.input },
          ],
          'mymodel',
          6,
        );
        assert.equal(first.object, 'response');
        assert.match(first.id, /^resp_/);
        assert.equal(first.status, 'completed');
        assert.equal(first.model, 'mymodel');
        assert.equal(first.output_text, want.text, 'the convenience text the client assembles from output[].content');
        const message = first.output[0];
        assert.ok(message?.type === 'message');
        assert.equal(message.role, 'assistant');
        assert.deepEqual(message.content, [{ type: 'output_text', text: want.text, annotations: [] }]);
        assert.deepEqual(first.usage, {
          input_tokens: want.promptTokens,
          input_tokens_details: { cached_tokens: 0 },
          output_tokens: 6,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: want.promptTokens + 6,
        });
        const again = await client(s).responses.create(ask);
        assert.ok((again.usage?.input_tokens_details.cached_tokens ?? 0) >= 32, 'the repeated prompt hits the prefix cache');
        assert.equal(s.engine.stats().promptTokensTotal, 2 * want.promptTokens, 'both prompts were prefilled by the engine');
        const page = await scrape(s);
        assert.match(page, runtime === 'vllm' ? /^vllm:generation_tokens_total\{[^}]*\} 12\.0$/m : /^sglang:generation_tokens_total\{[^}]*\} 12\.0$/m);
        assert.deepEqual(s.stats(), { received: 2, served: 2, inFlight: 0, aborted: 0 });
      } finally {
        await s.close();
      }
    });
  }

  test('streaming: the official client reads every event in the OpenAI order with consecutive sequence numbers', async () => {
    const s = await tinyServer();
    try {
      const stream = await client(s).responses.create({ model: 'mymodel', input: 'stream me', max_output_tokens: 5, stream: true });
      const seen: Array<{ type: string; sequence_number: number }> = [];
      let deltas = '';
      let completedText = '';
      let usage: { input_tokens: number; output_tokens: number; total_tokens: number } | undefined;
      for await (const event of stream) {
        seen.push(event);
        if (event.type === 'response.output_text.delta') deltas += event.delta;
        if (event.type === 'response.completed') {
          const item = event.response.output[0];
          const part = item?.type === 'message' ? item.content[0] : undefined;
          completedText = part?.type === 'output_text' ? part.text : '';
          usage = event.response.usage ?? undefined;
        }
      }
      const types = seen.map((e) => e.type);
      assert.deepEqual(types, [...STREAM_ORDER, ...Array<string>(5).fill('response.output_text.delta'), ...STREAM_END]);
      assert.deepEqual(
        seen.map((e) => e.sequence_number),
        seen.map((_e, i) => i),
      );
      const want = expected([{ role: 'user', content: 'stream me' }], 'mymodel', 5);
      assert.equal(deltas, want.text);
      assert.equal(completedText, want.text);
      assert.deepEqual(usage && [usage.input_tokens, usage.output_tokens, usage.total_tokens], [want.promptTokens, 5, want.promptTokens + 5]);
    } finally {
      await s.close();
    }
  });

  test('on the wire: each event is an `event: <type>` line and a `data:` line whose type matches; no [DONE]', async () => {
    const s = await tinyServer({ runtime: 'sglang' });
    try {
      const input = [
        { role: 'developer', content: [{ type: 'input_text', text: 'Be terse.' }] },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'first' }, { type: 'input_text', text: 'second' }] },
      ];
      const r = await post(s, '/v1/responses', { model: 'mymodel', input, max_output_tokens: 3, stream: true });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
      const text = await r.text();
      assert.ok(!text.includes('[DONE]'));
      const list = events(text);
      for (const e of list) assert.equal(e.data['type'], e.event);
      const done = list.find((e) => e.event === 'response.output_text.done');
      // Content parts join with "\n" in the chat template, as vLLM's string content format does.
      const want = expected(
        [
          { role: 'developer', content: 'Be terse.' },
          { role: 'user', content: 'first\nsecond' },
        ],
        'mymodel',
        3,
      );
      assert.equal(done?.data['text'], want.text);
      const completed = list.at(-1)?.data['response'] as { status: string; usage: { input_tokens: number } };
      assert.equal(completed.status, 'completed');
      assert.equal(completed.usage.input_tokens, want.promptTokens);
    } finally {
      await s.close();
    }
  });

  test('a streaming response occupies the engine while it is generated', async () => {
    const s = await tinyServer({ timeScale: 1, overrides: { decodeFloorMs: 25 } });
    try {
      const stream = await client(s).responses.create({ model: 'mymodel', input: 'go', max_output_tokens: 10, stream: true });
      let runningAtFirstDelta = -1;
      for await (const event of stream) {
        if (event.type === 'response.output_text.delta' && runningAtFirstDelta < 0) runningAtFirstDelta = s.engine.stats().running;
      }
      assert.equal(runningAtFirstDelta, 1);
      assert.equal(s.engine.stats().running, 0);
    } finally {
      await s.close();
    }
  });

  test('bad requests get 400 in the nested OpenAI shape on vLLM and SGLang; unknown models 404', async () => {
    for (const runtime of ['vllm', 'sglang'] as const) {
      const s = await tinyServer({ runtime });
      try {
        const cases: Array<[unknown, number, RegExp]> = [
          [{ model: 'mymodel' }, 400, /input is required/],
          [{ model: 'mymodel', input: [] }, 400, /empty/],
          [{ model: 'mymodel', input: [{ type: 'function_call_output', call_id: 'c', output: 'x' }] }, 400, /message items only/],
          [{ model: 'mymodel', input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] }, 400, /text part/],
          [{ model: 'mymodel', input: 'x', max_output_tokens: 'many' }, 400, /max_output_tokens/],
          [{ model: 'mymodel', input: 'x', previous_response_id: 'resp_1' }, 400, /previous_response_id/],
          [{ model: 'mymodel', input: 'x', max_output_tokens: 5000 }, 400, /maximum context length is 1024/],
          [{ model: 'nope', input: 'x' }, 404, /The model `nope` does not exist/],
          [{ model: 'mymodel', input: Array(5000).fill('x') }, 400, /at most 4096/],
        ];
        for (const [body, status, message] of cases) {
          const r = await post(s, '/v1/responses', body);
          assert.equal(r.status, status, `${runtime} ${JSON.stringify(body).slice(0, 80)}`);
          const b = (await r.json()) as { error: { message: string; code: number } };
          assert.match(b.error.message, message);
          assert.equal(b.error.code, status);
        }
        assert.equal(s.stats().served + s.stats().inFlight, 0);
      } finally {
        await s.close();
      }
    }
  });

  test('vLLM V0 and Triton have no Responses route: 404 {"detail":"Not Found"}, and no handler reads the body', async () => {
    for (const runtime of ['vllm-v0', 'trtllm'] as SimRuntime[]) {
      const s = await tinyServer({ runtime });
      try {
        const r = await post(s, '/v1/responses', { model: 'mymodel', input: 'hello' });
        assert.equal(r.status, 404, runtime);
        assert.deepEqual(await r.json(), { detail: 'Not Found' });
        assert.equal(s.stats().received, 0);
      } finally {
        await s.close();
      }
    }
  });
});
