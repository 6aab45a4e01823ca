import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KvBlockIndex } from '../../src/kvevents/block-index.js';
import { blockKeys } from '../../src/kvevents/block-keys.js';
import type { KvEventBatch } from '../../src/kvevents/events.js';
import { KvEventSubscriptions, kvEventTargets } from '../../src/kvevents/subscriptions.js';
import { TestKvPublisher } from '../support/kv-publisher.js';
import { exposeGc, memory } from '../support/memory.js';
import { waitFor } from '../support/smart.js';

const BS = 16;
const EP = '127.0.0.1:8000';

/** Token ids of sequence `n` (distinct per n), `blocks` full blocks long. */
function tokens(n: number, blocks: number): number[] {
  return Array.from({ length: blocks * BS }, (_, i) => 100_000 * (n + 1) + i);
}

/** A batch storing sequence `n` as `blocks` root blocks with engine hashes n*1000+i. */
function storeSeq(n: number, blocks = 2): KvEventBatch {
  const hashes = Array.from({ length: blocks }, (_, i) => BigInt(n * 1000 + i + 1));
  return { ts: 0, dataParallelRank: null, events: [{ type: 'BlockStored', blockHashes: hashes, parentBlockHash: null, tokenIds: tokens(n, blocks), blockSize: BS, loraName: null, medium: 'GPU', extraKeysDigest: null }] };
}

/** Blocks of sequence `n` the index holds for the endpoint. */
function held(index: KvBlockIndex, n: number, blocks = 2): number {
  const out = new Float64Array(1);
  index.match(blockKeys(tokens(n, blocks), BS, null), [EP], out);
  return out[0]!;
}

async function setup(pub: TestKvPublisher, options: { replay?: boolean; topic?: string; tuning?: ConstructorParameters<typeof KvEventSubscriptions>[1] } = {}) {
  const index = new KvBlockIndex();
  const warnings: string[] = [];
  const subs = new KvEventSubscriptions(index, { onWarning: (_k, m) => warnings.push(m), ...options.tuning });
  const t = kvEventTargets(
    { endpoint: `tcp://{ip}:${pub.eventsPort}`, ...(options.replay ?? true ? { replayEndpoint: `tcp://{ip}:${pub.replayPort}` } : {}), topic: options.topic ?? 'kv@{ip}:{port}@{model}' },
    { address: '127.0.0.1', port: 8000, name: 'pod-a' },
  );
  const before = pub.subscribed;
  subs.upsert(EP, { ...t, blockSize: BS });
  await waitFor('the subscriber to subscribe', () => pub.subscribed > before);
  return { index, subs, warnings };
}

test('kvEventTargets expands {ip}, {port}, {model} and DP ranks (port + r)', () => {
  const p = { endpoint: 'tcp://{ip}:5557', replayEndpoint: 'tcp://{ip}:5558', topic: 'kv@{ip}:{port}@{model}' };
  const t0 = kvEventTargets(p, { address: '10.0.0.7', port: 8000, name: 'pod-a' });
  assert.equal(t0.events, 'tcp://10.0.0.7:5557');
  assert.equal(t0.replay, 'tcp://10.0.0.7:5558');
  assert.ok(t0.topic!('kv@10.0.0.7:8000@meta-llama/Llama-3.1-8B'));
  assert.ok(!t0.topic!('kv@10.0.0.77:8000@m'), 'the dots of the address are literal');
  assert.ok(!t0.topic!('kv@10.0.0.7:8001@m'));
  assert.ok(!t0.topic!('kv@10.0.0.7:8000@'));
  const t2 = kvEventTargets(p, { address: '10.0.0.7', port: 8002, name: 'pod-a-rank-2' });
  assert.equal(t2.events, 'tcp://10.0.0.7:5559');
  assert.equal(t2.replay, 'tcp://10.0.0.7:5560');
  assert.ok(t2.topic!('kv@10.0.0.7:8002@m'));
  const v6 = kvEventTargets({ endpoint: 'tcp://{ip}:5557' }, { address: 'fd00::1', port: 8000, name: 'p' });
  assert.equal(v6.events, 'tcp://[fd00::1]:5557');
  assert.equal(v6.topic, undefined);
  assert.equal(v6.replay, undefined);
});

