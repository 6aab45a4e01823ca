import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Endpoint } from '../../src/core/endpoint.js';
import { blockHashes } from '../../src/prefix/block-hash.js';
import { PrefixIndex } from '../../src/prefix/index.js';
import { InflightScorer } from '../../src/scheduling/plugins/inflight-scorer.js';
import { KvCacheScorer } from '../../src/scheduling/plugins/kv-cache-scorer.js';
import { LoraAffinityScorer } from '../../src/scheduling/plugins/lora-affinity-scorer.js';
import { PrefillLoadScorer } from '../../src/scheduling/plugins/prefill-load-scorer.js';
import { createPrefixCacheScorer } from '../../src/scheduling/plugins/prefix-cache-scorer.js';
import { QueueScorer } from '../../src/scheduling/plugins/queue-scorer.js';
import type { Scorer, SchedulingRequest } from '../../src/scheduling/types.js';
import { endpoint, endpoints, handle, request, type EndpointSpec } from './support.js';

function scores(scorer: Scorer, eps: readonly Endpoint[], req: SchedulingRequest = request()): number[] {
  const out = new Float64Array(eps.length);
  scorer.score(req, eps, out);
  return [...out].map((v) => Math.round(v * 1000) / 1000);
}

/**
 * Every scorer: scores in [0, 1]; equal candidates get equal scores; no throw on an empty list;
 * the same input gives the same output.
 */
function runScorerConformance(name: string, create: () => Scorer): void {
  test(`${name}: conformance (range, neutral on equal candidates, empty list, deterministic)`, () => {
    const varied = (): Endpoint[] =>
      endpoints([
        { inFlight: 0, metrics: { waitingRequests: 0, kvCacheUsage: 0.1, lora: { maxLoras: 2, running: ['a'], waiting: [] } } },
        { inFlight: 7, metrics: { waitingRequests: 9, kvCacheUsage: 0.95, lora: { maxLoras: 2, running: ['b', 'c'], waiting: ['a'] } } },
        { inFlight: 3, metrics: { waitingRequests: 2, kvCacheUsage: 0.5 }, ageMs: 10_000 },
        { inFlight: 2 },
      ]);
    const req = request({ targetModel: 'a' });
    const first = scores(create(), varied(), req);
    for (const s of first) assert.ok(s >= 0 && s <= 1, `${s} in [0, 1]`);
    assert.deepEqual(scores(create(), varied(), req), first, 'deterministic');
    const same: EndpointSpec = { inFlight: 2, metrics: { waitingRequests: 1, kvCacheUsage: 0.3 } };
    const equal = scores(create(), endpoints([same, same, same]), req);
    assert.equal(new Set(equal).size, 1, `equal candidates score equally: ${equal}`);
    assert.deepEqual(scores(create(), [], req), []);
  });
}

runScorerConformance('inflight-scorer', () => new InflightScorer('s'));
runScorerConformance('queue-scorer', () => new QueueScorer('s', handle()));
runScorerConformance('kv-cache-utilization-scorer', () => new KvCacheScorer('s', handle()));
runScorerConformance('lora-affinity-scorer', () => new LoraAffinityScorer('s'));
runScorerConformance('prefill-load-scorer', () => new PrefillLoadScorer('s'));
runScorerConformance('prefix-cache-scorer', () => createPrefixCacheScorer('s', {}, handle()));

test('queue scorer: scraped queue plus what was sent since the scrape; stale metrics score worst', () => {
  const cases: Array<{ name: string; specs: EndpointSpec[]; want: number[] }> = [
    { name: 'min-max of waiting', specs: [{ metrics: { waitingRequests: 0 } }, { metrics: { waitingRequests: 5 } }, { metrics: { waitingRequests: 10 } }], want: [1, 0.5, 0] },
    {
      name: 'on a queueing server, requests sent since the scrape count as queued',
      specs: [{ inFlight: 6, inFlightAtScrape: 0, metrics: { waitingRequests: 1 } }, { inFlight: 0, metrics: { waitingRequests: 3 } }],
      want: [0, 1],
    },
    {
      name: 'on a server with an empty queue they run at once',
      specs: [{ inFlight: 6, inFlightAtScrape: 0, metrics: { waitingRequests: 0 } }, { inFlight: 0, metrics: { waitingRequests: 3 } }],
      want: [1, 0],
    },
    { name: 'stale is worst', specs: [{ metrics: { waitingRequests: 8 } }, { metrics: { waitingRequests: 0 }, ageMs: 1000 }], want: [1, 0] },
    { name: 'no metrics: in-flight', specs: [{ inFlight: 2 }, { inFlight: 4 }], want: [1, 0] },
  ];
  for (const c of cases) assert.deepEqual(scores(new QueueScorer('q', handle()), endpoints(c.specs)), c.want, c.name);
});

