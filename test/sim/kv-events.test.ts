import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { Dealer, Subscriber } from 'zeromq';
import type { BlockStoredEvent, KvEvent, KvEventBatch } from '../../src/kvevents/events.js';
import { decodeEventBatch, decodeSeq, encodeSeq } from '../../src/kvevents/wire.js';
import { hashFullBlocks } from '../../src/sim/engine/block-hash.js';
import type { RunningSimServer, SimServerOptions } from '../../src/sim/index.js';
import { parseKvEventsConfig, resolveEndpoint, stepKvEvents } from '../../src/sim/kv-events/config.js';
import { kvEventsFromFlags } from '../../src/sim/kv-events/flags.js';
import { BIN, cli } from '../support/cli.js';
import { freePort } from '../support/ports.js';
import { post, tinyServer, until } from './helpers.js';

interface Received {
  readonly topic: string;
  readonly seq: bigint;
  readonly payload: Buffer;
  readonly batch: KvEventBatch;
}

/** A zeromq SUB socket on a sim's events endpoint, collecting every message. */
class Collector {
  readonly messages: Received[] = [];
  readonly #sub = new Subscriber({ linger: 0 });
  readonly #loop: Promise<void>;

  constructor(endpoint: string, topic: string) {
    this.#sub.connect(endpoint);
    this.#sub.subscribe(topic);
    this.#loop = (async () => {
      try {
        for await (const frames of this.#sub) {
          const [topicFrame, seqFrame, payload] = frames as [Buffer, Buffer, Buffer];
          const decoded = decodeEventBatch(payload);
          assert.ok(decoded.ok, 'every payload decodes');
          assert.equal(decoded.problems.size, 0);
          this.messages.push({ topic: topicFrame.toString('utf8'), seq: decodeSeq(seqFrame) ?? -2n, payload, batch: decoded.batch });
        }
      } catch {
        // closed
      }
    })();
  }

  events(): KvEvent[] {
    return this.messages.flatMap((m) => [...m.batch.events]);
  }

  async close(): Promise<void> {
    this.#sub.close();
    await this.#loop;
  }
}

/**
 * Connects a collector and waits until it receives (a PUB drops what it sends before the
 * subscription reaches it): resets the cache, which publishes AllBlocksCleared, until one arrives.
 */
async function subscribe(server: RunningSimServer): Promise<Collector> {
  const kv = server.kvEvents;
  assert.ok(kv !== undefined);
  const c = new Collector(kv.endpoint, kv.topic);
  try {
    await until(
      'the subscription to reach the publisher',
      async () => {
        if (c.messages.length > 0) return true;
        await (await post(server, '/reset_prefix_cache', '')).arrayBuffer();
        await new Promise((r) => setTimeout(r, 20));
        return c.messages.length > 0 ? true : undefined;
      },
      500,
    );
  } catch (err) {
    await c.close();
    throw err;
  }
  return c;
}

function kvServer(options: Partial<SimServerOptions> = {}, kv: Partial<NonNullable<SimServerOptions['kvEvents']>> = {}): Promise<RunningSimServer> {
  return tinyServer({ ...options, kvEvents: { endpoint: 'tcp://127.0.0.1:*', replayEndpoint: 'tcp://127.0.0.1:*', ...kv } });
}

async function complete(server: RunningSimServer, prompt: readonly number[], maxTokens = 1): Promise<void> {
  const r = await post(server, '/v1/completions', { model: 'mymodel', prompt, max_tokens: maxTokens, ignore_eos: true });
  assert.equal(r.status, 200, await r.clone().text());
  await r.arrayBuffer();
}

/** `until` with a generous deadline (about 10 s) for a busy machine. */
const wait = <T>(what: string, probe: () => T | undefined | Promise<T | undefined>): Promise<T> => until(what, probe, 2000);

const ids = (n: number, from: number): number[] => Array.from({ length: n }, (_, i) => from + i);
const stored = (events: readonly KvEvent[]): BlockStoredEvent[] => events.filter((e): e is BlockStoredEvent => e.type === 'BlockStored');

