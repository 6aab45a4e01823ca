import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorBodyNormalizer, MAX_ERROR_BODY_BYTES, openAIErrorBody } from '../../src/gateway/error-body.js';
import { ModelRenamer } from '../../src/gateway/model-rename.js';
import { ResponseObserver } from '../../src/gateway/response-observer.js';

type Nested = { error: { message: string; type: string; param: unknown; code: unknown } };
const shape = (status: number, body: string): Nested | undefined => {
  const out = openAIErrorBody(status, Buffer.from(body));
  return out === undefined ? undefined : (JSON.parse(out.toString()) as Nested);
};

test('error bodies: every server shape becomes the OpenAI nested shape, keeping message, type and code', () => {
  const cases: Array<{ name: string; status: number; body: string; want: Nested['error'] | undefined }> = [
    { name: 'vLLM ≥ 0.10.1 (already nested): unchanged', status: 404, body: '{"error":{"message":"m","type":"NotFoundError","param":null,"code":404}}', want: undefined },
    { name: 'vLLM ≤ 0.10.0 flat', status: 404, body: '{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404}', want: { message: 'The model `x` does not exist.', type: 'NotFoundError', param: null, code: 404 } },
    { name: 'SGLang flat', status: 400, body: '{"object":"error","message":"bad","type":"Bad Request","param":null,"code":400}', want: { message: 'bad', type: 'Bad Request', param: null, code: 400 } },
    { name: 'trtllm-serve string error', status: 400, body: '{"error":"max_tokens too large"}', want: { message: 'max_tokens too large', type: 'invalid_request_error', param: null, code: 400 } },
    { name: 'FastAPI detail string', status: 400, body: '{"detail":"stream_options is not supported"}', want: { message: 'stream_options is not supported', type: 'invalid_request_error', param: null, code: 400 } },
    {
      name: 'pydantic detail list',
      status: 422,
      body: '{"detail":[{"type":"extra_forbidden","loc":["body","stream_options"],"msg":"Extra inputs are not permitted"}]}',
      want: { message: 'body.stream_options: Extra inputs are not permitted', type: 'invalid_request_error', param: null, code: 422 },
    },
    { name: 'plain text', status: 500, body: 'Internal Server Error', want: { message: 'Internal Server Error', type: 'server_error', param: null, code: 500 } },
    { name: 'empty', status: 503, body: '', want: { message: 'the model server answered 503 Service Unavailable with no body', type: 'server_error', param: null, code: 503 } },
  ];
  for (const c of cases) assert.deepEqual(shape(c.status, c.body)?.error, c.want, c.name);
});

test('error bodies: held until the end, in any chunking; an oversized body passes through untouched', () => {
  const body = Buffer.from('{"object":"error","message":"nope","type":"NotFoundError","param":null,"code":404}');
  const n = new ErrorBodyNormalizer(404);
  const out = [n.push(body.subarray(0, 10)), n.push(body.subarray(10)), n.end() ?? Buffer.alloc(0)];
  assert.equal((JSON.parse(Buffer.concat(out).toString()) as Nested).error.message, 'nope');
  const huge = Buffer.alloc(MAX_ERROR_BODY_BYTES + 10, 0x61);
  const h = new ErrorBodyNormalizer(500);
  const passed = Buffer.concat([h.push(huge.subarray(0, 100)), h.push(huge.subarray(100)), h.end() ?? Buffer.alloc(0)]);
  assert.ok(passed.equals(huge));
});

test('model rename: the target name becomes the requested one across any chunk boundary, nothing else changes', () => {
  const events = [
    'data: {"id":"c","model":"travel-v1","choices":[{"delta":{"content":"\\"model\\":\\"travel-v1\\" stays in text"}}]}\n\n',
    'data: {"id":"c","model": "travel-v1","choices":[]}\n\n',
    'data: {"type":"response.completed","response":{"model":"travel-v1","usage":{}}}\n\n',
  ].join('');
  const want = events.replaceAll('"model":"travel-v1"', '"model":"assistant"').replaceAll('"model": "travel-v1"', '"model": "assistant"');
  assert.ok(want.includes('\\"model\\":\\"travel-v1\\"'), 'escaped text is not a match');
  const bytes = Buffer.from(events);
  for (const step of [1, 3, 7, 16, bytes.length]) {
    const r = new ModelRenamer('travel-v1', 'assistant');
    const out: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += step) out.push(r.push(bytes.subarray(i, i + step)));
    out.push(r.end());
    assert.equal(Buffer.concat(out).toString(), want, `chunks of ${step}`);
  }
});

test('observer: Responses API usage and text; chunk counting where the server sends no usage', () => {
  const responses = [
    'event: response.created\ndata: {"type":"response.created","response":{"id":"r"}}\n\n',
    'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"Hi"}\n\n',
    'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":" there"}\n\n',
    'event: response.completed\ndata: {"type":"response.completed","response":{"usage":{"input_tokens":9,"output_tokens":2,"input_tokens_details":{"cached_tokens":4}}}}\n\n',
  ].join('');
  for (const collectText of [true, false]) {
    const o = new ResponseObserver({ sse: true, stripUsage: false, collectText });
    const out = Buffer.concat([o.push(Buffer.from(responses)), o.end() ?? Buffer.alloc(0)]);
    assert.equal(out.toString(), responses, 'Responses API events are never stripped');
    assert.deepEqual(o.usage, { promptTokens: 9, completionTokens: 2, cachedTokens: 4 });
    if (collectText) assert.equal(o.text, 'Hi there');
  }
  const json = new ResponseObserver({ sse: false, stripUsage: false, collectText: true });
  json.push(Buffer.from('{"output":[{"type":"message","content":[{"type":"output_text","text":"Done."}]}],"usage":{"input_tokens":3,"output_tokens":1}}'));
  json.end();
  assert.equal(json.text, 'Done.');
  assert.equal(json.usage?.completionTokens, 1);

  const plain = ['{"role":"assistant","content":""}', '{"content":"a"}', '{"content":"b"}', '{"content":"c"}'].map((d) => `data: {"choices":[{"index":0,"delta":${d}}]}\n\n`).join('') + 'data: [DONE]\n\n';
  const counter = new ResponseObserver({ sse: true, stripUsage: false, collectText: false, countChunks: true });
  assert.equal(Buffer.concat([counter.push(Buffer.from(plain)), counter.end() ?? Buffer.alloc(0)]).toString(), plain);
  assert.equal(counter.chunks, 3, 'three events carried text (the role-only first chunk does not count)');
  assert.equal(counter.usage, undefined);
});