test('prefill-load scorer: fewer prompt tokens still waiting for a first byte wins; decoding requests do not count', () => {
  const eps = endpoints([{ inFlight: 9 }, { inFlight: 1 }, { inFlight: 4 }]);
  [0, 3000, 1500].forEach((t, i) => ((eps[i] as Endpoint).pendingPrefillTokens = t));
  assert.deepEqual(scores(new PrefillLoadScorer('p'), eps), [1, 0.406, 0.577], 'the endpoint with 9 decoding requests but no pending prefill is best');
  // Absolute, not min-max: a few pending tokens cost almost nothing.
  const small = endpoints([{}, {}]);
  (small[1] as Endpoint).pendingPrefillTokens = 40;
  assert.deepEqual(scores(new PrefillLoadScorer('p'), small), [1, 0.981]);
});

test('kv scorer: 1 − utilisation, plus prompt tokens sent since the scrape over the capacity', () => {
  const e = endpoints([{ metrics: { kvCacheUsage: 0.25, blockSize: 16, numGpuBlocks: 100 } }, { metrics: { kvCacheUsage: 0.5 }, ageMs: 1000 }, {}]);
  (e[0] as Endpoint).inFlightTokens = 400; // 400 of 1600 tokens: +0.25
  // No metrics: the mean of the fresh candidates' scores (neither favoured nor penalised).
  assert.deepEqual(scores(new KvCacheScorer('k', handle()), e), [0.5, 0, 0.5]);
});

test('lora affinity: running 1.0, free slot 0.8, waiting 0.6, else 0; neutral for the served base model', () => {
  const served = ['base-model'];
  const eps = endpoints([
    { metrics: { servedModels: served, lora: { maxLoras: 2, running: ['a'], waiting: [] } } },
    { metrics: { servedModels: served, lora: { maxLoras: 2, running: ['b'], waiting: [] } } },
    { metrics: { servedModels: served, lora: { maxLoras: 2, running: ['b', 'c'], waiting: ['a'] } } },
    { metrics: { servedModels: served, lora: { maxLoras: 1, running: ['c'], waiting: [] } } },
  ]);
  const scorer = new LoraAffinityScorer('l');
  assert.deepEqual(scores(scorer, eps, request({ targetModel: 'a' })), [1, 0.8, 0.6, 0]);
  assert.deepEqual(scores(scorer, eps, request({ targetModel: 'd' })), [0.8, 0.8, 0, 0], 'a cold adapter avoids endpoints with full slots');
  assert.deepEqual(scores(scorer, eps, request({ targetModel: 'base-model' })), [1, 1, 1, 1]);
  // Between scrapes, the gateway's own in-flight requests for the adapter count as running.
  (eps[3] as Endpoint).inFlightByModel.set('a', 1);
  assert.deepEqual(scores(scorer, eps, request({ targetModel: 'a' })), [1, 0.8, 0.6, 1]);
});

test('prefix scorer: matched blocks over the prompt, full marks only for long matches, hot endpoints guarded', () => {
  const index = new PrefixIndex();
  const text = 'x'.repeat(64 * 32);
  const hashes = blockHashes(text, 'm');
  assert.equal(hashes.length, 32);
  const eps = endpoints([{ metrics: {} }, { metrics: {} }, { metrics: {} }]);
  index.record(eps[0] as Endpoint, hashes);
  index.record(eps[1] as Endpoint, hashes.subarray(0, 8));
  const req = request({ prompt: text });
  // The index match alone (the prefix home is tested in prefix-home.test.ts).
  const scorer = createPrefixCacheScorer('p', { homeBonus: 0 }, handle(index));
  assert.deepEqual(scores(scorer, eps, req), [1, 0.25, 0]);
  const match = scorer.matchOf(req);
  assert.equal(match?.totalBlocks, 32);
  assert.equal(match?.matched.get(eps[1] as Endpoint), 8);

  // A short prompt fully matched is worth little: 2 of at least 16 blocks.
  const short = blockHashes('y'.repeat(128), 'm');
  index.record(eps[2] as Endpoint, short);
  assert.deepEqual(scores(scorer, eps, request({ prompt: 'y'.repeat(128) })), [0, 0, 0.125]);

  // The endpoint holding the prefix has a queue 6 deeper than the shortest: its affinity is dropped.
  const busy = endpoints([{ metrics: { waitingRequests: 6 } }, { metrics: { waitingRequests: 0 } }]);
  index.record(busy[0] as Endpoint, hashes);
  const guardedReq = request({ prompt: text });
  assert.deepEqual(scores(scorer, busy, guardedReq), [0, 0]);
  assert.deepEqual(scorer.matchOf(guardedReq)?.guarded.map((e) => e.name), ['pod-0']);
  assert.equal(endpoint(0).name, 'pod-0');
});
