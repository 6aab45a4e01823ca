import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { encode } from '@msgpack/msgpack';
import type { KvEventBatch, KvEventProblem } from '../../src/kvevents/events.js';
import {
  WIRE_LIMITS,
  decodeEventBatch,
  decodeSeq,
  encodeEventBatch,
  encodeSeq,
  type DecodedBatch,
} from '../../src/kvevents/wire.js';

const tokens = (n: number, from = 1): number[] => Array.from({ length: n }, (_, i) => from + i);

const sample: KvEventBatch = {
  ts: 1_733_000_000.25,
  events: [
    {
      type: 'BlockStored',
      blockHashes: [1n, 2n ** 63n + 5n, 2n ** 64n - 1n],
      parentBlockHash: null,
      tokenIds: tokens(48),
      blockSize: 16,
      loraName: null,
      medium: 'GPU',
      extraKeysDigest: null,
    },
    {
      type: 'BlockStored',
      blockHashes: [9_007_199_254_740_993n],
      parentBlockHash: 2n ** 64n - 1n,
      tokenIds: tokens(16, 100),
      blockSize: 16,
      loraName: 'sql-adapter',
      medium: 'CPU',
      extraKeysDigest: null,
    },
    { type: 'BlockRemoved', blockHashes: [1n, 2n ** 63n + 5n], medium: 'GPU' },
    { type: 'AllBlocksCleared' },
  ],
  dataParallelRank: 3,
};

function ok(decoded: DecodedBatch): Extract<DecodedBatch, { ok: true }> {
  if (!decoded.ok) assert.fail(`expected a batch, got: ${decoded.reason}`);
  return decoded;
}

const problemsOf = (d: DecodedBatch): Record<string, number> => (d.ok ? Object.fromEntries(d.problems) : {});

test('round trip: array and map encodings, int and bytes hashes, with and without a DP rank', () => {
  for (const encoding of ['array', 'map'] as const) {
    for (const hashes of ['int', 'bytes'] as const) {
      for (const batch of [sample, { ...sample, dataParallelRank: null }]) {
        const decoded = ok(decodeEventBatch(encodeEventBatch(batch, { encoding, hashes })));
        assert.deepEqual(decoded.batch, batch, `${encoding}/${hashes}`);
        assert.equal(decoded.problems.size, 0);
      }
    }
  }
});

test('the two encodings differ on the wire as vLLM\'s do: an array batch vs a map with a "type" tag', () => {
  const arr = encodeEventBatch(sample, { encoding: 'array', hashes: 'int' });
  const map = encodeEventBatch(sample, { encoding: 'map', hashes: 'int' });
  assert.equal(arr[0], 0x93, 'fixarray of 3: [ts, events, rank]');
  assert.equal(map[0], 0x83, 'fixmap of 3: {ts, events, data_parallel_rank}');
  assert.ok(Buffer.from(map).includes(Buffer.from('type')));
  assert.ok(!Buffer.from(arr).includes(Buffer.from('block_hashes')));
});

test('a hand-built vLLM array-form batch (array_like=True, the subscriber example)', () => {
  // Python ints from the builtin hash: negative and over 2^53, as msgspec writes them (int64/uint64).
  const neg = -8_070_450_532_247_928_832n; // -(2^63 - 2^60)
  const big = 18_000_000_000_000_000_000n; // > 2^63
  const payload = encode(
    [
      1733000000.5,
      [
        ['BlockStored', [neg, 12345], null, tokens(32), 16, null, 'GPU', null],
        ['BlockStored', [big], 12345, tokens(16, 33), 16, null, null, null, [null], 0],
        ['BlockRemoved', [neg], 'GPU'],
        ['AllBlocksCleared'],
      ],
      0,
    ],
    { useBigInt64: true },
  );
  const { batch, problems } = ok(decodeEventBatch(payload));
  assert.equal(problems.size, 0);
  assert.equal(batch.ts, 1733000000.5);
  assert.equal(batch.dataParallelRank, 0);
  assert.deepEqual(batch.events, [
    {
      type: 'BlockStored',
      blockHashes: [2n ** 64n + neg, 12345n],
      parentBlockHash: null,
      tokenIds: tokens(32),
      blockSize: 16,
      loraName: null,
      medium: 'GPU',
      extraKeysDigest: null,
    },
    {
      type: 'BlockStored',
      blockHashes: [big],
      parentBlockHash: 12345n,
      tokenIds: tokens(16, 33),
      blockSize: 16,
      loraName: null,
      medium: 'GPU',
      extraKeysDigest: null,
    },
    { type: 'BlockRemoved', blockHashes: [2n ** 64n + neg], medium: 'GPU' },
    { type: 'AllBlocksCleared' },
  ]);
});

