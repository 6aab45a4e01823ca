import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Endpoint } from '../../src/core/endpoint.js';
import { blockHashes } from '../../src/prefix/block-hash.js';
import { homeAnchor, rendezvousHome } from '../../src/prefix/home.js';
import { PrefixIndex } from '../../src/prefix/index.js';
import { createPrefixCacheScorer, type PrefixCacheScorer } from '../../src/scheduling/plugins/prefix-cache-scorer.js';
import { policyFor } from '../../src/scheduling/policies.js';
import { endpoints, handle, request, type EndpointSpec } from './support.js';

/** 16 blocks (the default `minBlocksForFullScore`) of a group's system prompt, then one user's question. */
const groupPrompt = (group: number, user = 0): string => `system prompt of group ${group}: `.padEnd(64 * 16, '.') + ` user ${user} asks something long enough to fill more blocks`.repeat(3);

/** A gateway replica: its own prefix index, its own scorer, its own Endpoint objects for the same pods (as in another process). */
function replica(specs: readonly EndpointSpec[] = [{}, {}, {}, {}], parameters: Record<string, unknown> = {}): { scorer: PrefixCacheScorer; index: PrefixIndex; eps: Endpoint[] } {
  const index = new PrefixIndex();
  return { scorer: createPrefixCacheScorer('prefix', parameters, handle(index)), index, eps: endpoints(specs.map((s) => ({ metrics: {}, ...s }))) };
}

function score(scorer: PrefixCacheScorer, eps: readonly Endpoint[], prompt: string, targetModel = 'm'): number[] {
  const out = new Float64Array(eps.length);
  scorer.score(request({ prompt, targetModel }), eps, out);
  return [...out];
}

/** The key of the endpoint with the highest score, which must be unique. */
function winner(scores: readonly number[], eps: readonly Endpoint[]): string {
  const top = Math.max(...scores);
  const at = scores.flatMap((s, i) => (s === top ? [i] : []));
  assert.equal(at.length, 1, `one endpoint scores highest: ${scores.join(', ')}`);
  return (eps[at[0] as number] as Endpoint).key;
}

test('prefix home: two replicas that share nothing pick the same home for the same prompt, in any candidate order', () => {
  const a = replica();
  const b = replica();
  // Replica b lists its candidates in another order: the home depends on the keys, not positions.
  const bEps = [...b.eps].reverse();
  for (let g = 0; g < 20; g++) {
    const prompt = groupPrompt(g);
    const homeA = winner(score(a.scorer, a.eps, prompt), a.eps);
    const homeB = winner(score(b.scorer, bEps, prompt), bEps);
    assert.equal(homeB, homeA, `group ${g}`);
    // Every user of the group shares its first 16 blocks, so its anchor and its home.
    assert.equal(winner(score(b.scorer, bEps, groupPrompt(g, 7)), bEps), homeA, `group ${g}, another user`);
  }
  // The home scores the bonus (1 by default), the others nothing: the indexes are empty.
  assert.deepEqual([...score(a.scorer, a.eps, groupPrompt(0))].sort(), [0, 0, 0, 1]);
});

