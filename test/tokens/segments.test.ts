import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Tokenizer } from '@huggingface/tokenizers';
import { segmentPlan } from '../../src/tokens/added-tokens.js';
import { loadTokenizer, type ModelTokenizer } from '../../src/tokens/index.js';
import { LLAMA3_TOKENIZER_DIR } from '../support/llama3-tokenizer.js';
import { seededRandom } from '../../src/core/weighted.js';

/** A seeded PRNG, so a failure reproduces. */
const rng = seededRandom;

const PIECES = [
  'Hello', ' world', 'the', ' quick', 'BROWN', "'s", "'ll", " don't", 'I', "'M", ' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n', '\n ',
  '12345', '7', ' 3.14159', '2024-06-01', ',', '.', '!?', '...', '()', '{"a": 1}', '<', '>', '|', '<|', '|>', '<|eot_id', 'eot_id|>',
  'é', 'naïve', ' café', '中文字符', ' 日本語', '👍', '👩‍💻', 'e\u0301', '\u00a0', '\u200b', 'Ω', 'ß', ' İstanbul', 'ﬁ', '\\', '`code`', '#',
];

function randomText(next: () => number, specials: readonly string[]): string {
  const n = 1 + Math.floor(next() * 60);
  let out = '';
  for (let i = 0; i < n; i++) {
    const r = next();
    if (r < 0.15) out += specials[Math.floor(next() * specials.length)]!;
    else out += PIECES[Math.floor(next() * PIECES.length)]!;
  }
  return out;
}

describe('piecewise tokenisation (cut at added tokens, pieces cached) is exact for Llama 3', () => {
  let tok: ModelTokenizer;
  let ref: Tokenizer;
  let specials: string[];
  before(async () => {
    const json = JSON.parse(await readFile(join(LLAMA3_TOKENIZER_DIR, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    const config = JSON.parse(await readFile(join(LLAMA3_TOKENIZER_DIR, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    ref = new Tokenizer(json, config);
    const named = (json['added_tokens'] as { content: string }[]).map((t) => t.content);
    // The ones chat templates write, plus a sample of the reserved ones (they share prefixes).
    specials = [...named.slice(0, 12), ...named.filter((_, i) => i % 37 === 0)];
    tok = await loadTokenizer(LLAMA3_TOKENIZER_DIR, { cacheTokens: 200_000 });
    assert.equal(tok.segmented, true, tok.inexactWhy);
  });
  after(() => tok.close());

  it('gives the ids of whole-text tokenisation on 600 varied texts, cold and then from the cache', async () => {
    const next = rng(20);
    const texts = Array.from({ length: 600 }, () => randomText(next, specials));
    for (const pass of ['cold', 'cached']) {
      for (const text of texts) {
        const whole = ref.encode(text, { add_special_tokens: true }).ids;
        assert.deepEqual([...(await tok.encodePrompt(text))], whole, `${pass}: ${JSON.stringify(text)}`);
      }
    }
    assert.ok(tok.counters().cacheHitTokens > 0);
  });

  it('gives the ids of whole-text tokenisation for chats of varied turns', async () => {
    const next = rng(7);
    for (let c = 0; c < 60; c++) {
      const turns = Array.from({ length: 1 + Math.floor(next() * 6) }, (_, i) => ({
        role: i % 2 === 0 ? 'user' : 'assistant',
        content: randomText(next, specials),
      }));
      const text = tok.renderChat(turns);
      assert.deepEqual([...(await tok.encodeChat(turns))], ref.encode(text, { add_special_tokens: false }).ids, JSON.stringify(turns));
    }
  });
});

describe('segmentPlan: when piecewise tokenisation would not be exact', () => {
  const base = { normalizer: null, pre_tokenizer: { type: 'ByteLevel' } };
  const token = (over: Record<string, unknown>) => ({ id: 1, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true, ...over });

  it('plain special tokens: exact', () => {
    assert.equal(segmentPlan({ ...base, added_tokens: [token({})] }).exact, true);
  });
  it('a token that strips its neighbours, a single-word token, a normalised token under a normalizer: not exact', () => {
    for (const over of [{ lstrip: true }, { rstrip: true }, { single_word: true }]) {
      assert.equal(segmentPlan({ ...base, added_tokens: [token(over)] }).exact, false, JSON.stringify(over));
    }
    assert.equal(segmentPlan({ ...base, normalizer: { type: 'NFC' }, added_tokens: [token({ normalized: true })] }).exact, false);
    assert.equal(segmentPlan({ ...base, added_tokens: [token({ normalized: true })] }).exact, true, 'no normalizer: matched as is');
  });
  it('a Metaspace pre-tokenizer that prefixes only the first piece: not exact', () => {
    const pre = { type: 'Sequence', pretokenizers: [{ type: 'Metaspace', replacement: '▁', prepend_scheme: 'first' }] };
    assert.equal(segmentPlan({ ...base, pre_tokenizer: pre, added_tokens: [token({})] }).exact, false);
  });
});
