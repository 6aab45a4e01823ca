import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiUrl, parseErrorBody, requestBody } from '../../src/bench/client.js';
import { SseParser } from '../../src/bench/sse.js';

// vLLM vllm/entrypoints/openai/serving_chat.py, chat_completion_stream_generator's illustrative sequence, plus a non-ASCII token.
const EVENTS = [
  '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}',
  '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]}',
  '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" héllo 世界 👋"},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}',
  '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"total_tokens":14,"completion_tokens":2}}',
  '[DONE]',
];

function stream(eol: string): Uint8Array {
  return new TextEncoder().encode(EVENTS.map((e) => `data: ${e}${eol}${eol}`).join(''));
}

function parseChunks(chunks: Uint8Array[]): string[] {
  const p = new SseParser();
  const out: string[] = [];
  for (const c of chunks) out.push(...p.push(c));
  out.push(...p.end());
  return out;
}

test('SSE: every two-way split of the byte stream gives the same events (LF, CRLF, CR line ends)', () => {
  for (const eol of ['\n', '\r\n', '\r']) {
    const bytes = stream(eol);
    for (let i = 0; i <= bytes.length; i++) {
      assert.deepEqual(parseChunks([bytes.subarray(0, i), bytes.subarray(i)]), EVENTS, `eol ${JSON.stringify(eol)}, split at ${i}`);
    }
  }
});

test('SSE: one byte at a time (splits inside data:, inside JSON, inside UTF-8 characters, between CR and LF)', () => {
  for (const eol of ['\n', '\r\n']) {
    const bytes = stream(eol);
    assert.deepEqual(parseChunks(Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))), EVENTS);
  }
});

test('SSE: comments, other fields, multi-line data, no space after the colon, a last event without its blank line', () => {
  const text = ': keep-alive\nevent: message\nid: 7\ndata:{"a":1}\n\ndata: line1\ndata: line2\n\nretry: 10\ndata: tail';
  const p = new SseParser();
  assert.deepEqual([...p.push(text), ...p.end()], ['{"a":1}', 'line1\nline2', 'tail']);
});

test('error bodies in every shape the field uses', () => {
  assert.deepEqual(parseErrorBody('{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404}}'), {
    code: '404',
    message: 'The model `x` does not exist.',
  });
  assert.deepEqual(parseErrorBody('{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}'), { code: '400', message: 'bad' });
  assert.deepEqual(parseErrorBody('{"error":{"message":"slow down","type":"rate_limit","code":"queue_full"}}'), { code: 'queue_full', message: 'slow down' });
  assert.deepEqual(parseErrorBody('{"error":{"message":"m","type":"upstream_error"}}'), { code: 'upstream_error', message: 'm' });
  assert.deepEqual(parseErrorBody('{"error":"validation failed"}'), { code: undefined, message: 'validation failed' });
  assert.deepEqual(parseErrorBody('inference error: Unavailable - no pods'), { code: undefined, message: 'inference error: Unavailable - no pods' });
});

test('request bodies and URLs', () => {
  const spec = { seq: 0, model: 'm', maxTokens: 9, messages: [{ role: 'system' as const, content: 'S' }, { role: 'user' as const, content: 'Q' }] };
  assert.deepEqual(requestBody(spec, 'chat'), {
    model: 'm', messages: spec.messages, max_tokens: 9, stream: true, stream_options: { include_usage: true }, ignore_eos: true,
  });
  assert.deepEqual(requestBody(spec, 'completions', false), { model: 'm', prompt: 'S\n\nQ', max_tokens: 9, stream: true, stream_options: { include_usage: true } });
  assert.equal(apiUrl('http://h:1', 'chat'), 'http://h:1/v1/chat/completions');
  assert.equal(apiUrl('http://h:1/', 'completions'), 'http://h:1/v1/completions');
  assert.equal(apiUrl('http://h:1/v1/', 'chat'), 'http://h:1/v1/chat/completions');
});