test('the oldest vLLM and SGLang array form: [ts, events], no medium, lora_id only', () => {
  const payload = encode([
    1.5,
    [
      ['BlockStored', [7], null, tokens(4), 4, null],
      ['BlockStored', [8], 7, tokens(4, 5), 4, 3],
      ['BlockRemoved', [7]],
    ],
  ]);
  const { batch, problems } = ok(decodeEventBatch(payload));
  assert.equal(problems.size, 0);
  assert.equal(batch.dataParallelRank, null);
  const [first, second, removed] = batch.events;
  assert.equal(first?.type === 'BlockStored' && first.loraName, null);
  assert.equal(first?.type === 'BlockStored' && first.medium, 'GPU');
  // An adapter known only by its int id never counts as the base model's blocks.
  assert.equal(second?.type === 'BlockStored' && second.loraName, 'lora_id:3');
  assert.deepEqual(removed, { type: 'BlockRemoved', blockHashes: [7n], medium: 'GPU' });
});

test('a hand-built vLLM map-form batch (newer vLLM, msgspec tag field "type")', () => {
  const sha = createHash('sha256').update('block-0').digest();
  const parentSha = createHash('sha256').update('parent').digest();
  const payload = encode({
    ts: 1733000001.25,
    events: [
      {
        type: 'BlockStored',
        block_hashes: [new Uint8Array(sha)],
        parent_block_hash: new Uint8Array(parentSha),
        token_ids: tokens(16),
        block_size: 16,
        lora_id: 1,
        medium: 'GPU',
        lora_name: 'sql-adapter',
        extra_keys: [['sql-adapter']],
        group_idx: 0,
        kv_cache_spec_kind: 'full_attention',
      },
      { type: 'BlockRemoved', block_hashes: [new Uint8Array(sha)], medium: 'CPU', group_idx: 0 },
      { type: 'AllBlocksCleared' },
    ],
    data_parallel_rank: 1,
  });
  const { batch, problems } = ok(decodeEventBatch(payload));
  assert.equal(problems.size, 0);
  assert.equal(batch.dataParallelRank, 1);
  const low64 = (b: Buffer): bigint => b.readBigUInt64BE(b.length - 8);
  assert.deepEqual(batch.events[0], {
    type: 'BlockStored',
    blockHashes: [low64(sha)],
    parentBlockHash: low64(parentSha),
    tokenIds: tokens(16),
    blockSize: 16,
    loraName: 'sql-adapter',
    medium: 'GPU',
    extraKeysDigest: null, // the LoRA name alone is not an extra key: loraName carries it
  });
  assert.deepEqual(batch.events[1], { type: 'BlockRemoved', blockHashes: [low64(sha)], medium: 'CPU' });
});

test('fields a later vLLM appends are ignored: batch array elements, map keys, event fields', () => {
  const payload = encode([3.5, [['BlockRemoved', [1], 'GPU', 0, [1], 'future']], 0, 'future'], { useBigInt64: true });
  assert.deepEqual(ok(decodeEventBatch(payload)).batch, { ts: 3.5, events: [{ type: 'BlockRemoved', blockHashes: [1n], medium: 'GPU' }], dataParallelRank: 0 });
  const map = encode({ ts: 1, events: [{ type: 'AllBlocksCleared', reason: 'x' }], data_parallel_rank: null, producer: 'v2' });
  assert.deepEqual(ok(decodeEventBatch(map)).batch, { ts: 1, events: [{ type: 'AllBlocksCleared' }], dataParallelRank: null });
});

test('an array-like batch carrying map-form events (a vLLM in-between version) decodes', () => {
  const payload = encode([2.0, [{ type: 'BlockRemoved', block_hashes: [5], medium: null }]]);
  assert.deepEqual(ok(decodeEventBatch(payload)).batch.events, [{ type: 'BlockRemoved', blockHashes: [5n], medium: 'GPU' }]);
});