test('events reach the index; a malformed payload is counted and the next good one applies; a foreign topic is counted once', async () => {
  const pub = await TestKvPublisher.start({ encoding: 'map' });
  const { index, subs, warnings } = await setup(pub);
  try {
    await pub.publish(storeSeq(1));
    await waitFor('sequence 1 indexed', () => held(index, 1) === 2);
    await pub.publish(Buffer.from([0xc1, 0xff, 0x00])); // not msgpack
    await pub.publish(storeSeq(2));
    await waitFor('sequence 2 indexed', () => held(index, 2) === 2);
    assert.equal(subs.stats().problems.get('malformed_batch'), 1);
    await pub.publish(storeSeq(3), { topic: 'kv@10.9.9.9:8000@m' });
    await pub.publish(storeSeq(4), { topic: 'kv@10.9.9.9:8000@m' });
    await pub.publish(storeSeq(5));
    await waitFor('sequence 5 indexed', () => held(index, 5) === 2);
    assert.equal(held(index, 3), 0);
    const s = subs.stats();
    assert.equal(s.problems.get('topic_mismatch'), 2);
    assert.equal(warnings.filter((w) => w.includes('topic')).length, 1, 'one warning, not one per message');
    assert.equal(s.events.BlockStored, 3);
    assert.equal(s.resets.size, 0);
    assert.equal(s.connected, 1);
  } finally {
    await subs.close();
    await pub.close();
  }
});

test('a gap is filled by replay (nothing dropped); a gap replay cannot cover drops the endpoint’s entries', async () => {
  const pub = await TestKvPublisher.start();
  const { index, subs } = await setup(pub);
  try {
    await pub.publish(storeSeq(1));
    await waitFor('sequence 1 indexed', () => held(index, 1) === 2);
    const replays = pub.replayRequests;
    await pub.publish(storeSeq(2), { send: false }); // lost on the way
    await pub.publish(storeSeq(3));
    await waitFor('the lost batch replayed', () => held(index, 2) === 2 && held(index, 3) === 2);
    assert.equal(held(index, 1), 2);
    assert.equal(pub.replayRequests, replays + 1);
    assert.equal(subs.stats().resets.size, 0);

    // Now a gap the replay buffer no longer reaches: the old entries must not be trusted.
    await pub.publish(storeSeq(4), { send: false });
    pub.forgetBefore(pub.nextSeq + 1n);
    await pub.publish(storeSeq(5));
    await waitFor('a gap reset', () => subs.stats().resets.get('gap') === 1);
    await waitFor('rebuilt from what follows', () => held(index, 5) === 2);
    assert.equal(held(index, 1), 0);
    assert.equal(held(index, 3), 0);
    assert.equal(held(index, 4), 0);
  } finally {
    await subs.close();
    await pub.close();
  }
});

test('a subscriber that starts late catches up through the replay socket', async () => {
  const pub = await TestKvPublisher.start();
  // Published before anyone subscribed: lost on the PUB socket, kept in the replay buffer.
  await pub.publish(storeSeq(1));
  await pub.publish({ ts: 0, dataParallelRank: null, events: [{ type: 'BlockRemoved', blockHashes: [1001n, 1002n], medium: 'GPU' }] });
  await pub.publish(storeSeq(2));
  const { index, subs } = await setup(pub);
  try {
    await pub.publish(storeSeq(3));
    await waitFor('history and live batch indexed', () => held(index, 2) === 2 && held(index, 3) === 2);
    assert.equal(held(index, 1), 0, 'the removal in the history applied too');
    assert.equal(subs.stats().resets.size, 0);
  } finally {
    await subs.close();
    await pub.close();
  }
});

test('a gap with no replay socket, or a replay that never answers, resets', async () => {
  for (const mode of ['no replay', 'silent replay'] as const) {
    const pub = await TestKvPublisher.start();
    pub.answerReplays = mode === 'no replay';
    const { index, subs } = await setup(pub, { replay: mode === 'silent replay', tuning: { tuning: { replayTimeoutMs: 300 } } });
    try {
      await pub.publish(storeSeq(1));
      await waitFor('sequence 1 indexed', () => held(index, 1) === 2);
      await pub.publish(storeSeq(2), { send: false });
      await pub.publish(storeSeq(3));
      await pub.publish(storeSeq(4));
      await waitFor(`${mode}: gap reset`, () => subs.stats().resets.get('gap') === 1);
      await waitFor(`${mode}: rebuilt`, () => held(index, 3) === 2 && held(index, 4) === 2);
      assert.equal(held(index, 1), 0, mode);
    } finally {
      await subs.close();
      await pub.close();
    }
  }
});

