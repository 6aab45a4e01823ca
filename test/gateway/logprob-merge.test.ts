import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LogprobMerger, prefillInputLogprobs, wantsLogprobs } from '../../src/gateway/logprob-merge.js';

const PREFILL = [[-0.1, 1, null], [-0.2, 2, null]];

test('logprob merge: the prefill\'s input-token logprobs come first, in a JSON answer', () => {
  assert.equal(wantsLogprobs({ logprobs: true }), true);
  assert.equal(wantsLogprobs({ return_logprob: true }), true);
  assert.equal(wantsLogprobs({ model: 'm' }), false);
  const prefill = Buffer.from(JSON.stringify({ text: 'x', meta_info: { input_token_logprobs: PREFILL } }));
  assert.deepEqual(prefillInputLogprobs(prefill), PREFILL);
  const decode = Buffer.from(JSON.stringify({ text: 'hello', meta_info: { id: 'r', input_token_logprobs: [[-0.3, 3, null]] } }));
  const m = new LogprobMerger(PREFILL, false);
  const out = Buffer.concat([m.push(decode.subarray(0, 10)), m.push(decode.subarray(10)), m.end()]);
  assert.deepEqual((JSON.parse(out.toString()) as { meta_info: { input_token_logprobs: unknown[] } }).meta_info.input_token_logprobs, [...PREFILL, [-0.3, 3, null]]);
  const plain = Buffer.from('{"choices":[]}');
  const p = new LogprobMerger(PREFILL, false);
  assert.equal(Buffer.concat([p.push(plain), p.end()]).toString(), '{"choices":[]}', 'an answer without the field is unchanged');
});

test('logprob merge: every SSE event with the field gets it, in any chunking; others pass byte for byte', () => {
  const events = [
    `data: ${JSON.stringify({ text: 'a', meta_info: { input_token_logprobs: [[-0.3, 3, null]] } })}\n\n`,
    'data: {"choices":[{"delta":{"content":"b"}}]}\n\n',
    `data: ${JSON.stringify({ text: 'ab', meta_info: { input_token_logprobs: [[-0.3, 3, null]] } })}\n\n`,
    'data: [DONE]\n\n',
  ];
  const bytes = Buffer.from(events.join(''));
  for (const step of [1, 7, bytes.length]) {
    const m = new LogprobMerger(PREFILL, true);
    const parts: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += step) parts.push(m.push(bytes.subarray(i, i + step)));
    parts.push(m.end());
    const out = Buffer.concat(parts).toString().split('\n\n').filter((e) => e !== '');
    assert.equal(out.length, 4);
    for (const i of [0, 2]) assert.deepEqual((JSON.parse((out[i] as string).slice(6)) as { meta_info: { input_token_logprobs: unknown[] } }).meta_info.input_token_logprobs, [...PREFILL, [-0.3, 3, null]]);
    assert.equal(`${out[1]}\n\n`, events[1]);
    assert.equal(`${out[3]}\n\n`, events[3]);
  }
  assert.deepEqual(prefillInputLogprobs(Buffer.from(events[0] ?? '')), [[-0.3, 3, null]], 'an SSE prefill answer is read too');
});

test('logprob merge: characters split across chunks stay whole; CRLF-framed events are merged too', () => {
  const text = '東京 🌸 ✓';
  const lf = `data: ${JSON.stringify({ text, meta_info: { input_token_logprobs: [[-0.3, 3, null]] } })}\n\n`;
  const crlf = lf.replace('\n\n', '\r\n\r\n');
  for (const event of [lf, crlf]) {
    const bytes = Buffer.from(`${event}data: [DONE]\n\n`);
    // One byte at a time splits every multibyte character.
    const m = new LogprobMerger(PREFILL, true);
    const parts: Buffer[] = [];
    for (let i = 0; i < bytes.length; i++) parts.push(m.push(bytes.subarray(i, i + 1)));
    parts.push(m.end());
    const out = Buffer.concat(parts).toString('utf8');
    assert.ok(!out.includes('\uFFFD'), out);
    const first = JSON.parse(out.split(/\r?\n\r?\n/)[0]!.slice('data: '.length)) as { text: string; meta_info: { input_token_logprobs: unknown[] } };
    assert.equal(first.text, text);
    assert.deepEqual(first.meta_info.input_token_logprobs, [...PREFILL, [-0.3, 3, null]]);
    assert.ok(out.trimEnd().endsWith('data: [DONE]'));
  }
});

test('logprob merge: completions ask with a count, chat with true; other values do not ask', () => {
  for (const v of [true, 0, 5]) assert.equal(wantsLogprobs({ logprobs: v }), true, String(v));
  for (const v of [false, null, -1, 'yes']) assert.equal(wantsLogprobs({ logprobs: v }), false, String(v));
});
