import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Endpoint } from '../../src/core/endpoint.js';
import { KvBlockIndex } from '../../src/kvevents/block-index.js';
import type { KvEventBatch } from '../../src/kvevents/events.js';
import { PrefixIndex } from '../../src/prefix/index.js';
import { createPrecisePrefixScorer, type PrecisePrefixScorer } from '../../src/scheduling/plugins/precise-prefix-scorer.js';
import type { PreciseFallbackReason, PreciseServices, RequestTokenizer } from '../../src/scheduling/precise-services.js';
import type { PluginHandle } from '../../src/scheduling/types.js';
import { endpoints, NOW, request } from './support.js';

/** Token ids of a text: one id per character, so a test can say which blocks a prompt has. */
function ids(text: string): Uint32Array {
  return Uint32Array.from(text, (c) => c.charCodeAt(0));
}

/** A tokenizer that tokenises one id per character of the last message (or the prompt), counting calls. */
function fakeTokenizer(): RequestTokenizer & { calls: number } {
  const t = {
    calls: 0,
    encodePrompt(text: string): Promise<Uint32Array> {
      t.calls++;
      return Promise.resolve(ids(text));
    },
    encodeChat(messages: readonly unknown[]): Promise<Uint32Array> {
      t.calls++;
      return Promise.resolve(ids(messages.map((m) => String((m as { content: string }).content)).join('|')));
    },
  };
  return t;
}

interface Env {
  readonly handle: PluginHandle;
  readonly index: KvBlockIndex;
  readonly fallbacks: PreciseFallbackReason[];
  readonly picks: Array<[number, number]>;
}

function env(tokenizers: Record<string, RequestTokenizer | 'failed'>): Env {
  const index = new KvBlockIndex({ now: () => NOW });
  const fallbacks: PreciseFallbackReason[] = [];
  const picks: Array<[number, number]> = [];
  const precise: PreciseServices = {
    blocks: index,
    tokenizers: { get: (p) => (tokenizers[p] === 'failed' ? undefined : (tokenizers[p] as RequestTokenizer | undefined)), failed: (p) => tokenizers[p] === 'failed' },
    fellBack: (r) => fallbacks.push(r),
    picked: (m, t) => picks.push([m, t]),
  };
  return { handle: { prefixIndex: new PrefixIndex(), stalenessMs: 200, now: () => NOW, precise }, index, fallbacks, picks };
}

/** `e` stores the first `blocks` blocks (of 4 tokens) of `text`, as one BlockStored event. */
function stored(index: KvBlockIndex, e: Endpoint, text: string, blocks: number, lora: string | null = null, medium: 'GPU' | 'CPU' = 'GPU'): void {
  const tokens = [...ids(text).subarray(0, blocks * 4)];
  const batch: KvEventBatch = {
    ts: 0,
    dataParallelRank: null,
    events: [{ type: 'BlockStored', blockHashes: Array.from({ length: blocks }, (_, i) => BigInt(i + 1) + (lora === null ? 0n : 1000n)), parentBlockHash: null, tokenIds: tokens, blockSize: 4, loraName: lora, medium, extraKeysDigest: null }],
  };
  index.apply(e.key, batch, 4);
}

function scorer(handle: PluginHandle, parameters: Record<string, unknown> = {}): PrecisePrefixScorer {
  return createPrecisePrefixScorer('prefix', { blockSize: 4, minBlocksForFullScore: 2, homeBonus: 0, tokenizers: [{ model: 'm', path: '/tok/m' }], ...parameters }, handle);
}

const PROMPT = 'abcdefghijklmnopqrstuvwxyz012345'; // 32 characters = 8 blocks of 4 tokens

test('scores each endpoint by the blocks its events say it holds, from the prompt start, weighted by tier', async () => {
  const e = env({ '/tok/m': fakeTokenizer() });
  const eps = endpoints([{}, {}, {}]);
  stored(e.index, eps[1] as Endpoint, PROMPT, 8);
  stored(e.index, eps[2] as Endpoint, PROMPT, 4, null, 'CPU');
  const s = scorer(e.handle);
  const req = request({ body: { model: 'm', prompt: PROMPT } });
  await s.prepareRequestData(req);
  const out = new Float64Array(3);
  s.score(req, eps, out);
  assert.deepEqual([...out], [0, 1, (4 * 0.8) / 8]);
  assert.deepEqual(s.logFields(req, eps[1] as Endpoint), { prefixBlocks: '8/8', prefixMode: 'precise' });
  s.preRequest(req, eps[1] as Endpoint);
  assert.deepEqual(e.picks, [[8, 8]]);
  assert.deepEqual(e.fallbacks, []);
});

test('a chat is matched on its rendered tokens; a LoRA adapter only on its own blocks', async () => {
  const e = env({ '/tok/m': fakeTokenizer() });
  const eps = endpoints([{}, {}]);
  const messages = [{ role: 'user', content: PROMPT }];
  stored(e.index, eps[0] as Endpoint, PROMPT, 8); // the base model's blocks
  stored(e.index, eps[1] as Endpoint, PROMPT, 8, 'sql-lora'); // the adapter's blocks
  const s = scorer(e.handle);
  const base = request({ body: { model: 'm', messages } });
  await s.prepareRequestData(base);
  const out = new Float64Array(2);
  s.score(base, eps, out);
  assert.deepEqual([...out], [1, 0]);
  const adapter = request({ model: 'sql-lora', targetModel: 'sql-lora', body: { model: 'sql-lora', messages } });
  await s.prepareRequestData(adapter);
  s.score(adapter, eps, out);
  assert.deepEqual([...out], [0, 1]);
});