/** A replay request on a DEALER socket: every (seq, payload) until the end marker. */
async function replay(endpoint: string, start: bigint): Promise<Array<[bigint, Buffer]>> {
  const dealer = new Dealer({ linger: 0, receiveTimeout: 30_000 });
  try {
    dealer.connect(endpoint);
    await dealer.send([Buffer.alloc(0), encodeSeq(start)]);
    const out: Array<[bigint, Buffer]> = [];
    for (;;) {
      const [empty, seqFrame, payload] = (await dealer.receive()) as [Buffer, Buffer, Buffer];
      assert.equal(empty.length, 0, 'the empty delimiter frame');
      const seq = decodeSeq(seqFrame);
      assert.ok(seq !== undefined);
      if (seq === -1n) {
        assert.equal(payload.length, 0, 'the end marker has an empty payload');
        return out;
      }
      out.push([seq, payload]);
    }
  } finally {
    dealer.close();
  }
}

describe('simulator KV events (vLLM ZeroMQ publisher)', () => {
  test('BlockStored for a served prompt: its tokens, the sim’s chained hashes, the default topic; seq +1 per batch', async () => {
    const server = await kvServer();
    const c = await subscribe(server);
    try {
      assert.equal(server.kvEvents?.topic, `kv@127.0.0.1:${server.port}@mymodel`);
      const prompt = ids(40, 1000);
      const before = c.messages.length;
      await complete(server, prompt);
      const blocks = await wait('the prompt’s blocks', () => {
        const s = stored(c.events());
        return s.reduce((n, e) => n + e.blockHashes.length, 0) >= 2 ? s : undefined;
      });
      assert.ok(c.messages.length > before);
      // 40 tokens, block size 16: two full blocks, chained from no parent.
      assert.deepEqual(blocks.flatMap((e) => e.tokenIds), prompt.slice(0, 32));
      assert.deepEqual(blocks.flatMap((e) => e.blockHashes), hashFullBlocks(prompt, 16).map(BigInt));
      assert.equal(blocks[0]?.parentBlockHash, null);
      for (let i = 1; i < blocks.length; i++) assert.equal(blocks[i]?.parentBlockHash, blocks[i - 1]?.blockHashes.at(-1));
      for (const b of blocks) assert.deepEqual([b.blockSize, b.medium, b.loraName, b.extraKeysDigest], [16, 'GPU', null, null]);
      // The same prompt again is a cache hit: nothing new stored.
      const storedBefore = stored(c.events()).length;
      await complete(server, prompt);
      await (await post(server, '/reset_prefix_cache', '')).arrayBuffer();
      await wait('the reset after the hit', () => (c.events().at(-1)?.type === 'AllBlocksCleared' ? true : undefined));
      assert.equal(stored(c.events()).length, storedBefore);
      for (const m of c.messages) assert.equal(m.topic, server.kvEvents?.topic);
      const seqs = c.messages.map((m) => m.seq);
      for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], (seqs[i - 1] ?? 0n) + 1n, `seq ${i}`);
      for (const m of c.messages) assert.equal(m.batch.dataParallelRank, 0);
    } finally {
      await c.close();
      await server.close();
    }
  });

  test('BlockRemoved when blocks are evicted; AllBlocksCleared on /reset_prefix_cache', async () => {
    const server = await kvServer({ overrides: { numGpuBlocks: 16, maxModelLen: 256 } });
    const c = await subscribe(server);
    try {
      const first = ids(64, 5000);
      await complete(server, first);
      const hashes = hashFullBlocks(first, 16).map(BigInt);
      // Other prompts fill the 16-block pool and take the first one's free blocks.
      for (let i = 0; i < 4; i++) await complete(server, ids(200, 10_000 * (i + 1)));
      const removed = await wait('the first prompt’s blocks removed', () => {
        const r = new Set(c.events().flatMap((e) => (e.type === 'BlockRemoved' ? e.blockHashes : [])));
        return hashes.every((h) => r.has(h)) ? r : undefined;
      });
      assert.ok(removed.size >= hashes.length);
      const count = c.messages.filter((m) => m.batch.events.some((e) => e.type === 'AllBlocksCleared')).length;
      const reset = await post(server, '/reset_prefix_cache', '');
      assert.equal(reset.status, 200);
      await reset.arrayBuffer();
      const clears = await wait('the reset’s batch', () => {
        const all = c.messages.filter((m) => m.batch.events.some((e) => e.type === 'AllBlocksCleared'));
        return all.length > count ? all : undefined;
      });
      assert.deepEqual(clears.at(-1)?.batch.events, [{ type: 'AllBlocksCleared' }], 'one event: the whole cache is gone');
      assert.equal(server.engine.stats().cachedBlocks, 0);
    } finally {
      await c.close();
      await server.close();
    }
  });

  test('replay: every buffered batch from the asked seq, then seq −1 with an empty payload; the first batch of a start is AllBlocksCleared', async () => {
    const server = await kvServer({}, { bufferSteps: 5 });
    const c = await subscribe(server);
    try {
      const replayAt = server.kvEvents?.replayEndpoint;
      assert.ok(replayAt !== null && replayAt !== undefined);
      const early = await replay(replayAt, 0n);
      assert.equal(early[0]?.[0], 0n);
      const first = decodeEventBatch(early[0]![1]);
      assert.ok(first.ok);
      assert.deepEqual(first.batch.events, [{ type: 'AllBlocksCleared' }], 'a new server starts with an empty cache');

      for (let i = 0; i < 4; i++) await complete(server, ids(40, 100 * (i + 1)));
      for (let i = 0; i < 3; i++) await (await post(server, '/reset_prefix_cache', '')).arrayBuffer();
      const last = await wait('the last reset', () => {
        const m = c.messages.at(-1);
        return m !== undefined && m.seq >= 8n && m.batch.events[0]?.type === 'AllBlocksCleared' ? m : undefined;
      });
      // Only the last bufferSteps (5) batches are kept: asking from 0 gets those.
      const all = await replay(replayAt, 0n);
      assert.deepEqual(all.map(([s]) => s), [0n, 1n, 2n, 3n, 4n].map((k) => last.seq - 4n + k));
      const live = new Map(c.messages.map((m) => [m.seq, m.payload]));
      for (const [seq, payload] of all) if (live.has(seq)) assert.deepEqual(payload, live.get(seq), `seq ${seq} replays what was published`);
      const tail = await replay(replayAt, last.seq - 1n);
      assert.deepEqual(tail.map(([s]) => s), [last.seq - 1n, last.seq]);
      assert.deepEqual(await replay(replayAt, last.seq + 100n), [], 'nothing newer: only the end marker');
    } finally {
      await c.close();
      await server.close();
    }
  });

  test('map encoding with bytes hashes decodes to the same blocks; the DP rank is written in every batch', async () => {
    const server = await kvServer({}, { encoding: 'map', hashes: 'bytes', dataParallelRank: 3 });
    const c = await subscribe(server);
    try {
      const prompt = ids(33, 7);
      await complete(server, prompt);
      const blocks = await wait('the blocks', () => {
        const s = stored(c.events());
        return s.reduce((n, e) => n + e.blockHashes.length, 0) >= 2 ? s : undefined;
      });
      assert.deepEqual(blocks.flatMap((e) => e.blockHashes), hashFullBlocks(prompt, 16).map(BigInt));
      for (const m of c.messages) {
        assert.equal(m.payload[0], 0x83, 'a msgpack map of 3: ts, events, data_parallel_rank');
        assert.equal(m.batch.dataParallelRank, 3);
      }
      const withHash = c.messages.find((m) => m.batch.events.some((e) => e.type === 'BlockStored'));
      assert.ok(withHash !== undefined && withHash.payload.includes(Buffer.from([0xc4, 32])), 'hashes as 32-byte bins');
    } finally {
      await c.close();
      await server.close();
    }
  });

  test('a LoRA adapter’s blocks name it; a salted prompt’s first block carries an extra-keys digest', async () => {
    const server = await kvServer({ loras: ['sql'] });
    const c = await subscribe(server);
    try {
      const r = await post(server, '/v1/completions', { model: 'sql', prompt: ids(32, 3), max_tokens: 1 });
      await r.arrayBuffer();
      const s = await post(server, '/v1/completions', { model: 'mymodel', prompt: ids(32, 900), max_tokens: 1, cache_salt: 'tenant-a' });
      assert.equal(s.status, 200);
      await s.arrayBuffer();
      const blocks = await wait('both prompts’ blocks', () => {
        const b = stored(c.events());
        return b.reduce((n, e) => n + e.blockHashes.length, 0) >= 4 ? b : undefined;
      });
      const lora = blocks.filter((b) => b.loraName === 'sql');
      assert.deepEqual(lora.flatMap((b) => b.tokenIds), ids(32, 3));
      const salted = blocks.filter((b) => b.tokenIds[0] === 900);
      assert.equal(salted.length, 1);
      assert.equal(typeof salted[0]?.extraKeysDigest, 'number', 'the salted first block never matches an unsalted one');
      const second = blocks.find((b) => b.tokenIds[0] === 916);
      assert.equal(second?.extraKeysDigest, null);
    } finally {
      await c.close();
      await server.close();
    }
  });
});

