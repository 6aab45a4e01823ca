/**
 * Memory cost of the KV block index per block (not a test): inserts `--blocks` distinct GPU blocks
 * (default 1 Mi) on one endpoint through `KvBlockIndex.apply`, as `BlockStored` events of 16
 * blocks chained by parent, and prints the heap growth per block after a full GC. The per-endpoint
 * bound is lifted so every block stays. The number is quoted in src/kvevents/block-index.ts. Also
 * times one lookup of a 4,096-token prompt (256 blocks) against 8 candidates, and its block keys.
 *
 *   npx tsc -p tsconfig.json && node --expose-gc dist/bench/kvevents/index-memory.js [--blocks 1048576]
 */
import { parseArgs } from 'node:util';
import { KvBlockIndex } from '../../src/kvevents/block-index.js';
import { blockKeys } from '../../src/kvevents/block-keys.js';
import type { BlockStoredEvent } from '../../src/kvevents/events.js';

const { values } = parseArgs({ options: { blocks: { type: 'string', default: String(1 << 20) }, endpoints: { type: 'string', default: '1' } } });
const blocks = Number(values.blocks);
const endpoints = Number(values.endpoints);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

const BS = 16;
const PER_EVENT = 16;
const index = new KvBlockIndex({ maxBlocksPerEndpoint: 2 ** 26 - 1, maxBlocks: Number.MAX_SAFE_INTEGER });

function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

const before = heap();
const t0 = performance.now();
let hash = 1n;
for (let e = 0; e < endpoints; e++) {
  let parent: bigint | null = null;
  for (let b = 0; b < blocks / endpoints; b += PER_EVENT) {
    if (b % 4096 === 0) parent = null; // a new sequence every 4096 blocks
    const hashes: bigint[] = [];
    const tokens: number[] = [];
    for (let i = 0; i < PER_EVENT; i++) {
      hashes.push((hash++ * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn);
      for (let t = 0; t < BS; t++) tokens.push((b + i) * BS + t);
    }
    const ev: BlockStoredEvent = { type: 'BlockStored', blockHashes: hashes, parentBlockHash: parent, tokenIds: tokens, blockSize: BS, loraName: null, medium: 'GPU', extraKeysDigest: null };
    index.apply(`10.0.0.${e}:8000`, { ts: 0, events: [ev], dataParallelRank: null }, BS);
    parent = hashes[PER_EVENT - 1]!;
  }
}
const ms = performance.now() - t0;
const after = heap();
const s = index.stats();

// Lookup cost: a 4,096-token prompt (256 blocks) fully held by one endpoint, against 8 candidates.
const promptTokens = Array.from({ length: 4096 }, (_, i) => i); // the first sequence's tokens
const keys = blockKeys(promptTokens, BS, null);
const candidates = Array.from({ length: 8 }, (_, e) => `10.0.0.${e}:8000`);
const out = new Float64Array(candidates.length);
const rounds = 2_000;
const t1 = performance.now();
for (let r = 0; r < rounds; r++) index.match(keys, candidates, out);
const matchUs = ((performance.now() - t1) * 1000) / rounds;
console.log(JSON.stringify({
  blocks: s.entries,
  endpoints,
  heapMiB: Math.round((after - before) / 1048576),
  bytesPerBlock: Math.round((after - before) / s.entries),
  insertNsPerBlock: Math.round((ms * 1e6) / s.entries),
  matchedBlocks: out[0],
  matchUsPer256BlockLookup: Math.round(matchUs),
  blockKeysUsPer4096Tokens: Math.round(timeKeys(promptTokens)),
  node: process.version,
}));

function timeKeys(t: number[]): number {
  const t2 = performance.now();
  for (let r = 0; r < 2_000; r++) blockKeys(t, BS, null);
  return ((performance.now() - t2) * 1000) / 2_000;
}