test('a pick counts as held on its endpoint until the events arrive (speculative), so a burst of one prefix does not scatter', async () => {
  const e = env({ '/tok/m': fakeTokenizer() });
  const eps = endpoints([{}, {}]);
  const s = scorer(e.handle);
  const first = request({ body: { model: 'm', prompt: PROMPT } });
  await s.prepareRequestData(first);
  const out = new Float64Array(2);
  s.score(first, eps, out);
  assert.deepEqual([...out], [0, 0]);
  s.preRequest(first, eps[1] as Endpoint);
  const second = request({ body: { model: 'm', prompt: PROMPT } });
  await s.prepareRequestData(second);
  s.score(second, eps, out);
  assert.deepEqual([...out], [0, 1]);
});

test('a completions prompt of token ids needs no tokenizer; both PD roles share one tokenisation', async () => {
  const tok = fakeTokenizer();
  const e = env({ '/tok/m': tok });
  const eps = endpoints([{}, {}]);
  stored(e.index, eps[0] as Endpoint, PROMPT, 8);
  const prefill = scorer(e.handle);
  const decode = createPrecisePrefixScorer('decode-prefix', { blockSize: 4, minBlocksForFullScore: 2, homeBonus: 0, tokenizers: [{ model: 'm', path: '/tok/m' }] }, e.handle);
  const byIds = request({ body: { model: 'm', prompt: [...ids(PROMPT)] } });
  assert.equal(prefill.prepareRequestData(byIds) !== undefined, true);
  await decode.prepareRequestData(byIds);
  const out = new Float64Array(2);
  decode.score(byIds, eps, out);
  assert.deepEqual([...out], [1, 0]);
  assert.equal(tok.calls, 0);
  const text = request({ body: { model: 'm', prompt: PROMPT } });
  await Promise.all([prefill.prepareRequestData(text), decode.prepareRequestData(text)]);
  assert.equal(tok.calls, 1, 'tokenised once for both roles');
});

test('what precise mode cannot judge is judged in estimate mode and counted by reason', async (t) => {
  const never: RequestTokenizer = { encodePrompt: () => new Promise(() => undefined), encodeChat: () => new Promise(() => undefined) };
  const broken: RequestTokenizer = { encodePrompt: () => Promise.reject(new Error('worker died')), encodeChat: () => Promise.reject(new Error('template error')) };
  const cases: Array<[string, Record<string, RequestTokenizer | 'failed'>, Record<string, unknown>, Record<string, unknown>, PreciseFallbackReason]> = [
    ['no tokenizer for the model', { '/tok/m': fakeTokenizer() }, { tokenizers: [{ model: 'a', path: '/tok/m' }, { model: 'b', path: '/tok/m' }] }, { model: 'm', prompt: PROMPT }, 'no_tokenizer'],
    ['tokenizer still loading', {}, {}, { model: 'm', prompt: PROMPT }, 'tokenizer_loading'],
    ['tokenizer failed to load', { '/tok/m': 'failed' }, {}, { model: 'm', prompt: PROMPT }, 'tokenizer_failed'],
    ['tokenising too slow', { '/tok/m': never }, { tokenizeTimeoutMs: 5 }, { model: 'm', prompt: PROMPT }, 'tokenize_timeout'],
    ['tokenising fails', { '/tok/m': broken }, {}, { model: 'm', messages: [{ role: 'user', content: 'x' }] }, 'tokenize_failed'],
    ['several prompts', { '/tok/m': fakeTokenizer() }, {}, { model: 'm', prompt: ['a', 'b'] }, 'unmatchable'],
    ['the Responses API', { '/tok/m': fakeTokenizer() }, {}, { model: 'm', input: 'hello' }, 'unmatchable'],
    ['a chat of more messages than are matched', { '/tok/m': fakeTokenizer() }, {}, { model: 'm', messages: Array.from({ length: 1025 }, () => ({ role: 'user', content: 'x' })) }, 'unmatchable'],
  ];
  for (const [what, tokenizers, params, body, reason] of cases) {
    await t.test(what, async () => {
      const e = env(tokenizers);
      const eps = endpoints([{}, {}]);
      const s = scorer(e.handle, params);
      // Estimate mode judges text in 64-character blocks: a longer text for it.
      const req = request({ body, prompt: PROMPT.repeat(8) });
      await s.prepareRequestData(req);
      const out = new Float64Array(2);
      s.score(req, eps, out);
      assert.deepEqual(e.fallbacks, [reason]);
      assert.equal(s.logFields(req, eps[0] as Endpoint)?.['prefixMode'], 'estimate');
      assert.equal(s.logFields(req, eps[0] as Endpoint)?.['prefixFallback'], reason);
      // Estimate mode still learns and matches: the pick is recorded, the next request matches it.
      s.preRequest(req, eps[1] as Endpoint);
      const next = request({ body, prompt: PROMPT.repeat(8) });
      await s.prepareRequestData(next);
      s.score(next, eps, out);
      assert.ok((out[1] as number) > 0, `${what}: estimate mode matched its own pick`);
    });
  }
});