test('prefix home: many anchors spread about evenly over the endpoints', () => {
  const eps = endpoints([{}, {}, {}, {}, {}]);
  const counts = new Map<string, number>();
  const anchors = 5000;
  for (let g = 0; g < anchors; g++) {
    const key = (eps[rendezvousHome(homeAnchor(blockHashes(groupPrompt(g), 'm'), 16) as number, eps)] as Endpoint).key;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  assert.equal(counts.size, 5);
  // 1,000 each expected; a binomial's standard deviation here is ~28, so ±15 % is > 5 sigma.
  for (const [key, n] of counts) assert.ok(n > 850 && n < 1150, `${key}: ${n} of ${anchors}`);
});

test('prefix home: removing an endpoint moves only the anchors homed there, and a new one takes only its share', () => {
  const eps = endpoints([{}, {}, {}, {}, {}]);
  const anchors = Array.from({ length: 3000 }, (_, g) => homeAnchor(blockHashes(groupPrompt(g), 'm'), 16) as number);
  const homeOf = (a: number, candidates: readonly Endpoint[]): string => (candidates[rendezvousHome(a, candidates)] as Endpoint).key;
  const gone = eps[2] as Endpoint;
  const rest = eps.filter((e) => e !== gone);
  let moved = 0;
  for (const a of anchors) {
    const before = homeOf(a, eps);
    const after = homeOf(a, rest);
    if (before === gone.key) moved++;
    else assert.equal(after, before, 'an anchor not homed on the removed endpoint keeps its home');
  }
  assert.ok(moved > 0 && moved < anchors.length / 3, `about a fifth moved: ${moved}`);
  // And back: the endpoint rejoining takes exactly the anchors it had.
  for (const a of anchors) assert.equal(homeOf(a, eps) === gone.key, homeOf(a, [...rest, gone]) === gone.key);
});

test('prefix home: a home caught by the hot-spot guard loses the bonus, and load decides', () => {
  const idle = replica();
  const prompt = groupPrompt(3);
  const homeKey = winner(score(idle.scorer, idle.eps, prompt), idle.eps);
  const homeAt = idle.eps.findIndex((e) => e.key === homeKey);
  // The same pods, the home with a queue 6 deeper than the shortest (the guard's default delta is 5).
  const busy = replica(idle.eps.map((_, i) => ({ metrics: { waitingRequests: i === homeAt ? 6 : 0 } })));
  const req = request({ prompt });
  const out = new Float64Array(busy.eps.length);
  busy.scorer.score(req, busy.eps, out);
  assert.deepEqual([...out], [0, 0, 0, 0]);
  const match = busy.scorer.matchOf(req);
  assert.equal(match?.home?.key, homeKey);
  assert.equal(match?.homeBonus, false);
  assert.deepEqual(match?.guarded.map((e) => e.key), [homeKey]);
  // A queue 5 deeper is still within the guard: the home keeps its bonus.
  const warm = replica(idle.eps.map((_, i) => ({ metrics: { waitingRequests: i === homeAt ? 5 : 0 } })));
  assert.equal(score(warm.scorer, warm.eps, prompt)[homeAt], 1);
});

test('prefix home: a replica that knows where the prefix is keeps it there; the home is only a guess, combined with a match by max', () => {
  const r = replica();
  const prompt = groupPrompt(5);
  const hashes = blockHashes(prompt, 'm');
  const total = hashes.length;
  const homeAt = r.eps.findIndex((e) => e.key === winner(score(r.scorer, r.eps, prompt), r.eps));
  const elsewhere = (homeAt + 1) % r.eps.length;
  // Part of the anchor elsewhere (8 of its 16 blocks) is not knowledge of the prefix: the home keeps its bonus.
  r.index.record(r.eps[elsewhere] as Endpoint, hashes.subarray(0, 8));
  let s = score(r.scorer, r.eps, prompt);
  assert.equal(s[elsewhere], 8 / total);
  assert.equal(s[homeAt], 1);
  // A match on the home below the anchor is not added to the bonus: max(match, bonus).
  const other = replica();
  other.index.record(other.eps[homeAt] as Endpoint, hashes.subarray(0, 8));
  assert.equal(score(other.scorer, other.eps, prompt)[homeAt], 1);
  // This replica sent the whole prompt elsewhere before (its home was busy then): it keeps it there, no bonus,
  // though the bonus equals a full match: the guess never competes with what this replica knows.
  r.index.record(r.eps[elsewhere] as Endpoint, hashes);
  const req = request({ prompt });
  const out = new Float64Array(r.eps.length);
  r.scorer.score(req, r.eps, out);
  s = [...out];
  assert.equal(s[elsewhere], 1);
  assert.equal(s[homeAt], 0);
  assert.equal(r.scorer.matchOf(req)?.homeBonus, false);
  // ... unless that endpoint is now caught by the hot-spot guard: then the home takes the prefix, as every replica would.
  const hot = replica(r.eps.map((_, i) => ({ metrics: { waitingRequests: i === elsewhere ? 6 : 0 } })));
  hot.index.record(hot.eps[elsewhere] as Endpoint, hashes);
  s = score(hot.scorer, hot.eps, prompt);
  assert.equal(s[elsewhere], 0);
  assert.equal(s[homeAt], 1);
});

test('prefix home: homeBonus 0 gives the index match alone, as before the home existed', () => {
  const on = replica();
  const off = replica(undefined, { homeBonus: 0 });
  for (let g = 0; g < 10; g++) {
    const prompt = groupPrompt(g);
    const hashes = blockHashes(prompt, 'm');
    for (const r of [on, off]) {
      r.index.record(r.eps[g % 4] as Endpoint, hashes.subarray(0, 4 + g));
      r.index.record(r.eps[(g + 1) % 4] as Endpoint, hashes.subarray(0, 2));
    }
    const expected = off.eps.map((_, i) => (i === g % 4 ? 4 + g : i === (g + 1) % 4 ? 2 : 0) / hashes.length);
    assert.deepEqual(score(off.scorer, off.eps, prompt), expected, 'matched blocks over the prompt, nothing else');
    // With the bonus, only the home's score differs, and it is the larger of its match and the bonus.
    const req = request({ prompt });
    const withHome = new Float64Array(on.eps.length);
    on.scorer.score(req, on.eps, withHome);
    const homeAt = on.eps.indexOf(on.scorer.matchOf(req)?.home as Endpoint);
    assert.ok(homeAt >= 0);
    withHome.forEach((s, i) => assert.equal(s, i === homeAt ? Math.max(expected[i] as number, 1) : expected[i]));
  }
});

test('prefix home: prompts shorter than minBlocksForFullScore have none, so a short conversation stays where its last turn is cached; the target model (a LoRA adapter) seeds the anchor', () => {
  const r = replica();
  const short = 'q'.repeat(64 * 15);
  assert.deepEqual(score(r.scorer, r.eps, short), [0, 0, 0, 0]);
  assert.equal(homeAnchor(blockHashes(short, 'm'), 16), undefined);
  assert.notEqual(homeAnchor(blockHashes('q'.repeat(64 * 16), 'm'), 16), undefined);
  // Turn 1 (6 blocks) is cached on pod 2; turn 2 (12 blocks) resends it: it stays on pod 2.
  const turn1 = 't'.repeat(64 * 6);
  const turn2 = turn1 + 'u'.repeat(64 * 6);
  r.index.record(r.eps[2] as Endpoint, blockHashes(turn1, 'm'));
  assert.deepEqual(score(r.scorer, r.eps, turn2), [0, 0, 6 / 16, 0]);
  // The same text for another target model is another chain, so another anchor.
  const prompt = groupPrompt(1);
  assert.notEqual(homeAnchor(blockHashes(prompt, 'adapter-a'), 16), homeAnchor(blockHashes(prompt, 'm'), 16));
  let differ = 0;
  for (let g = 0; g < 40; g++) {
    const home = (model: string): string => winner(score(r.scorer, r.eps, groupPrompt(g), model), r.eps);
    if (home('adapter-a') !== home('m')) differ++;
  }
  assert.ok(differ > 10, `an adapter's prompts have their own homes: ${differ} of 40 differ`);
});

test('prefix home: each PD profile picks its home among its own candidates, with its own scorer instance', () => {
  const index = new PrefixIndex();
  const prefill = createPrefixCacheScorer('prefill-prefix', {}, handle(index));
  const decode = createPrefixCacheScorer('decode-prefix', {}, handle(index));
  const pods = endpoints([{ metrics: {} }, { metrics: {} }, { metrics: {} }, { metrics: {} }, { metrics: {} }, { metrics: {} }]);
  const prefillPods = pods.slice(0, 3);
  const decodePods = pods.slice(3);
  const req = request({ prompt: groupPrompt(9) });
  prefill.score(req, prefillPods, new Float64Array(3));
  decode.score(req, decodePods, new Float64Array(3));
  assert.ok(prefillPods.includes(prefill.matchOf(req)?.home as Endpoint));
  assert.ok(decodePods.includes(decode.matchOf(req)?.home as Endpoint));
});

test('prefix home: the homeBonus parameter is validated (0 to 1)', () => {
  assert.throws(() => createPrefixCacheScorer('p', { homeBonus: 1.5 }, handle()));
  assert.throws(() => createPrefixCacheScorer('p', { homeBonus: -0.1 }, handle()));
  assert.ok(createPrefixCacheScorer('p', { homeBonus: 1 }, handle()));
});

test('rendezvousHome: no candidates give -1, one candidate is its own home', () => {
  assert.equal(rendezvousHome(1234, []), -1);
  const e = new Endpoint({ address: '10.0.0.1', port: 8000, name: 'a', podName: 'a', labels: {} });
  assert.equal(rendezvousHome(1234, [e]), 0);
});

test("prefix home: the pool's infergate.dev/routing `prefix.homeBonus` reaches the prefix scorer", () => {
  const prefix = policyFor('PREFIX_CACHE', { prefix: { homeBonus: 0 } }).config.plugins.find((p) => p.name === 'prefix');
  assert.deepEqual(prefix?.parameters, { homeBonus: 0 });
});