test('bytes hashes: the low 64 bits of the big-endian integer, any width up to 64 bytes', () => {
  const digest = createHash('sha256').update('x').digest();
  const short = Uint8Array.of(0x01, 0x02);
  const payload = encode([0, [['BlockRemoved', [digest, short], 'GPU']]]);
  const ev = ok(decodeEventBatch(payload)).batch.events[0];
  assert.deepEqual(ev, { type: 'BlockRemoved', blockHashes: [digest.readBigUInt64BE(24), 0x0102n], medium: 'GPU' });
  // The encoder's bytes form: the decoder must read the low end, not the high one.
  const enc = encodeEventBatch(
    { ts: 0, events: [{ type: 'BlockRemoved', blockHashes: [0x1122334455667788n], medium: 'GPU' }], dataParallelRank: null },
    { encoding: 'array', hashes: 'bytes' },
  );
  assert.deepEqual(ok(decodeEventBatch(enc)).batch.events[0], {
    type: 'BlockRemoved',
    blockHashes: [0x1122334455667788n],
    medium: 'GPU',
  });
});

test('extra keys: a stable digest; null when every entry is null; differs with the keys', () => {
  const stored = (extra: unknown, lora: string | null = null): unknown => [
    'BlockStored', [1, 2], null, tokens(8), 4, null, 'GPU', lora, extra,
  ];
  const digests = (extra: unknown, lora: string | null = null): number | null => {
    const ev = ok(decodeEventBatch(encode([0, [stored(extra, lora)]], { useBigInt64: true }))).batch.events[0];
    assert.equal(ev?.type, 'BlockStored');
    return ev?.type === 'BlockStored' ? ev.extraKeysDigest : null;
  };
  assert.equal(digests(null), null);
  assert.equal(digests([null, null]), null);
  assert.equal(digests([['a'], null], 'a'), null, 'the LoRA name alone');
  const img = digests([['mm-hash-1'], null]);
  assert.equal(typeof img, 'number');
  assert.equal(digests([['mm-hash-1'], null]), img, 'stable');
  assert.notEqual(digests([['mm-hash-2'], null]), img);
  assert.notEqual(digests([null, ['mm-hash-1']]), img, 'which block carries it matters');
  assert.equal(digests([['mm-hash-1', 7], null]), digests([['mm-hash-1', 7n], null]), 'int width does not matter');
});

test('wrong types in every field skip that event only (malformed_event); the rest apply', () => {
  const good = ['BlockRemoved', [1], 'GPU'];
  const badStored: unknown[][] = [
    ['BlockStored', 'x', null, tokens(4), 4, null, 'GPU', null], // hashes not a list
    ['BlockStored', [], null, [], 4, null, 'GPU', null], // no blocks
    ['BlockStored', [1.5], null, tokens(4), 4, null, 'GPU', null], // float hash
    ['BlockStored', ['h'], null, tokens(4), 4, null, 'GPU', null], // string hash
    ['BlockStored', [1], 'p', tokens(4), 4, null, 'GPU', null], // parent
    ['BlockStored', [1], null, 'tokens', 4, null, 'GPU', null], // token ids
    ['BlockStored', [1], null, [1, 2, -3, 4], 4, null, 'GPU', null], // negative token
    ['BlockStored', [1], null, [1, 2, 3, 2 ** 32], 4, null, 'GPU', null], // token over 32 bits
    ['BlockStored', [1], null, tokens(5), 4, null, 'GPU', null], // tokens ≠ hashes × block_size
    ['BlockStored', [1], null, tokens(4), 0, null, 'GPU', null], // block size 0
    ['BlockStored', [1], null, tokens(4), '4', null, 'GPU', null], // block size type
    ['BlockStored', [1], null, tokens(4), 4, 'id', 'GPU', null], // lora_id
    ['BlockStored', [1], null, tokens(4), 4, null, 7, null], // medium
    ['BlockStored', [1], null, tokens(4), 4, null, 'GPU', 7], // lora_name
    ['BlockStored', [1], null, tokens(4), 4, null, 'GPU', null, 'extra'], // extra_keys
    ['BlockStored', [1], null], // too short
    ['BlockRemoved', 1, 'GPU'],
    ['BlockRemoved', [true], 'GPU'],
    ['BlockRemoved', [1], ['GPU']],
    ['BlockRemoved', [1], 'GPU', 'g'], // group_idx
    ['BlockStored', [1], null, tokens(4), 4, null, 'GPU', null, null, -1], // group_idx
    [],
    [7, [1]], // tag not a string
  ];
  for (const bad of [...badStored, 'BlockStored', 42, null, { block_hashes: [1] }]) {
    const decoded = decodeEventBatch(encode([0, [good, bad, good]]));
    assert.deepEqual(problemsOf(decoded), { malformed_event: 1 }, JSON.stringify(bad));
    assert.equal(ok(decoded).batch.events.length, 2);
  }
});