test('seq going backwards (a new engine process) resets the endpoint', async () => {
  const pub = await TestKvPublisher.start();
  const { index, subs } = await setup(pub);
  try {
    await pub.publish(storeSeq(1));
    await pub.publish(storeSeq(2));
    await waitFor('indexed', () => held(index, 2) === 2);
    // Same sockets, but the counter and replay buffer start again (as a restarted engine's would).
    pub.resetSequence();
    await pub.publish(storeSeq(7));
    await waitFor('restart reset', () => subs.stats().resets.get('restart') === 1);
    await waitFor('new process indexed', () => held(index, 7) === 2);
    assert.equal(held(index, 1), 0);
    assert.equal(held(index, 2), 0);
  } finally {
    await subs.close();
    await pub.close();
  }
});

test('a publisher that restarts on the same port: the subscriber reconnects and starts clean', async () => {
  let pub = await TestKvPublisher.start();
  const { index, subs } = await setup(pub);
  try {
    await pub.publish(storeSeq(1));
    await pub.publish(storeSeq(2));
    await waitFor('indexed', () => held(index, 2) === 2);
    const ports = { events: pub.eventsPort, replay: pub.replayPort! };
    await pub.close();
    await waitFor('disconnected', () => subs.stats().connected === 0);
    pub = await TestKvPublisher.start({ ports });
    await waitFor('resubscribed', () => pub.subscribed > 0);
    await waitFor('the old entries dropped', () => held(index, 1) === 0 && held(index, 2) === 0);
    await pub.publish(storeSeq(3));
    await waitFor('the new process indexed', () => held(index, 3) === 2);
    assert.equal(held(index, 1), 0);
    const s = subs.stats();
    assert.equal(s.resets.get('reconnect'), 1);
    assert.equal(s.connected, 1);
  } finally {
    await subs.close();
    await pub.close();
  }
});

test('a new process already past the old seq on reconnect is not mistaken for the old one; its own history is read from the start', async () => {
  let pub = await TestKvPublisher.start();
  const { index, subs } = await setup(pub);
  try {
    await pub.publish(storeSeq(1));
    await pub.publish(storeSeq(2));
    await waitFor('indexed', () => held(index, 2) === 2);
    const ports = { events: pub.eventsPort, replay: pub.replayPort! };
    await pub.close();
    await waitFor('disconnected', () => subs.stats().connected === 0);
    // The new process has published seq 0..2 before the subscriber is back: a replay from seq 1
    // returns ITS batch 1, not the one the subscriber applied.
    pub = await TestKvPublisher.start({ ports, history: [storeSeq(5), storeSeq(6), storeSeq(7)] });
    await waitFor('reset on reconnect', () => subs.stats().resets.get('reconnect') === 1);
    await pub.publish(storeSeq(8));
    await waitFor('the new process indexed', () => held(index, 8) === 2);
    assert.equal(held(index, 2), 0, 'the old process’s blocks are gone');
    // What the new process published before the subscriber was back is read from its replay
    // buffer from the start, on a clean slate.
    await waitFor('the new process’s earlier batches indexed', () => held(index, 5) === 2 && held(index, 7) === 2);
  } finally {
    await subs.close();
    await pub.close();
  }
});

test('a publisher that comes back without losing anything keeps the entries (replay proves continuity)', async () => {
  // The replay socket stays; only the events socket's connection drops and comes back.
  const pub = await TestKvPublisher.start();
  const { index, subs } = await setup(pub);
  try {
    await pub.publish(storeSeq(1));
    await waitFor('indexed', () => held(index, 1) === 2);
    const replays = pub.replayRequests;
    await pub.rebindEvents();
    await waitFor('a replay after the reconnect', () => pub.replayRequests > replays);
    await pub.publish(storeSeq(2));
    await waitFor('the next batch applies', () => held(index, 2) === 2);
    assert.equal(held(index, 1), 2, 'entries kept: the replay returned the last applied batch');
    assert.equal(subs.stats().resets.size, 0);
  } finally {
    await subs.close();
    await pub.close();
  }
});

