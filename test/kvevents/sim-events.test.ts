import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KvBlockIndex } from '../../src/kvevents/block-index.js';
import { blockKeys } from '../../src/kvevents/block-keys.js';
import { KvEventSubscriptions, kvEventTargets } from '../../src/kvevents/subscriptions.js';
import { post, tinyServer } from '../sim/helpers.js';
import { waitFor } from '../support/smart.js';

/**
 * The simulator's real vLLM-format publisher (sim/kv-events/) through the gateway's subscriber
 * into the index: the blocks a served prompt stored match that prompt's own token ids, whatever
 * hashes the engine used, and a prefix-cache reset empties the endpoint.
 */
test('a simulated vLLM server’s KV events make its prompts match in the index; a cache reset clears them', async () => {
  for (const encoding of ['array', 'map'] as const) {
    const server = await tinyServer({ kvEvents: { endpoint: 'tcp://127.0.0.1:*', replayEndpoint: 'tcp://127.0.0.1:*', encoding, hashes: 'bytes' } });
    const index = new KvBlockIndex();
    const subs = new KvEventSubscriptions(index);
    try {
      const kv = server.kvEvents!;
      const key = `127.0.0.1:${server.port}`;
      const pattern = { endpoint: kv.endpoint.replace('127.0.0.1', '{ip}'), replayEndpoint: kv.replayEndpoint!.replace('127.0.0.1', '{ip}'), topic: 'kv@{ip}:{port}@{model}' };
      subs.upsert(key, { ...kvEventTargets(pattern, { address: '127.0.0.1', port: server.port, name: 'sim-0' }), blockSize: 16 });
      // A PUB socket drops what it sends before the subscription reaches it: reset (an
      // AllBlocksCleared batch) until one arrives.
      await waitFor('the subscription to reach the publisher', async () => {
        if (subs.stats().batches > 0) return true;
        await (await post(server, '/reset_prefix_cache', '')).arrayBuffer();
        await new Promise((r) => setTimeout(r, 20));
        return subs.stats().batches > 0;
      });
      const prompt = Array.from({ length: 100 }, (_, i) => 5000 + i); // 6 full blocks of 16
      const r = await post(server, '/v1/completions', { model: 'mymodel', prompt, max_tokens: 1, ignore_eos: true });
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      const out = new Float64Array(1);
      const keys = blockKeys(prompt, 16, null);
      await waitFor(`${encoding}: the prompt’s blocks indexed`, () => {
        index.match(keys, [key], out);
        return out[0] === 6;
      });
      const other = [...prompt.slice(0, 40), ...Array.from({ length: 40 }, (_, i) => 9000 + i)];
      index.match(blockKeys(other, 16, null), [key], out);
      assert.equal(out[0], 2, 'a prompt sharing 40 tokens matches 2 full blocks');
      await (await post(server, '/reset_prefix_cache', '')).arrayBuffer();
      await waitFor(`${encoding}: the reset reaches the index`, () => index.entriesOf(key) === 0);
      const s = subs.stats();
      assert.equal(s.problems.size, 0, JSON.stringify([...s.problems]));
      assert.equal(s.resets.size, 0);
    } finally {
      await subs.close();
      await server.close();
    }
  }
});
