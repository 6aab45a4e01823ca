import { Endpoint } from '../../src/core/endpoint.js';
import { seededRandom } from '../../src/core/weighted.js';
import { parseInferenceBody } from '../../src/gateway/body.js';
import { spliceModel } from '../../src/gateway/model-splice.js';
import { blockHashes } from '../../src/prefix/block-hash.js';
import { PrefixIndex } from '../../src/prefix/index.js';
import { promptText } from '../../src/prefix/prompt-text.js';
import { ResponseObserver } from '../../src/gateway/response-observer.js';
import { SseFramer } from '../../src/gateway/sse-frames.js';
import { ByteLoopFramer } from './sse-framer-before.js';
import { CycleState } from '../../src/scheduling/cycle-state.js';
import { buildScheduler } from '../../src/scheduling/config.js';
import { builtinRegistry, policyFor } from '../../src/scheduling/policies.js';
import { StringDecoder } from 'node:string_decoder';
import { decode as msgpackDecode } from '@msgpack/msgpack';
import { decodeEventBatch, encodeEventBatch } from '../../src/kvevents/wire.js';
import type { KvEvent } from '../../src/kvevents/events.js';
import { run, type Comparison } from './harness.js';

/*
 * Micro-benchmarks of the gateway's per-request and per-chunk work, each against the cheapest
 * thing the same job could be (the baseline). `npm run bench:micro`; numbers in docs/benchmarks.md.
 */

// A 200 KB chat body: the size at which upstream's endpoint picker adds >100 ms (GIE #2928).
const words = 'the quick brown fox jumps over lazy dogs while model servers stream tokens '.split(' ');
let prompt = '';
for (let i = 0; prompt.length < 200_000; i++) prompt += `${words[i % words.length]} `;
const body = Buffer.from(JSON.stringify({ model: 'mymodel', stream: true, max_tokens: 64, messages: [{ role: 'system', content: prompt }, { role: 'user', content: 'Summarise.' }] }));

// An SSE stream of 256 token events, in the 64 KB chunks a socket delivers.
const event = (i: number): string => `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" tok${i}"},"finish_reason":null}]}\n\n`;
const stream = Buffer.from(`${Array.from({ length: 256 }, (_, i) => event(i)).join('')}data: {"id":"c","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":256,"total_tokens":266}}\n\ndata: [DONE]\n\n`);
const chunks = Array.from({ length: Math.ceil(stream.length / 512) }, (_, i) => stream.subarray(i * 512, (i + 1) * 512));

function endpoints(n: number): Endpoint[] {
  const r = seededRandom(7);
  return Array.from({ length: n }, (_, i) => {
    const e = new Endpoint({ address: `10.0.${i >> 8}.${i & 255}`, port: 8000, name: `pod-${i}`, podName: `pod-${i}`, labels: {} });
    e.metrics = { waitingRequests: Math.floor(r() * 8), runningRequests: 10, kvCacheUsage: r() * 0.9, blockSize: 16, numGpuBlocks: 20_000 };
    e.metricsAt = performance.now() + 1e9;
    e.inFlight = Math.floor(r() * 20);
    return e;
  });
}

const comparisons: Comparison[] = [];

comparisons.push({
  title: 'Request body, 200 KB chat: parse once and rewrite `model` in place',
  baseline: { name: 'JSON.parse only', fn: () => JSON.parse(body.toString('utf8')) },
  cases: [
    { name: 'parse + byte-splice model (ours)', fn: () => spliceModel(parseInferenceBody(body).raw, 'travel-helper-v1') },
    { name: 'parse + re-serialise (upstream EPP)', fn: () => Buffer.from(JSON.stringify({ ...(JSON.parse(body.toString('utf8')) as object), model: 'travel-helper-v1' })) },
  ],
});

const parsed = parseInferenceBody(body).json;
comparisons.push({
  title: 'Prefix hashing, 200 KB chat prompt (64-character blocks, at most 2048)',
  baseline: { name: 'JSON.stringify(messages) (what upstream hashes, before hashing)', fn: () => JSON.stringify(parsed['messages']) },
  cases: [{ name: 'render messages + chained FNV-1a block hashes (ours)', fn: () => blockHashes(promptText(parsed) ?? '', 'mymodel') }],
});

comparisons.push({
  title: 'Streaming response, 256 SSE events in 512-byte chunks',
  baseline: { name: 'decode every chunk to text (the least any reader of the stream does)', fn: () => { const d = new StringDecoder('utf8'); let n = 0; for (const c of chunks) n += d.write(c).length; return n; } },
  cases: [
    { name: 'observe usage (ours, default)', fn: () => { const o = new ResponseObserver({ sse: true, stripUsage: false, collectText: false }); for (const c of chunks) o.push(c); return o.end(); } },
    { name: 'observe usage + strip it (client did not ask)', fn: () => { const o = new ResponseObserver({ sse: true, stripUsage: true, collectText: false }); for (const c of chunks) o.push(c); return o.end(); } },
    { name: 'observe usage + collect text (PREFIX_CACHE)', fn: () => { const o = new ResponseObserver({ sse: true, stripUsage: false, collectText: true }); for (const c of chunks) o.push(c); return o.end(); } },
  ],
});