test('unknown tags, unmodelled tiers and other KV-cache groups are unknown_event; the rest of the batch applies', () => {
  const decoded = decodeEventBatch(
    encode([
      0,
      [
        ['BlockStored', [1], null, tokens(2), 2, null, 'GPU', null],
        ['BlockEvicted', [1]],
        { type: 'SomethingNew', x: 1 },
        ['BlockRemoved', [1], 'DISK'],
        ['BlockRemoved', [1], 'CPU_PINNED'],
        // A hybrid model's other KV-cache groups (e.g. sliding window): not the prefix's blocks.
        ['BlockStored', [1], null, tokens(2), 2, null, 'GPU', null, null, 1],
        { type: 'BlockRemoved', block_hashes: [1], medium: 'GPU', group_idx: 2 },
        ['BlockRemoved', [1], 'GPU', 0],
      ],
    ]),
  );
  assert.deepEqual(problemsOf(decoded), { unknown_event: 5 });
  assert.deepEqual(ok(decoded).batch.events.map((e) => e.type), ['BlockStored', 'BlockRemoved', 'BlockRemoved']);
});

test('a batch over the event bound: the first maxEventsPerBatch apply, the excess is too_many_events', () => {
  const limits = { ...WIRE_LIMITS, maxEventsPerBatch: 10 };
  const events = Array.from({ length: 25 }, (_, i) => ['BlockRemoved', [i], 'GPU']);
  const decoded = decodeEventBatch(encode([0, events]), limits);
  assert.deepEqual(problemsOf(decoded), { too_many_events: 15 });
  assert.equal(ok(decoded).batch.events.length, 10);
});

test('hostile payloads: answered without throwing, {ok:false} when no batch can be read', () => {
  const valid = encodeEventBatch(sample, { encoding: 'array', hashes: 'bytes' });
  const cases: Array<[string, Uint8Array]> = [
    ['empty', new Uint8Array(0)],
    ['garbage', Uint8Array.of(0xc1, 0xc1, 0xc1)],
    ['a string', encode('hello')],
    ['a number', encode(5)],
    ['map without events', encode({ ts: 1 })],
    ['ts not a number', encode(['now', []])],
    ['events not a list', encode([1, { a: 1 }])],
    ['rank not an int', encode([1, [], 'zero'])],
    ['rank negative', encode([1, [], -1])],
    ['too few batch fields', encode([1])],
    ['trailing bytes', Uint8Array.from([...encode([1, []]), 0x00])],
    ['__proto__ key', Uint8Array.from([0x82, 0xa2, 0x74, 0x73, 0x01, 0xa9, ...Buffer.from('__proto__'), 0x90])],
    // A 5-byte header declaring 2^32−1 elements, and a map declaring 2^32−1 pairs.
    ['huge declared array', Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff, 0x01)],
    ['huge declared map', Uint8Array.of(0xdf, 0xff, 0xff, 0xff, 0xff, 0x01)],
    ['huge declared string', Uint8Array.of(0x92, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x61)],
    ['huge declared bin', Uint8Array.of(0x92, 0x01, 0xc6, 0x7f, 0xff, 0xff, 0xff, 0x61)],
    // 100,000 nested one-element arrays: no stack, no 100,000 arrays built.
    ['deep nesting', new Uint8Array(100_000).fill(0x91)],
    ['long string', encode([1, [['BlockStored', [1], null, [1], 1, null, 'GPU', 'x'.repeat(5000)]]])],
  ];
  for (let cut = 1; cut < valid.length; cut += Math.max(1, Math.floor(valid.length / 40))) {
    cases.push([`truncated at ${cut}`, valid.subarray(0, cut)]);
  }
  for (const [name, bytes] of cases) {
    let decoded: DecodedBatch | undefined;
    assert.doesNotThrow(() => {
      decoded = decodeEventBatch(bytes);
    }, name);
    assert.equal(decoded?.ok, false, name);
  }
  assert.equal(decodeEventBatch(undefined as unknown as Uint8Array).ok, false);
  assert.equal(decodeEventBatch(new Uint8Array(WIRE_LIMITS.maxPayloadBytes + 1)).ok, false, 'over the payload bound');
});

