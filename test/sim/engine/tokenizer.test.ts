import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countTokens, IM_END, IM_START, renderChat, tokenize, tokenizePieces } from '../../../src/sim/engine/tokenizer.js';
import { filler } from './helpers.js';

const PROSE = [
  'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, it was the epoch of belief, it was the epoch of incredulity.',
  'Can you help me plan a trip to Lisbon? I would like to see the old town, eat some good food, and maybe take a day trip to the coast. What do you suggest for three days?',
];
const ENGLISH =
  'Continuous batching lets a model server add new requests to the running batch at every step, ' +
  'instead of waiting for the whole batch to finish. Combined with a paged KV cache, it keeps the GPU busy ' +
  'and makes the time to first token depend on how much of the prompt must be computed.';

test('about 4 characters per token on English text', () => {
  const ratio = ENGLISH.length / countTokens(ENGLISH);
  assert.ok(ratio > 3.3 && ratio < 5, `chars/token ${ratio}`);
  for (const text of PROSE) {
    const r = text.length / countTokens(text);
    assert.ok(r > 3.3 && r < 5, `chars/token ${r}`);
  }
});

test('pieces are lossless; special tokens are single tokens; counts agree', () => {
  const text = `${IM_START}system\nYou are  helpful.\n\n${IM_END}\n${IM_START}user\n tabs\there<|im_x|>${IM_END}`;
  const pieces = tokenizePieces(text);
  assert.equal(pieces.join(''), text);
  assert.ok(pieces.includes(IM_START) && pieces.includes(IM_END));
  assert.ok(pieces.includes('<|im'), 'a non-special <|...| is ordinary text');
  for (const p of pieces) {
    if (p === IM_START || p === IM_END || /^\s+$/.test(p)) continue;
    assert.match(p, /^ ?\S{1,4}$/, `piece ${JSON.stringify(p)}`);
  }
  assert.equal(countTokens(text), tokenize(text).length);
  assert.deepEqual(tokenize(text), tokenize(pieces.join('')));
});

test('deterministic ids: same text same ids, different text different ids', () => {
  assert.deepEqual(tokenize(ENGLISH), tokenize(String(ENGLISH)));
  assert.notDeepEqual(tokenize('hello world'), tokenize('hello worle'));
  assert.equal(tokenize(' word')[0], tokenize('a word')[1]);
  for (const id of tokenize(ENGLISH)) assert.ok(Number.isInteger(id) && id >= 0 && id < 2 ** 32);
});

test('concatenation property at special-token boundaries', () => {
  const parts = ['hello there  ', 'x\n', '', 'abcdefghij', ' spaced  out \n\n', '\t', 'a<b'];
  for (const a of parts) {
    for (const b of parts) {
      const left = a + IM_END; // a ends with a special token
      assert.deepEqual(tokenize(left + b), tokenize(left).concat(tokenize(b)), JSON.stringify([left, b]));
      const right = IM_START + b; // b begins with a special token
      assert.deepEqual(tokenize(a + right), tokenize(a).concat(tokenize(right)), JSON.stringify([a, right]));
    }
  }
});

test('ChatML multi-turn: turn 2 tokens start with turn 1 tokens + the answer tokens', () => {
  const turn1 = [
    { role: 'system', content: 'You are a travel helper.' },
    { role: 'user', content: 'Plan two days in Lisbon, please.' },
  ];
  const p1 = renderChat(turn1);
  assert.equal(
    p1,
    `${IM_START}system\nYou are a travel helper.${IM_END}\n${IM_START}user\nPlan two days in Lisbon, please.${IM_END}\n${IM_START}assistant\n`,
  );
  for (const answer of [' Day one: the old town.', 'Day one: the old town.']) {
    const p2 = renderChat([...turn1, { role: 'assistant', content: answer }, { role: 'user', content: 'And day three?' }]);
    assert.ok(p2.startsWith(p1 + answer));
    const t2 = tokenize(p2);
    const expected: number[] = tokenize(p1).concat(tokenize(answer));
    assert.deepEqual(t2.slice(0, expected.length), expected);
  }
});

test('content-part arrays: text parts joined with a newline, others ignored', () => {
  const withParts = renderChat([
    { role: 'user', content: [{ type: 'text', text: 'first' }, { type: 'image_url' }, { type: 'text', text: 'second' }] },
  ]);
  assert.equal(withParts, renderChat([{ role: 'user', content: 'first\nsecond' }]));
  assert.equal(renderChat([{ role: 'assistant', content: null }]), `${IM_START}assistant\n${IM_END}\n${IM_START}assistant\n`);
});

test('200 KB prompt tokenizes to ~50k tokens', () => {
  const big = filler(40_000).slice(0, 200_000);
  const n = countTokens(big);
  assert.ok(n > 40_000 && n < 61_000, `${n}`);
  assert.equal(tokenize(big).length, n);
});
