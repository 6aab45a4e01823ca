import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { Publisher, Router } from 'zeromq';
import { FrameDecoder, encodeMessage } from '../../src/kvevents/zmtp/frames.js';
import { encodeGreeting } from '../../src/kvevents/zmtp/greeting.js';
import { ZmtpDealer, ZmtpSubscriber } from '../../src/kvevents/zmtp/index.js';
import { KvBlockIndex } from '../../src/kvevents/block-index.js';
import { KvEventSubscriptions } from '../../src/kvevents/subscriptions.js';
import { encodeEventBatch, encodeSeq } from '../../src/kvevents/wire.js';
import { exposeGc, memory } from '../support/memory.js';
import { waitFor } from '../support/smart.js';

/** A zeromq.js PUB on a free loopback port. */
async function publisher(): Promise<Publisher> {
  const pub = new Publisher({ linger: 0 });
  await pub.bind('tcp://127.0.0.1:*');
  return pub;
}

/**
 * Publishes probes until one arrives: a PUB drops what it sends before the subscription has
 * reached it (ZeroMQ's "slow joiner"), so the tests start only once the stream is proven.
 */
async function joined(pub: Publisher, sub: ZmtpSubscriber): Promise<void> {
  const it = sub[Symbol.asyncIterator]();
  let got = false;
  const reader = it.next().then(() => { got = true; });
  await waitFor('the subscription reached the publisher', async () => {
    await pub.send(['probe']);
    return got;
  });
  await reader;
  // Probes sent after the first one that arrived are read and dropped.
  await pub.send(['probe-end']);
  for (;;) {
    const m = await sub.receive();
    if (m[0]!.toString() === 'probe-end') return;
  }
}

test('a SUB gets a libzmq PUB\'s messages in order with their frames (a vLLM-shaped 3-frame batch)', async () => {
  const pub = await publisher();
  const sub = new ZmtpSubscriber({ receiveHighWaterMark: 1_000 });
  try {
    sub.subscribe();
    sub.connect(pub.lastEndpoint!);
    await joined(pub, sub);
    const payload = Buffer.alloc(300_000, 7); // over 255 bytes: a long frame
    for (let i = 0; i < 100; i++) await pub.send(['kv@127.0.0.1:8000@m', encodeSeq(BigInt(i)), i === 50 ? payload : Buffer.from([i])]);
    await pub.send('one frame');
    await pub.send(['two', '']);
    for (let i = 0; i < 100; i++) {
      const m = await sub.receive();
      assert.equal(m.length, 3);
      assert.equal(m[0]!.toString(), 'kv@127.0.0.1:8000@m');
      assert.deepEqual(m[1], encodeSeq(BigInt(i)));
      assert.deepEqual(m[2], i === 50 ? payload : Buffer.from([i]));
    }
    assert.deepEqual((await sub.receive()).map(String), ['one frame']);
    assert.deepEqual((await sub.receive()).map(String), ['two', '']);
  } finally {
    sub.close();
    pub.close();
  }
});

test('a SUB reconnects when its publisher goes away and comes back on the same port, and resubscribes', async () => {
  let pub = await publisher();
  const endpoint = pub.lastEndpoint!;
  const sub = new ZmtpSubscriber();
  const events: string[] = [];
  sub.events.on('connect', () => events.push('connect'));
  sub.events.on('disconnect', () => events.push('disconnect'));
  try {
    sub.subscribe();
    sub.connect(endpoint);
    await joined(pub, sub);
    pub.close();
    await waitFor('disconnect', () => events.includes('disconnect'));
    pub = new Publisher({ linger: 0 });
    const again = pub;
    await waitFor('the port bound again', async () => again.bind(endpoint).then(() => true, () => false));
    await waitFor('connect again', () => events.filter((e) => e === 'connect').length === 2);
    await joined(pub, sub); // only arrives if the subscription was sent on the new connection
    await pub.send(['after', 'x']);
    assert.deepEqual((await sub.receive()).map(String), ['after', 'x']);
    assert.deepEqual(events, ['connect', 'disconnect', 'connect']);
  } finally {
    sub.close();
    pub.close();
  }
});

test('past the receive high-water mark a SUB drops new messages instead of buffering them', async () => {
  const pub = await publisher();
  const sub = new ZmtpSubscriber({ receiveHighWaterMark: 5 });
  try {
    sub.subscribe();
    sub.connect(pub.lastEndpoint!);
    await joined(pub, sub);
    for (let i = 0; i < 50; i++) await pub.send(['t', String(i)]);
    await waitFor('45 dropped', () => sub.dropped >= 45);
    await pub.send(['t', 'later']); // dropped too: the queue is still full
    await waitFor('46 dropped', () => sub.dropped >= 46);
    for (let i = 0; i < 5; i++) assert.deepEqual((await sub.receive()).map(String), ['t', String(i)]);
    await pub.send(['t', 'after reading']);
    assert.deepEqual((await sub.receive()).map(String), ['t', 'after reading']);
    assert.equal(sub.dropped, 46);
  } finally {
    sub.close();
    pub.close();
  }
});

