/**
 * Memory cost of the estimate-mode prefix index per block (not a test): records `--blocks`
 * distinct block hashes (default 2 Mi, the index's global bound) spread over `--endpoints`
 * endpoints (default 8) through `PrefixIndex.record`, as prompts of 128 blocks (8 KB of text)
 * hashed by `blockHashes` as the gateway does, and prints the heap growth per block after a full
 * GC. Then it records as many blocks again (every entry replaced, the LRU's churn) and prints the
 * heap per block held once more: a Map keeps deleted entries until it rehashes, so churn is where
 * its peak is. The per-endpoint and global bounds are set to hold every block. The number is
 * quoted in src/prefix/index.ts. Also times one `match` of a 2,048-block prompt against 8
 * candidates.
 *
 *   npx tsc -p tsconfig.json && node --expose-gc dist/bench/prefix/index-memory.js [--blocks 2097152] [--endpoints 8]
 */
import { parseArgs } from 'node:util';
import { Endpoint } from '../../src/core/endpoint.js';
import { blockHashes } from '../../src/prefix/block-hash.js';
import { PrefixIndex } from '../../src/prefix/index.js';

const { values } = parseArgs({ options: { blocks: { type: 'string', default: String(1 << 21) }, endpoints: { type: 'string', default: '8' } } });
const blocks = Number(values.blocks);
const endpointCount = Number(values.endpoints);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

const PROMPT_BLOCKS = 128;
const perEndpoint = Math.ceil(blocks / endpointCount);
const index = new PrefixIndex({ maxCapacity: perEndpoint, defaultCapacity: perEndpoint, maxEntries: blocks });
const endpoints = Array.from({ length: endpointCount }, (_, i) => new Endpoint({ address: `10.0.0.${i}`, port: 8000, name: `pod-${i}`, podName: `pod-${i}`, labels: {} }));

function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

/** Distinct prompts: each a different seed word, so every chain (and block) is new. */
let prompt = 0;
function fill(count: number): void {
  const filler = 'x'.repeat(64 * PROMPT_BLOCKS - 16);
  for (let done = 0; done < count; done += PROMPT_BLOCKS) {
    const text = `${String(prompt++).padStart(16, '0')}${filler}`;
    index.record(endpoints[prompt % endpointCount]!, blockHashes(text, 'model'));
  }
}

const before = heap();
fill(blocks);
const filled = heap();
fill(blocks);
const churned = heap();
const held = index.size;

// Lookup cost (wall time, so only as steady as the machine): a 2,048-block prompt (the most
// hashed per request), held whole by the first candidate, against 8 candidates.
const keys = blockHashes('y'.repeat(64 * 2048), 'model');
index.record(endpoints[0]!, keys);
const out = new Int32Array(endpoints.length);
const rounds = 2_000;
const t1 = performance.now();
for (let r = 0; r < rounds; r++) index.match(keys, endpoints, out);
const matchUs = ((performance.now() - t1) / rounds) * 1000;

const perBlock = (bytes: number): number => Math.round((bytes / held) * 10) / 10;
process.stdout.write(
  `${JSON.stringify({
    node: process.version,
    endpoints: endpointCount,
    blocksHeld: held,
    bytesPerBlockFilled: perBlock(filled - before),
    bytesPerBlockAfterChurn: perBlock(churned - before),
    heapMiBAfterChurn: Math.round(((churned - before) / 2 ** 20) * 10) / 10,
    match2048BlocksX8Us: Math.round(matchUs),
  })}\n`,
);