test('a flood the subscriber cannot keep up with: memory stays bounded, gaps recover, the stream stays usable', async () => {
  // The publisher drops what the subscriber cannot take (a small send HWM), as a hostile or
  // overloaded engine would overrun any fixed buffer: the subscriber must neither grow nor stall.
  const pub = await TestKvPublisher.start({ sendHighWaterMark: 64 });
  const index = new KvBlockIndex({ maxBlocksPerEndpoint: 4096 });
  const subs = new KvEventSubscriptions(index, { tuning: { receiveHighWaterMark: 16, maxBufferedBatches: 64, replayTimeoutMs: 2_000 } });
  const t = kvEventTargets({ endpoint: `tcp://{ip}:${pub.eventsPort}`, replayEndpoint: `tcp://{ip}:${pub.replayPort}` }, { address: '127.0.0.1', port: 8000, name: 'p' });
  subs.upsert(EP, { ...t, blockSize: BS });
  await waitFor('subscribed', () => pub.subscribed > 0);
  try {
    const gc = exposeGc();
    gc();
    const before = memory();
    // 20,000 batches of 8 distinct blocks (160,000 blocks, ~30 MB on the wire) in one burst: the
    // sending loop never yields to the subscriber's receive loop, so nearly all of it piles up.
    for (let i = 0; i < 20_000; i++) {
      await pub.publish(storeSeq(10 + i, 8));
      if (i % 1000 === 999) pub.forgetBefore(pub.nextSeq - 1000n); // a replay buffer of ~1,000 batches
    }
    // The publisher may drop any one message, so keep publishing until one gets through and applies.
    await waitFor('a batch after the flood applies', async () => {
      if (process.env.KV_DEBUG) console.log(JSON.stringify({ ...subs.stats(), problems: [...subs.stats().problems], resets: [...subs.stats().resets], replays: pub.replayRequests }));
      await pub.publish(storeSeq(1, 2));
      return held(index, 1) === 2;
    }, 120_000);
    gc();
    const grew = memory() - before;
    const s = subs.stats();
    if (process.env.KV_DEBUG) console.log(JSON.stringify({ ...s, problems: [...s.problems], resets: [...s.resets], replays: pub.replayRequests, grew }));
    assert.ok(index.entriesOf(EP) <= 4096, `entries ${index.entriesOf(EP)}`);
    assert.ok(s.batches < 20_001, 'the flood overran the subscriber (otherwise this test shows nothing)');
    assert.ok(grew < 64 * 1024 * 1024, `heap + buffers grew ${grew} bytes`);
    assert.equal(s.connected, 1);
  } finally {
    await subs.close();
    await pub.close();
  }
});

test('an endpoint that leaves is unsubscribed and its entries dropped; a new block size drops them too', async () => {
  const pub = await TestKvPublisher.start();
  const { index, subs } = await setup(pub);
  try {
    await pub.publish(storeSeq(1));
    await waitFor('indexed', () => held(index, 1) === 2);
    const t = kvEventTargets({ endpoint: `tcp://{ip}:${pub.eventsPort}`, replayEndpoint: `tcp://{ip}:${pub.replayPort}` }, { address: '127.0.0.1', port: 8000, name: 'p' });
    subs.upsert(EP, { ...t, blockSize: 32 });
    assert.equal(index.entriesOf(EP), 0, 'keys of another block size no longer match requests');
    subs.upsert(EP, { ...t, blockSize: BS });
    await pub.publish(storeSeq(2));
    await waitFor('indexed again', () => held(index, 2) === 2);
    subs.remove(EP);
    assert.equal(index.has(EP), false);
    assert.equal(subs.stats().subscribers, 0);
    await pub.publish(storeSeq(3));
    await pub.publish(storeSeq(4));
    // Nothing arrives for a removed endpoint (give the sockets time to prove it wrong).
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(index.has(EP), false);
  } finally {
    await subs.close();
    await pub.close();
  }
});