test('a 10^6-element array is bounded: as events (too_many_events), as hashes (malformed_event)', () => {
  const million = 1_000_000;
  // [ts, events] written by hand: an array32 header declaring 10^6 events, the first
  // maxEventsPerBatch of them AllBlocksCleared, the rest nil (1 byte each, so it fits the payload bound).
  const tag = encode(['AllBlocksCleared']);
  const applied = WIRE_LIMITS.maxEventsPerBatch;
  const events = Buffer.alloc(5 + applied * tag.length + (million - applied), 0xc0);
  events[0] = 0xdd;
  events.writeUInt32BE(million, 1);
  for (let i = 0; i < applied; i++) events.set(tag, 5 + i * tag.length);
  const batch = Buffer.concat([Buffer.of(0x92, 0x00), events]);
  const decoded = decodeEventBatch(batch);
  assert.deepEqual(problemsOf(decoded), { too_many_events: million - applied });
  assert.equal(ok(decoded).batch.events.length, applied);

  // One BlockRemoved with 10^6 hashes (fixint 1s): over maxBlocksPerEvent, the event is skipped.
  const hashes = Buffer.alloc(5 + million, 0x01);
  hashes[0] = 0xdd;
  hashes.writeUInt32BE(million, 1);
  const removed = Buffer.concat([Buffer.of(0x92, 0x00, 0x91, 0x93), Buffer.from(encode('BlockRemoved')), hashes, Buffer.from(encode('GPU'))]);
  assert.deepEqual(problemsOf(decodeEventBatch(removed)), { malformed_event: 1 });

  // Over the decoder's array bound altogether (more than maxTokensPerEvent): no batch.
  const huge = Buffer.alloc(5 + 2_000_000, 0xc0);
  huge[0] = 0xdd;
  huge.writeUInt32BE(2_000_000, 1);
  assert.equal(decodeEventBatch(Buffer.concat([Buffer.of(0x92, 0x00), huge])).ok, false);
});

test('random bytes and random mutations of a valid batch never throw', () => {
  let seed = 12345;
  const rand = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed;
  };
  const valid = encodeEventBatch(sample, { encoding: 'map', hashes: 'int' });
  for (let i = 0; i < 3000; i++) {
    const bytes = i % 2 === 0 ? Uint8Array.from(valid) : new Uint8Array(rand() % 64);
    const flips = 1 + (rand() % 4);
    for (let f = 0; f < flips && bytes.length > 0; f++) bytes[rand() % bytes.length] = rand() & 0xff;
    const decoded = decodeEventBatch(bytes);
    if (decoded.ok) {
      for (const problem of decoded.problems.keys()) assert.ok(['malformed_event', 'unknown_event', 'too_many_events'].includes(problem as KvEventProblem));
    }
  }
});

test('seq frames: 8-byte big-endian signed; the replay end marker is −1', () => {
  assert.deepEqual([...encodeSeq(0n)], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...encodeSeq(258n)], [0, 0, 0, 0, 0, 0, 1, 2]);
  assert.deepEqual([...encodeSeq(-1n)], [255, 255, 255, 255, 255, 255, 255, 255]);
  assert.equal(decodeSeq(encodeSeq(-1n)), -1n);
  assert.equal(decodeSeq(encodeSeq(2n ** 40n)), 2n ** 40n);
  assert.equal(decodeSeq(Uint8Array.of(1, 2, 3)), undefined);
  assert.equal(decodeSeq(new Uint8Array(9)), undefined);
  const offset = new Uint8Array(16);
  offset.set(encodeSeq(7n), 4);
  assert.equal(decodeSeq(offset.subarray(4, 12)), 7n, 'a view into a larger buffer');
});
