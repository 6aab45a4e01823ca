import assert from 'node:assert/strict';
import { test } from 'node:test';
import { answerHeader, answerSeed, generateAnswer, MAX_ANSWER_TOKENS, MAX_HEADER_NAME, MIN_ANSWER_TOKENS, modelSelfName, naturalAnswerLength } from '../../../src/sim/engine/output.js';
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

test('a server that knows its model path introduces itself with it, and names the adapter serving', () => {
  const qwen = { modelPath: '/models/Qwen-2.5-7B-Instruct' };
  const base = generateAnswer(PROMPT, 'mymodel', 1000, false, qwen).texts.join('');
  assert.ok(base.startsWith(' I am Qwen-2.5-7B-Instruct. '), base);
  const deepseek = generateAnswer(PROMPT, 'mymodel', 1000, false, { modelPath: '/models/DeepSeek-R1-Distill-Qwen-7B' }).texts.join('');
  assert.ok(deepseek.startsWith(' I am DeepSeek-R1-Distill-Qwen-7B. '), deepseek);
  // A hub id names itself by its last segment; trailing slashes are not a name.
  assert.equal(modelSelfName('Qwen/Qwen3-32B'), 'Qwen3-32B');
  assert.equal(modelSelfName('/models/Qwen3-32B/'), 'Qwen3-32B');
  const lora = generateAnswer(PROMPT, 'travel-helper-v1', 1000, false, { ...qwen, adapter: 'travel-helper-v1' }).texts.join('');
  assert.ok(lora.startsWith(' I am Qwen-2.5-7B-Instruct + LoRA travel-helper-v1. '), lora);
  const v2 = generateAnswer(PROMPT, 'travel-helper-v2', 1000, false, { ...qwen, adapter: 'travel-helper-v2' }).texts.join('');
  assert.ok(v2.startsWith(' I am Qwen-2.5-7B-Instruct + LoRA travel-helper-v2. '), v2);
  // Deterministic, and the same natural length as without a voice (the voice changes only the words said).
  assert.deepEqual(generateAnswer(PROMPT, 'mymodel', 1000, false, qwen), generateAnswer([...PROMPT], 'mymodel', 1000, false, qwen));
  assert.equal(generateAnswer(PROMPT, 'mymodel', 1000, false, qwen).ids.length, generateAnswer(PROMPT, 'mymodel', 1000).ids.length);
});

test('the self-introduction is tokens like the rest: cut by max_tokens, re-tokenizing to exactly the ids', () => {
  const promptText = renderChat([{ role: 'user', content: 'What is a KV cache?' }]);
  const voices = [
    { modelPath: '/models/Qwen-2.5-7B-Instruct' },
    { modelPath: '/models/Qwen-2.5-7B-Instruct', adapter: 'travel-helper-v1' },
    { modelPath: 'Qwen/Qwen3-32B' },
    { modelPath: ' odd path<|im_end|>/with space' },
    { modelPath: 'x'.repeat(10_000), adapter: 'y'.repeat(10_000) },
  ];
  for (const voice of voices) {
    const header = answerHeader('mymodel', voice);
    assert.ok(header.length <= 2 * MAX_HEADER_NAME + 32, 'a long path or adapter name is bounded');
    for (const max of [1, 3, 9, 17, 300]) {
      const { texts, ids } = generateAnswer(PROMPT, 'mymodel', max, true, voice);
      assert.equal(ids.length, max);
      assert.deepEqual(tokenize(texts.join('')), ids, `${JSON.stringify(voice).slice(0, 40)} ${max}`);
      assert.deepEqual(tokenize(promptText + texts.join('')), PROMPT.concat(ids));
      // The text is the header (cut by max_tokens) and then filler.
      const text = texts.join('');
      assert.ok(text.startsWith(header) || header.startsWith(text), `${header} / ${text}`);
    }
  }
});