// What a long stream's socket delivers: 512-token streams cut into pieces that end mid-event
// (a 64-token-prompt, 512-token answer is ~100 KB of events; the overhead scenario's long streams).
const longStream = Buffer.from(`${Array.from({ length: 512 }, (_, i) => event(i)).join('')}data: [DONE]\n\n`);
const cutEvery = (bytes: Buffer, size: number): Buffer[] => Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size));
const cutChunks = cutEvery(longStream, 16_384);
const crlfStream = Buffer.from(longStream.toString('latin1').replaceAll('\n', '\r\n'), 'latin1');
const crlfChunks = cutEvery(crlfStream, 16_384);
const frame = (framer: { push(c: Buffer): Buffer }, pieces: readonly Buffer[]): number => {
  let n = 0;
  for (const c of pieces) n += framer.push(c).length;
  return n;
};
comparisons.push({
  title: 'SSE framing of a 512-event stream (~100 KB) in 16 KiB chunks cut mid-event',
  baseline: { name: 'byte loop over every chunk (5eef24f, before)', fn: () => frame(new ByteLoopFramer(), cutChunks) },
  cases: [
    { name: 'LF endings: native lastIndexOf from the end (ours, after)', fn: () => frame(new SseFramer(), cutChunks) },
    { name: 'CRLF endings: byte scan, state in locals (ours, after)', fn: () => frame(new SseFramer(), crlfChunks) },
    { name: 'CRLF endings: byte loop (before)', fn: () => frame(new ByteLoopFramer(), crlfChunks) },
  ],
});

for (const n of [8, 64]) {
  const index = new PrefixIndex();
  const handle = { prefixIndex: index, stalenessMs: 200, now: () => performance.now() };
  const registry = builtinRegistry();
  const eps = endpoints(n);
  const text = prompt.slice(0, 16_000);
  const hashes = blockHashes(text, 'mymodel');
  eps.forEach((e, i) => index.record(e, hashes.subarray(0, (i * 37) % hashes.length)));
  const profile = (p: 'DEFAULT' | 'PREFIX_CACHE', routing?: { policy: 'random' }) => {
    const { scheduler } = buildScheduler(policyFor(p, routing).config, registry, handle);
    return { schedule: (...args: Parameters<typeof scheduler.schedule>) => scheduler.schedule(...args).primary };
  };
  const random = seededRandom(1);
  // The prefix scorer hashes the prompt inside the cycle (once per request), so its case includes hashing.
  const request = (t: string | undefined) => ({ requestId: 'r', model: 'm', targetModel: 'mymodel', criticality: 'Standard' as const, promptTokens: 4000, body: undefined, promptText: () => t, state: new CycleState() });
  const rnd = profile('DEFAULT', { policy: 'random' });
  const def = profile('DEFAULT');
  const pre = profile('PREFIX_CACHE');
  comparisons.push({
    title: `Scheduling one request over ${n} endpoints`,
    baseline: { name: 'random pick', fn: () => rnd.schedule(request(undefined), eps, random) },
    cases: [
      { name: 'DEFAULT (queue, KV, in-flight, prefill, LoRA)', fn: () => def.schedule(request(undefined), eps, random) },
      { name: 'PREFIX_CACHE, 250-block prompt (hashing included)', fn: () => pre.schedule(request(text), eps, random) },
    ],
  });
}

// One engine step's KV events: 32 requests storing 16 blocks of 16 tokens each, 32 evictions,
// 64-bit hashes (vLLM's builtin hash), as a vLLM publisher sends them.
{
  const r = seededRandom(3);
  const hash = (): bigint => (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32));
  const events: KvEvent[] = [];
  for (let i = 0; i < 32; i++) {
    events.push({ type: 'BlockStored', blockHashes: Array.from({ length: 16 }, hash), parentBlockHash: hash(), tokenIds: Array.from({ length: 256 }, () => Math.floor(r() * 128_000)), blockSize: 16, loraName: null, medium: 'GPU', extraKeysDigest: null });
  }
  for (let i = 0; i < 32; i++) events.push({ type: 'BlockRemoved', blockHashes: [hash()], medium: 'GPU' });
  const batch = { ts: 1_733_000_000, events, dataParallelRank: 0 };
  const asArray = encodeEventBatch(batch, { encoding: 'array', hashes: 'int' });
  const asMap = encodeEventBatch(batch, { encoding: 'map', hashes: 'int' });
  const asBytes = encodeEventBatch(batch, { encoding: 'array', hashes: 'bytes' });
  comparisons.push({
    title: `KV event batch decode: 64 events, 8,192 token ids (${Math.round(asArray.length / 1024)} KB array form)`,
    baseline: { name: '@msgpack/msgpack decode only (no bounds, no checks)', fn: () => msgpackDecode(asArray, { useBigInt64: true }) },
    cases: [
      { name: 'decodeEventBatch, array form, int hashes (ours)', fn: () => decodeEventBatch(asArray) },
      { name: 'decodeEventBatch, map form, int hashes (ours)', fn: () => decodeEventBatch(asMap) },
      { name: 'decodeEventBatch, array form, 32-byte hashes (ours)', fn: () => decodeEventBatch(asBytes) },
    ],
  });
}

process.stdout.write(`${run(comparisons, Number(process.env['MICRO_MS'] ?? 300))}\n`);
