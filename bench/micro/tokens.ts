/*
 * What tokenising a multi-turn conversation costs with Llama 3's tokenizer (src/tokens/): turn 1
 * (nothing cached) against turn 5 of a 10-turn conversation with long turns (each ~20 KB), with the
 * piece cache and without it (everything re-tokenised). Reports medians over several
 * conversations (each with its own text, so none warms another's cache) of the wall time of
 * encodeChat (the caller's wait) and of the main thread's share of it (template render, cut at
 * added tokens, cache lookups, posting the job: what the event loop pays).
 * `node dist/bench/micro/tokens.js`; numbers in docs/simulator.md's tokenizer section.
 */

import { loadTokenizer, type ChatTurn, type ModelTokenizer } from '../../src/tokens/index.js';
import { LLAMA3_TOKENIZER_DIR } from '../../test/support/llama3-tokenizer.js';

const TURN_CHARS = 20_000;
const RUNS = 7;
const words = 'the quick brown fox jumps over 42 lazy dogs, while model servers stream tokens back; '.split(' ');

function conversation(run: number): ChatTurn[] {
  const turnText = (i: number): string => {
    let s = `Conversation ${run}, turn ${i}. `;
    for (let k = i + run * 7; s.length < TURN_CHARS; k++) s += `${words[k % words.length]}${k % 97 === 0 ? '\n' : ' '}`;
    return s;
  };
  const c: ChatTurn[] = [{ role: 'system', content: `You are assistant number ${run}.` }];
  for (let t = 0; t < 10; t++) c.push({ role: 'user', content: turnText(2 * t) }, { role: 'assistant', content: turnText(2 * t + 1) });
  return c;
}
/** The request of turn `n` (1-based): every earlier exchange plus the n-th user message. */
const request = (c: ChatTurn[], n: number): ChatTurn[] => c.slice(0, 2 * n);

interface Sample {
  wallMs: number;
  mainMs: number;
  tokens: number;
}

async function timed(tok: ModelTokenizer, messages: ChatTurn[]): Promise<Sample> {
  const t0 = performance.now();
  const p = tok.encodeChat(messages);
  const mainMs = performance.now() - t0;
  const ids = await p;
  return { wallMs: performance.now() - t0, mainMs, tokens: ids.length };
}

function median(samples: Sample[]): string {
  const mid = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return `${samples[0]!.tokens} tokens: ${mid(samples.map((s) => s.wallMs)).toFixed(1)} ms (main thread ${mid(samples.map((s) => s.mainMs)).toFixed(2)} ms)`;
}

const cached = await loadTokenizer(LLAMA3_TOKENIZER_DIR);
const uncached = await loadTokenizer(LLAMA3_TOKENIZER_DIR, { cacheTokens: 0 });
// Warm both threads' code (JIT) on other text before measuring.
for (let i = 0; i < 3; i++) {
  await uncached.encodeChat(request(conversation(100 + i), 2));
  await cached.encodeChat(request(conversation(200 + i), 2));
}

const turn1: Sample[] = [];
const turn5: Sample[] = [];
const turn5Again: Sample[] = [];
const turn5Whole: Sample[] = [];
for (let run = 0; run < RUNS; run++) {
  const c = conversation(run);
  turn1.push(await timed(cached, request(c, 1)));
  for (let n = 2; n <= 4; n++) await cached.encodeChat(request(c, n));
  turn5.push(await timed(cached, request(c, 5)));
  turn5Again.push(await timed(cached, request(c, 5)));
  turn5Whole.push(await timed(uncached, request(c, 5)));
}
console.log(`median of ${RUNS} conversations (10 turns of ~${TURN_CHARS / 1000} KB each):`);
console.log(`turn 1, cold cache:            ${median(turn1)}`);
console.log(`turn 5, earlier turns cached:  ${median(turn5)}`);
console.log(`turn 5 again (all cached):     ${median(turn5Again)}`);
console.log(`turn 5 without the cache:      ${median(turn5Whole)}`);
cached.close();
uncached.close();
