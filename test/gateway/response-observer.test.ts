import assert from 'node:assert/strict';
import { test } from 'node:test';
import { includeUsageOptions } from '../../src/gateway/include-usage.js';
import { editTopLevel, scanJsonObject } from '../../src/gateway/json-scan.js';
import { ResponseObserver } from '../../src/gateway/response-observer.js';

const EVENTS = [
  'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n',
  'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Héllo"},"finish_reason":null}]}\n\n',
  'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" wörld"},"finish_reason":"stop"}]}\n\n',
  'data: {"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":8}}}\n\n',
  'data: [DONE]\n\n',
];
const STREAM = Buffer.from(EVENTS.join(''), 'utf8');

/** Feeds `bytes` in pieces cut at `cuts` (byte offsets, so multi-byte characters get split too). */
function feed(observer: ResponseObserver, bytes: Buffer, cuts: number[]): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(observer.push(bytes.subarray(at, cut)));
    at = cut;
  }
  const rest = observer.end();
  if (rest !== undefined) out.push(rest);
  return Buffer.concat(out);
}

test('SSE: usage and text read across any chunk boundary; bytes pass through untouched', () => {
  const cutSets = [[], [5], [STREAM.indexOf('data:', 10) + 3], [STREAM.indexOf('é') + 1], Array.from({ length: STREAM.length - 1 }, (_, i) => i + 1)];
  for (const cuts of cutSets) {
    const o = new ResponseObserver({ sse: true, stripUsage: false, collectText: true });
    const out = feed(o, STREAM, cuts);
    assert.ok(out.equals(STREAM), 'forwarded bytes are the received bytes');
    assert.deepEqual(o.usage, { promptTokens: 12, completionTokens: 2, cachedTokens: 8 });
    assert.equal(o.text, 'Héllo wörld');
  }
});

test('SSE, usage only: read from the stream tail at the end, for any chunking and any stream length', () => {
  const long = Buffer.concat([Buffer.from(EVENTS[1]?.repeat(400) ?? ''), STREAM]);
  for (const bytes of [STREAM, long]) {
    for (const cuts of [[], [bytes.length - 40], Array.from({ length: Math.floor(bytes.length / 97) }, (_, i) => (i + 1) * 97)]) {
      const o = new ResponseObserver({ sse: true, stripUsage: false, collectText: false });
      assert.ok(feed(o, bytes, cuts).equals(bytes));
      assert.deepEqual(o.usage, { promptTokens: 12, completionTokens: 2, cachedTokens: 8 }, `${bytes.length} bytes, ${cuts.length} cuts`);
    }
  }
  const none = new ResponseObserver({ sse: true, stripUsage: false, collectText: false });
  feed(none, Buffer.from(EVENTS.slice(0, 3).join('') + EVENTS[4]), []);
  assert.equal(none.usage, undefined, 'no usage event, no usage');
});

test('SSE, usage only: the last event that states usage wins; events with "usage": null and CRLF streams read alike', () => {
  const nullUsage = 'data: {"id":"c","choices":[{"index":0,"delta":{"content":"x"}}],"usage":null}\n\n';
  const early = 'data: {"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n';
  const late = 'data: {"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}\n\n';
  const cases: Array<[string, number | undefined]> = [
    [`${nullUsage}${late}${nullUsage}data: [DONE]\n\n`, 7],
    [`${early}${nullUsage}${late}data: [DONE]\n\n`, 7],
    [`${late}${early}\n\n\ndata: [DONE]\n\n`, 1],
    [`${nullUsage}${nullUsage}data: [DONE]\n\n`, undefined],
    [`${early}data: {"usage": broken\n\ndata: [DONE]\n\n`, 1],
  ];
  for (const [text, completion] of cases) {
    for (const stream of [text, text.replaceAll('\n', '\r\n')]) {
      const bytes = Buffer.from(stream);
      const o = new ResponseObserver({ sse: true, stripUsage: false, collectText: false });
      assert.ok(feed(o, bytes, [3]).equals(bytes));
      assert.equal(o.usage?.completionTokens, completion, JSON.stringify(stream));
    }
  }
});

test('SSE: the usage event the gateway asked for is removed, everything else is kept in order', () => {
  for (const cuts of [[], [7], Array.from({ length: 40 }, (_, i) => i * 13 + 1)]) {
    const o = new ResponseObserver({ sse: true, stripUsage: true, collectText: false });
    const out = feed(o, STREAM, cuts.filter((c) => c < STREAM.length)).toString('utf8');
    assert.equal(out, [EVENTS[0], EVENTS[1], EVENTS[2], EVENTS[4]].join(''));
    assert.equal(o.usage?.completionTokens, 2);
  }
});

test('JSON responses: usage and the message text; non-JSON bodies are passed and ignored', () => {
  const body = Buffer.from(JSON.stringify({ choices: [{ message: { content: 'hi' } }], usage: { prompt_tokens: 3, completion_tokens: 1 } }));
  const o = new ResponseObserver({ sse: false, stripUsage: false, collectText: true });
  assert.ok(feed(o, body, [10]).equals(body));
  assert.deepEqual(o.usage, { promptTokens: 3, completionTokens: 1, cachedTokens: undefined });
  assert.equal(o.text, 'hi');
  const html = new ResponseObserver({ sse: false, stripUsage: false, collectText: false });
  feed(html, Buffer.from('<html>oops</html>'), []);
  assert.equal(html.usage, undefined);
});

/** The body with usage asked for, as the pipeline edits it. */
function withIncludeUsage(raw: Buffer, json: Record<string, unknown>): Buffer {
  return editTopLevel(raw, scanJsonObject(raw), new Map([['stream_options', includeUsageOptions(json)]]));
}

test('include_usage is requested by inserting one field; other bytes are untouched', () => {
  const raw = Buffer.from('{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}');
  const out = withIncludeUsage(raw, JSON.parse(raw.toString()) as Record<string, unknown>).toString();
  assert.equal(out, '{"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}');
  const withOptions = Buffer.from('{"model":"m","stream":true,"stream_options":{"continuous_usage_stats":true}}');
  const merged = JSON.parse(withIncludeUsage(withOptions, JSON.parse(withOptions.toString()) as Record<string, unknown>).toString()) as { stream_options: unknown };
  assert.deepEqual(merged.stream_options, { continuous_usage_stats: true, include_usage: true });
  const spaced = Buffer.from('{ "model" : "m" , "stream_options" : {"include_usage": false} , "prompt": "é" }');
  assert.equal(withIncludeUsage(spaced, JSON.parse(spaced.toString()) as Record<string, unknown>).toString(), '{ "model" : "m" , "stream_options" : {"include_usage":true} , "prompt": "é" }', 'the client\'s member is replaced in place');
  assert.equal(withIncludeUsage(Buffer.from('{}'), {}).toString(), '{"stream_options":{"include_usage":true}}');
});
