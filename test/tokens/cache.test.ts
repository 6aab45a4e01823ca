import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadTokenizer, type ChatTurn, type ModelTokenizer } from '../../src/tokens/index.js';
import { LLAMA3_TOKENIZER_DIR } from '../support/llama3-tokenizer.js';

function turn(i: number): string {
  return `Turn ${i}: ` + `a fairly long sentence about item ${i}, with numbers ${i * 37} and words. `.repeat(20);
}

describe('a multi-turn conversation is not re-tokenised from the start each turn', () => {
  let tok: ModelTokenizer;
  let whole: ModelTokenizer;
  before(async () => {
    tok = await loadTokenizer(LLAMA3_TOKENIZER_DIR);
    whole = await loadTokenizer(LLAMA3_TOKENIZER_DIR, { cacheTokens: 0 });
  });
  after(() => {
    tok.close();
    whole.close();
  });

  it("the next turn finds the earlier turns' pieces in the cache and tokenises only its new text", async () => {
    const messages: ChatTurn[] = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: turn(0) }];
    await tok.encodeChat(messages);
    const first = tok.counters();
    assert.equal(first.jobs, 1);
    assert.equal(first.cacheHitTokens, 0);

    messages.push({ role: 'assistant', content: turn(1) }, { role: 'user', content: turn(2) });
    const ids = await tok.encodeChat(messages);
    const second = tok.counters();
    assert.equal(second.jobs, 2, 'one job for the new pieces');
    const newText = await whole.encodeChat([{ role: 'assistant', content: turn(1) }, { role: 'user', content: turn(2) }]);
    assert.ok(second.cacheHitTokens - first.cacheHitTokens >= first.cacheMissTokens - 2, 'the first turn came from the cache');
    assert.ok(second.cacheMissTokens - first.cacheMissTokens <= newText.length, 'only the new turns were tokenised');
    assert.deepEqual([...ids], [...(await whole.encodeChat(messages))], 'same ids as without the cache');

    await tok.encodeChat(messages);
    assert.equal(tok.counters().jobs, 2, 'a repeated request is all hits: no job at all');
  });
});