test('close() leaves no open handles: a process that subscribes, receives and closes exits by itself', async () => {
  const dist = fileURLToPath(new URL('../../', import.meta.url));
  const script = `
    import { KvBlockIndex } from ${JSON.stringify(`${dist}src/kvevents/block-index.js`)};
    import { KvEventSubscriptions } from ${JSON.stringify(`${dist}src/kvevents/subscriptions.js`)};
    import { TestKvPublisher } from ${JSON.stringify(`${dist}test/support/kv-publisher.js`)};
    const pub = await TestKvPublisher.start();
    const index = new KvBlockIndex();
    const subs = new KvEventSubscriptions(index);
    subs.upsert('e', { events: pub.events, replay: pub.replay, blockSize: 16 });
    subs.upsert('f', { events: 'tcp://127.0.0.1:1', blockSize: 16 }); // never connects
    while (pub.subscribed === 0) await new Promise((r) => setTimeout(r, 20));
    await pub.publish({ ts: 0, dataParallelRank: null, events: [{ type: 'AllBlocksCleared' }] });
    while (subs.stats().batches === 0) await new Promise((r) => setTimeout(r, 20));
    await subs.close();
    await pub.close();
    console.log('closed');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
  clearTimeout(timer);
  assert.equal(signal, null, 'the process had to be killed: something kept it alive');
  assert.equal(code, 0);
  assert.match(out, /closed/);
});

test('a warm cache is read at first contact, before the engine publishes anything new', async () => {
  // The engine stored two sequences before this gateway subscribed; it stays quiet afterwards.
  const pub = await TestKvPublisher.start({ history: [storeSeq(1), storeSeq(2)] });
  const { index, subs } = await setup(pub);
  try {
    await waitFor('the history indexed from the replay buffer', () => held(index, 1) === 2 && held(index, 2) === 2);
    await pub.publish(storeSeq(3));
    await waitFor('the live batch after it', () => held(index, 3) === 2);
    assert.equal(subs.stats().resets.size, 0);
  } finally {
    await subs.close();
    await pub.close();
  }
});

test('a publisher whose topic does not match: what the catch-up read is dropped at its first live batch, and nothing of it applies afterwards', async () => {
  const pub = await TestKvPublisher.start({ topic: 'kv@10.9.9.9:9999@other', history: [storeSeq(1)] });
  const { index, subs, warnings } = await setup(pub);
  try {
    await waitFor('the catch-up read the buffer', () => held(index, 1) === 2);
    await pub.publish(storeSeq(2)); // live, with the foreign topic
    await waitFor('the catch-up dropped', () => held(index, 1) === 0 && subs.stats().resets.get('topic') === 1);
    await pub.publish(storeSeq(3), { send: false }); // a gap: never repaired through replay
    await pub.publish(storeSeq(4));
    await waitFor('both foreign batches counted', () => (subs.stats().problems.get('topic_mismatch') ?? 0) >= 2);
    assert.equal(held(index, 2) + held(index, 3) + held(index, 4), 0);
    assert.equal(warnings.filter((w) => w.includes('topic')).length, 1);
  } finally {
    await subs.close();
    await pub.close();
  }
});

test('an address nothing publishes on is said once, after the connect warning delay', async () => {
  const index = new KvBlockIndex();
  const warnings: string[] = [];
  const subs = new KvEventSubscriptions(index, { onWarning: (_k, m) => warnings.push(m), tuning: { connectWarningMs: 50 } });
  // A port we hold where nothing publishes: every connection is closed at once. (A port taken
  // from a closed publisher is not enough: libzmq unbinds on its own thread a moment after close,
  // so on a busy machine the subscriber could still complete a handshake there.)
  const refuser = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => refuser.listen(0, '127.0.0.1', resolve));
  const port = (refuser.address() as net.AddressInfo).port;
  try {
    subs.upsert(EP, { events: `tcp://127.0.0.1:${port}`, blockSize: BS });
    await waitFor('the warning', () => warnings.some((w) => /not connected to tcp:\/\/127\.0\.0\.1:\d+ after/.test(w)));
    assert.equal(subs.connected(EP), false);
    assert.equal(warnings.filter((w) => w.includes('not connected')).length, 1);
  } finally {
    await subs.close();
    await new Promise((resolve) => refuser.close(resolve));
  }
});

test('blocks the pool block size does not divide are warned once, then counted', async () => {
  const pub = await TestKvPublisher.start();
  const { subs, warnings } = await setup(pub);
  try {
    const odd: KvEventBatch = { ...storeSeq(1), events: [{ ...(storeSeq(1).events[0] as Extract<KvEventBatch['events'][number], { type: 'BlockStored' }>), blockSize: 24, tokenIds: tokens(1, 3).slice(0, 48) }] };
    await pub.publish(odd);
    await pub.publish({ ...odd, ts: 1 });
    await waitFor('both counted', () => (subs.stats().problems.get('block_size_mismatch') ?? 0) >= 2);
    assert.equal(warnings.filter((w) => w.includes('block size')).length, 1);
  } finally {
    await subs.close();
    await pub.close();
  }
});
