import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RunningSimServer } from '../../src/sim/index.js';
import { loadTokenizer, type ModelTokenizer } from '../../src/tokens/index.js';
import { LLAMA3_TOKENIZER_DIR } from '../support/llama3-tokenizer.js';
import { cli } from '../support/cli.js';
import { post, scrape, tinyServer } from './helpers.js';

interface ChatAnswer {
  choices: { message: { content: string } }[];
  usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } | null };
}

function counter(page: string, name: string): number {
  const line = page.split('\n').find((l) => l.startsWith(name));
  assert.ok(line !== undefined, `${name} on the metrics page`);
  return Number(line.split(' ').pop());
}

const LONG = 'Explain how a paged KV cache works, step by step, with the numbers for an 8B model. '.repeat(6);

describe('infergate sim --tokenizer: prompts tokenised as a vLLM pod with that model would', () => {
  let sim: RunningSimServer;
  let tok: ModelTokenizer;
  before(async () => {
    sim = await tinyServer({ tokenizer: LLAMA3_TOKENIZER_DIR, modelPath: '/models/Meta-Llama-3-8B-Instruct' });
    tok = await loadTokenizer(LLAMA3_TOKENIZER_DIR);
  });
  after(async () => {
    tok.close();
    await sim.close();
  });

  it("usage.prompt_tokens is the model template's token count (chat) and the tokenizer's (completions)", async () => {
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Hi there' },
    ];
    const chat = (await (await post(sim, '/v1/chat/completions', { model: 'mymodel', messages, max_tokens: 4 })).json()) as ChatAnswer;
    assert.equal(chat.usage.prompt_tokens, (await tok.encodeChat(messages)).length);
    const completion = (await (await post(sim, '/v1/completions', { model: 'mymodel', prompt: 'Hello World', max_tokens: 4 })).json()) as ChatAnswer;
    assert.equal(completion.usage.prompt_tokens, 2, '"Hello World" is [9906, 4435]');
  });

  it('a repeated prompt hits the prefix cache (metrics and cached_tokens)', async () => {
    const messages = [{ role: 'user', content: LONG }];
    const before = counter(await scrape(sim), 'vllm:prefix_cache_hits_total');
    const first = (await (await post(sim, '/v1/chat/completions', { model: 'mymodel', messages, max_tokens: 4 })).json()) as ChatAnswer;
    const second = (await (await post(sim, '/v1/chat/completions', { model: 'mymodel', messages, max_tokens: 4 })).json()) as ChatAnswer;
    const full = Math.floor(first.usage.prompt_tokens / 16) * 16;
    assert.ok(full >= 64);
    assert.equal(second.usage.prompt_tokens_details?.cached_tokens, full === first.usage.prompt_tokens ? full - 16 : full);
    assert.ok(counter(await scrape(sim), 'vllm:prefix_cache_hits_total') - before >= full - 16);
  });

  it("the next turn, which resends the answer through the template, finds the answer's blocks too", async () => {
    const turn1 = [{ role: 'user', content: `${LONG} Answer at length.` }];
    const a1 = (await (await post(sim, '/v1/chat/completions', { model: 'mymodel', messages: turn1, max_tokens: 200 })).json()) as ChatAnswer;
    const answer = a1.choices[0]!.message.content;
    assert.match(answer, /^I am Meta-Llama-3-8B-Instruct\./, 'a real model writes no space after "\\n\\n"');
    const generated = a1.usage.prompt_tokens + a1.usage.completion_tokens;
    assert.ok(a1.usage.completion_tokens >= 16);
    const turn2 = [...turn1, { role: 'assistant', content: answer }, { role: 'user', content: 'And then?' }];
    const a2 = (await (await post(sim, '/v1/chat/completions', { model: 'mymodel', messages: turn2, max_tokens: 4 })).json()) as ChatAnswer;
    // The blocks full of prompt and generated tokens (vLLM never computes the last sampled token's KV).
    const expected = Math.floor((generated - 1) / 16) * 16;
    assert.ok(expected > Math.floor(a1.usage.prompt_tokens / 16) * 16, 'the answer fills at least one more block');
    assert.equal(a2.usage.prompt_tokens_details?.cached_tokens, expected);
  });

  it('a message the template cannot take is a 400, an image part too', async () => {
    const r = await post(sim, '/v1/chat/completions', { model: 'mymodel', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] });
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { error: { message: string } }).error.message, /text-only/);
  });
});

describe('infergate sim --tokenizer on the command line', () => {
  it('a directory without the files is refused at start, naming the path', async () => {
    const r = await cli(['sim', '--tokenizer', '/nonexistent/tokenizer-dir', '--host', '127.0.0.1', '--port', '0', '--profile', 'tiny']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--tokenizer: \/nonexistent\/tokenizer-dir: no such directory/);
  });
});
