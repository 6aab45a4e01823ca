import assert from 'node:assert/strict';
import { test } from 'node:test';
import { answerSeed, generateAnswer, MAX_ANSWER_TOKENS, MIN_ANSWER_TOKENS, naturalAnswerLength } from '../../../src/sim/engine/output.js';
import { renderChat, tokenize } from '../../../src/sim/engine/tokenizer.js';

const PROMPT = tokenize(renderChat([{ role: 'user', content: 'What is a KV cache?' }]));

test('answers are deterministic per (prompt, model) and start with the model name', () => {
  const a = generateAnswer(PROMPT, 'travel-helper-v1', 1000);
  const b = generateAnswer([...PROMPT], 'travel-helper-v1', 1000);
  assert.deepEqual(a, b);
  const c = generateAnswer(PROMPT, 'travel-helper-v2', 1000);
  assert.notDeepEqual(a.ids, c.ids);
  assert.ok(a.texts.join('').startsWith(' travel-helper-v1:'));
  assert.ok(c.texts.join('').startsWith(' travel-helper-v2:'));
  const other = generateAnswer(tokenize('another prompt'), 'travel-helper-v1', 1000);
  assert.notDeepEqual(a.texts.slice(6), other.texts.slice(6));
});

test('the answer text re-tokenizes to exactly its tokens (also truncated, also after the chat prompt)', () => {
  for (const model of ['m', 'llama-3.1-8b-instruct', 'Qwen/Qwen3-32B', 'odd name<|im_end|>']) {
    for (const max of [1, 3, 17, 300]) {
      const { texts, ids } = generateAnswer(PROMPT, model, max, true);
      assert.equal(ids.length, max);
      assert.deepEqual(tokenize(texts.join('')), ids, `${model} ${max}`);
      const promptText = renderChat([{ role: 'user', content: 'What is a KV cache?' }]);
      assert.deepEqual(tokenize(promptText + texts.join('')), PROMPT.concat(ids));
    }
  }
});

test('natural length is 16..256; maxTokens caps it with "length"; ignoreEos gives exactly maxTokens', () => {
  const lengths = new Set<number>();
  for (let i = 0; i < 500; i++) {
    const n = naturalAnswerLength(answerSeed(tokenize(`prompt ${i}`), 'm'));
    assert.ok(n >= MIN_ANSWER_TOKENS && n <= MAX_ANSWER_TOKENS);
    lengths.add(n);
  }
  assert.ok(lengths.size > 100, 'lengths vary');
  const natural = generateAnswer(PROMPT, 'm', 10_000);
  assert.equal(natural.finishReason, 'stop');
  const capped = generateAnswer(PROMPT, 'm', natural.ids.length - 1);
  assert.equal(capped.finishReason, 'length');
  assert.deepEqual(capped.ids, natural.ids.slice(0, -1));
  const forced = generateAnswer(PROMPT, 'm', 700, true);
  assert.equal(forced.ids.length, 700);
  assert.equal(forced.finishReason, 'length');
  assert.deepEqual(forced.ids.slice(0, natural.ids.length), natural.ids);
});