/**
 * A raw TCP "publisher" that speaks the greeting and READY correctly, then sends `hostile` on its
 * first connection and a good 3-frame message on the next ones.
 */
async function hostilePublisher(hostile: () => Buffer): Promise<{ endpoint: string; connections: () => number; close: () => Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.resume();
    const n = connections++;
    s.write(Buffer.concat([encodeGreeting(), encodeReadyAs('PUB')]));
    s.write(n === 0 ? hostile() : encodeMessage(['t', 'seq', 'fine']));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    endpoint: `tcp://127.0.0.1:${port}`,
    connections: () => connections,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** READY announcing any socket type (encodeReady only knows our own two). */
function encodeReadyAs(type: string): Buffer {
  const name = Buffer.from('Socket-Type');
  const value = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(value.length);
  const body = Buffer.concat([Buffer.from([5]), Buffer.from('READY'), Buffer.from([name.length]), name, len, value]);
  return Buffer.concat([Buffer.from([0x04, body.length]), body]);
}

test('a peer sending a message of a million empty frames is cut off at the frame bound, memory stays flat, and the SUB reconnects', async () => {
  const frames = 4_000_000;
  const peer = await hostilePublisher(() => {
    const b = Buffer.alloc(frames * 2); // each frame: flags MORE, size 0; the last without MORE
    for (let i = 0; i < frames - 1; i++) b[2 * i] = 0x01;
    return b;
  });
  const sub = new ZmtpSubscriber();
  try {
    const gc = exposeGc();
    gc();
    const before = memory();
    sub.subscribe();
    sub.connect(peer.endpoint);
    assert.deepEqual((await sub.receive()).map(String), ['t', 'seq', 'fine']);
    gc();
    const grew = memory() - before;
    // Gathered whole, the message would hold 4 M Buffer references (32 MB) at the least.
    assert.ok(grew < 16 * 1024 * 1024, `grew ${grew} bytes`);
    assert.equal(sub.violations.get('too_many_frames'), 1);
    assert.ok(peer.connections() >= 2);
  } finally {
    sub.close();
    await peer.close();
  }
});

test('a peer declaring a 2^40-byte frame is cut off before anything is allocated, and the SUB reconnects', async () => {
  const peer = await hostilePublisher(() => {
    const h = Buffer.alloc(9 + 1024);
    h[0] = 0x02; // LONG
    h.writeBigUInt64BE(1n << 40n, 1);
    return h;
  });
  const sub = new ZmtpSubscriber({ maxMessageSize: 1024 * 1024 });
  try {
    sub.subscribe();
    sub.connect(peer.endpoint);
    assert.deepEqual((await sub.receive()).map(String), ['t', 'seq', 'fine']);
    assert.equal(sub.violations.get('frame_too_large'), 1);
  } finally {
    sub.close();
    await peer.close();
  }
});

test('a message over the byte bound, or a peer of the wrong socket type, is refused', async () => {
  const big = await hostilePublisher(() => encodeMessage(['t', Buffer.alloc(600), Buffer.alloc(600)]));
  const sub = new ZmtpSubscriber({ maxMessageSize: 1_000, maxMessageBytes: 1_000 });
  try {
    sub.subscribe();
    sub.connect(big.endpoint);
    assert.deepEqual((await sub.receive()).map(String), ['t', 'seq', 'fine']);
    assert.equal(sub.violations.get('message_too_large'), 1);
  } finally {
    sub.close();
    await big.close();
  }
  // A ROUTER is no publisher: the handshake fails, over and over, and nothing is delivered.
  const router = new Router({ linger: 0 });
  await router.bind('tcp://127.0.0.1:*');
  const wrong = new ZmtpSubscriber();
  const connects: unknown[] = [];
  wrong.events.on('connect', (e) => connects.push(e));
  try {
    wrong.subscribe();
    wrong.connect(router.lastEndpoint!);
    await waitFor('refused', () => (wrong.violations.get('handshake') ?? 0) >= 2);
    assert.equal(connects.length, 0);
  } finally {
    wrong.close();
    router.close();
  }
});

test('a DEALER request to a libzmq ROUTER gets its multipart reply; an unanswered receive times out with EAGAIN', async () => {
  const router = new Router({ linger: 0 });
  await router.bind('tcp://127.0.0.1:*');
  const dealer = new ZmtpDealer({ receiveTimeout: 200 });
  try {
    dealer.connect(router.lastEndpoint!);
    await dealer.send(['', encodeSeq(7n)]); // sent once connected
    const [identity, delimiter, seq] = await router.receive();
    assert.equal(delimiter!.length, 0);
    assert.deepEqual(seq, encodeSeq(7n));
    await router.send([identity!, '', encodeSeq(7n), 'payload']);
    await router.send([identity!, '', encodeSeq(-1n), '']);
    assert.deepEqual(await dealer.receive(), [Buffer.alloc(0), encodeSeq(7n), Buffer.from('payload')]);
    assert.deepEqual(await dealer.receive(), [Buffer.alloc(0), encodeSeq(-1n), Buffer.alloc(0)]);
    await assert.rejects(dealer.receive(), (e: Error & { code?: string }) => e.code === 'EAGAIN');
  } finally {
    dealer.close();
    router.close();
  }
});

test('a DEALER stops reading at its high-water mark and loses nothing', async () => {
  // mandatory: the ROUTER waits when its pipe to us is full instead of dropping (its default),
  // so every loss would be ours.
  const router = new Router({ linger: 0, mandatory: true });
  await router.bind('tcp://127.0.0.1:*');
  const dealer = new ZmtpDealer({ receiveHighWaterMark: 4 });
  try {
    dealer.connect(router.lastEndpoint!);
    await dealer.send(['', 'go']);
    const [identity] = await router.receive();
    for (let i = 0; i < 2_000; i++) await router.send([identity!, '', String(i)]);
    for (let i = 0; i < 2_000; i++) assert.deepEqual((await dealer.receive()).map(String), ['', String(i)]);
  } finally {
    dealer.close();
    router.close();
  }
});

test('the frame decoder gives the same messages however the stream is cut, and stops where its sink asks', () => {
  const stream = Buffer.concat([encodeMessage(['a', Buffer.alloc(1000, 1), '']), encodeMessage(['b']), encodeMessage(['c', 'd'])]);
  const limits = { maxFrameBytes: 2000, maxFrames: 3, maxMessageBytes: 4000, maxCommandBytes: 100 };
  const whole: string[][] = [];
  const d1 = new FrameDecoder(limits);
  d1.sink = { onMessage: (m) => (whole.push(m.map((f) => f.toString('hex'))), true), onCommand: () => {} };
  assert.deepEqual(d1.decode(stream), { ok: true, consumed: stream.length });
  const bytewise: string[][] = [];
  const d2 = new FrameDecoder(limits);
  d2.sink = { onMessage: (m) => (bytewise.push(m.map((f) => f.toString('hex'))), true), onCommand: () => {} };
  for (let i = 0; i < stream.length; i++) assert.ok(d2.decode(stream.subarray(i, i + 1)).ok);
  assert.equal(whole.length, 3);
  assert.deepEqual(bytewise, whole);
  const d3 = new FrameDecoder(limits);
  let n = 0;
  d3.sink = { onMessage: () => (n++, false), onCommand: () => {} };
  const r = d3.decode(stream);
  assert.ok(r.ok && r.consumed < stream.length && n === 1);
});

test('close() leaves nothing running: no sockets, no reconnect timers', async () => {
  const server = net.createServer((s) => s.destroy()); // accepts and hangs up: the clients keep reconnecting
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const endpoint = `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const sub = new ZmtpSubscriber();
  const dealer = new ZmtpDealer();
  sub.connect(endpoint);
  dealer.connect(endpoint);
  await new Promise((r) => setTimeout(r, 300));
  sub.close();
  dealer.close();
  await new Promise<void>((r) => server.close(() => r()));
  await waitFor('no handles', () => !process.getActiveResourcesInfo().some((k) => k === 'TCPSocketWrap' || k === 'TCPServerWrap'));
  assert.throws(() => new ZmtpSubscriber().connect('ipc:///tmp/kv'), /only tcp:\/\/HOST:PORT/);
});

test('through the KV-event subscriber: a publisher cut off for an oversized message is counted and warned once, and nothing of the message applies', async () => {
  const good = encodeEventBatch(
    { ts: 0, dataParallelRank: null, events: [{ type: 'BlockStored', blockHashes: [1n], parentBlockHash: null, tokenIds: Array.from({ length: 16 }, (_, i) => i), blockSize: 16, loraName: null, medium: 'GPU', extraKeysDigest: null }] },
    { encoding: 'array', hashes: 'int' },
  );
  const peer = await hostilePublisher(() => encodeMessage(['t', encodeSeq(0n), Buffer.from(good), Buffer.from('a fourth frame')]));
  const index = new KvBlockIndex();
  const warnings: string[] = [];
  const subs = new KvEventSubscriptions(index, { onWarning: (_k, m) => warnings.push(m) });
  try {
    subs.upsert('127.0.0.1:8000', { events: peer.endpoint, blockSize: 16 });
    const deadline = Date.now() + 30_000;
    while ((subs.stats().problems.get('oversized_message') ?? 0) < 1) {
      if (Date.now() > deadline) throw new Error('no oversized_message counted');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(warnings.filter((w) => w.includes('cut off')).length, 1);
    assert.equal(index.entriesOf('127.0.0.1:8000'), 0, 'nothing of the oversized message applied');
  } finally {
    await subs.close();
    await peer.close();
  }
});