describe('KV events configuration', () => {
  test('vLLM’s --kv-events-config JSON: its keys and defaults; events off unless enabled', () => {
    assert.deepEqual(
      parseKvEventsConfig('{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557","replay_endpoint":"tcp://*:5558","buffer_steps":100,"hwm":1000,"max_queue_size":10,"topic":"kv@10.0.0.1:8000@m"}'),
      { endpoint: 'tcp://*:5557', replayEndpoint: 'tcp://*:5558', topic: 'kv@10.0.0.1:8000@m', bufferSteps: 100, hwm: 1000 },
    );
    assert.deepEqual(parseKvEventsConfig('{"enable_kv_cache_events":true}'), { endpoint: 'tcp://*:5557' });
    assert.equal(parseKvEventsConfig('{"publisher":"zmq"}'), undefined, 'enable_kv_cache_events defaults to false');
    assert.equal(parseKvEventsConfig('{"enable_kv_cache_events":true,"publisher":"null"}'), undefined);
    assert.deepEqual(parseKvEventsConfig('{"enable_kv_cache_events":true,"topic":""}'), { endpoint: 'tcp://*:5557', topic: '' });
    for (const [bad, message] of [
      ['{bad', /not valid JSON/],
      ['[1]', /must be a JSON object/],
      ['{"enable_kv_cache_events":"yes"}', /enable_kv_cache_events must be true or false/],
      ['{"enable_kv_cache_events":true,"publisher":"kafka"}', /publisher must be "zmq" or "null"/],
      ['{"enable_kv_cache_events":true,"endpoint":5557}', /endpoint must be a string/],
      ['{"enable_kv_cache_events":true,"buffer_steps":0}', /buffer_steps must be an integer/],
      ['{"enable_kv_cache_events":true,"endpont":"tcp://*:1"}', /unknown key "endpont"/],
    ] as const) {
      assert.throws(() => parseKvEventsConfig(bad), (e: unknown) => e instanceof RangeError && message.test(e.message), bad);
    }
  });

  test('flags: --kv-events defaults, encoding/hashes/rank checked and needing events on', () => {
    assert.deepEqual(kvEventsFromFlags({ enable: true }), { endpoint: 'tcp://*:5557', replayEndpoint: 'tcp://*:5558' });
    assert.deepEqual(kvEventsFromFlags({ enable: true, encoding: 'map', hashes: 'bytes', dataParallelRank: '2' }), {
      endpoint: 'tcp://*:5557',
      replayEndpoint: 'tcp://*:5558',
      encoding: 'map',
      hashes: 'bytes',
      dataParallelRank: 2,
    });
    assert.equal(kvEventsFromFlags({}), undefined);
    assert.throws(() => kvEventsFromFlags({ encoding: 'map' }), /need --kv-events or --kv-events-config/);
    assert.throws(() => kvEventsFromFlags({ enable: true, encoding: 'json' }), /--kv-events-encoding must be array or map/);
    assert.throws(() => kvEventsFromFlags({ enable: true, hashes: 'hex' }), /--kv-events-hashes must be int or bytes/);
    assert.throws(() => kvEventsFromFlags({ enable: true, dataParallelRank: '-1' }), /--data-parallel-rank must be an integer/);
  });

  test('endpoints: a * host is the server’s host, rank r adds r to the port, bind vs connect as vLLM', () => {
    assert.deepEqual(resolveEndpoint('tcp://*:5557', '127.0.0.2', 0), { endpoint: 'tcp://127.0.0.2:5557', bind: true });
    assert.deepEqual(resolveEndpoint('tcp://*:5557', '127.0.0.2', 3), { endpoint: 'tcp://127.0.0.2:5560', bind: true });
    assert.deepEqual(resolveEndpoint('tcp://127.0.0.2:5557', '127.0.0.2', 1), { endpoint: 'tcp://127.0.0.2:5558', bind: true });
    assert.deepEqual(resolveEndpoint('tcp://10.1.2.3:5557', '127.0.0.2', 0), { endpoint: 'tcp://10.1.2.3:5557', bind: false }, 'another host: connect (vLLM)');
    assert.deepEqual(resolveEndpoint('tcp://10.1.2.3:5557', '127.0.0.2', 0, true), { endpoint: 'tcp://10.1.2.3:5557', bind: true }, 'replay always binds');
    assert.deepEqual(resolveEndpoint('tcp://127.0.0.1:*', '127.0.0.1', 2), { endpoint: 'tcp://127.0.0.1:*', bind: true }, 'a free port stays free');
    assert.deepEqual(resolveEndpoint('tcp://*:5557', '::1', 0), { endpoint: 'tcp://[::1]:5557', bind: true });
    assert.deepEqual(resolveEndpoint('tcp://*:*', '127.0.0.5', 0), { endpoint: 'tcp://127.0.0.5:*', bind: true }, 'own host, free port');
    assert.throws(() => resolveEndpoint('udp://x:1', 'h', 0), /tcp:\/\/HOST:PORT/);
    assert.throws(() => resolveEndpoint('tcp://*:65535', 'h', 1), /past 65535/);
    assert.throws(() => resolveEndpoint('ipc:///tmp/kv', 'h', 1), /needs a tcp endpoint/);
    assert.deepEqual(stepKvEvents({ endpoint: 'tcp://*:5557', replayEndpoint: 'tcp://*:5558' }, 2, 10), { endpoint: 'tcp://*:5577', replayEndpoint: 'tcp://*:5578' });
  });

  test('infergate sim --kv-events-config: the printed endpoints publish; bad JSON is one clear line, exit 2', async () => {
    const host = '127.0.0.91';
    const [port, events, replayPort] = [await freePort(host), await freePort(host), await freePort(host)];
    const config = JSON.stringify({ enable_kv_cache_events: true, publisher: 'zmq', endpoint: `tcp://*:${events}`, replay_endpoint: `tcp://*:${replayPort}` });
    const child = spawn(process.execPath, [BIN, 'sim', '--exit-with-parent', '--host', host, '--port', String(port), '--profile', 'tiny', '--time-scale', '20', '--kv-events-config', config, '--kv-events-encoding', 'map'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = once(child, 'exit') as Promise<[number | null]>;
    try {
      await wait('the sim to start', () => (stdout.includes('Press Ctrl-C') ? true : child.exitCode !== null ? assert.fail(stderr) : undefined));
      const topic = `kv@${host}:${port}@mymodel`;
      assert.match(stdout, new RegExp(`^sim-0  kv events tcp://127\\.0\\.0\\.91:${events}  replay tcp://127\\.0\\.0\\.91:${replayPort}  topic ${topic}$`, 'm'));
      const replayed = await replay(`tcp://${host}:${replayPort}`, 0n);
      assert.equal(replayed[0]?.[0], 0n);
      assert.equal(replayed[0]?.[1][0], 0x83, 'map encoding');
      // The events port taken (by this sim): one line naming the endpoint, exit 1.
      const taken = await cli(['sim', '--host', host, '--port', String(await freePort(host)), '--profile', 'tiny', '--kv-events-config', config]);
      assert.equal(taken.code, 1, taken.stderr);
      assert.match(taken.stderr, new RegExp(`^infergate sim: cannot bind kv events tcp://127\\.0\\.0\\.91:${events}: EADDRINUSE\n$`));
    } finally {
      child.kill('SIGTERM');
      assert.equal((await exited)[0], 0, stderr);
    }
    const bad = await cli(['sim', '--kv-events-config', '{bad']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^infergate sim: --kv-events-config is not valid JSON \(.*\); e\.g\. '\{"enable_kv_cache_events":true/);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
  });
});
