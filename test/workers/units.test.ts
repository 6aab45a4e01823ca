import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { OptionError } from '../../src/cli/options.js';
import { cpuLimit, workersOption } from '../../src/cli/workers-option.js';
import { Endpoint } from '../../src/core/endpoint.js';
import { PrefixIndex } from '../../src/prefix/index.js';
import { forwardLines } from '../../src/workers/log-lines.js';
import { mergeDebug, mergeReadiness } from '../../src/workers/merge.js';
import { applyPrefixBatch, PrefixOutbox } from '../../src/workers/prefix-share.js';
import type { PrefixBatch } from '../../src/workers/protocol.js';
import { workerScrape } from '../../src/workers/scrape.js';

const endpoint = (i: number): Endpoint => new Endpoint({ address: `127.0.21.${i}`, port: 8000, name: `e${i}`, podName: `e${i}`, labels: {} });

describe('serve --workers: the count', () => {
  test('the flag, else $INFERGATE_WORKERS, else the cores; bad values are option errors', () => {
    assert.equal(workersOption('3', { INFERGATE_WORKERS: '5' }), 3);
    assert.equal(workersOption(undefined, { INFERGATE_WORKERS: '5' }), 5);
    assert.ok(workersOption(undefined, {}) >= 1);
    assert.equal(workersOption(undefined, {}, 1), 1, 'a CPU limit of 1 means one worker');
    assert.throws(() => workersOption('0', {}), OptionError);
    assert.throws(() => workersOption(undefined, { INFERGATE_WORKERS: 'many' }), /INFERGATE_WORKERS must be an integer/);
  });

  test("the container's CPU limit, from cgroup v2 or v1", () => {
    const files = (m: Record<string, string>) => (p: string): string | undefined => m[p];
    assert.equal(cpuLimit(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' })), 2);
    assert.equal(cpuLimit(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' })), undefined);
    assert.equal(cpuLimit(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '400000', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' })), 4);
    assert.equal(cpuLimit(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1', '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000' })), undefined);
    assert.equal(cpuLimit(files({})), undefined);
  });

  test('each worker scrapes at N x the interval, so a server sees the interval overall; staleness follows unless given', () => {
    assert.deepEqual(workerScrape(4, 50, undefined), { scrapeIntervalMs: 200, stalenessMs: 800 });
    assert.deepEqual(workerScrape(2, 50, undefined), { scrapeIntervalMs: 100, stalenessMs: 400 });
    assert.deepEqual(workerScrape(2, 50, 300), { scrapeIntervalMs: 100, stalenessMs: 300 });
    assert.deepEqual(workerScrape(8, 0, undefined), { scrapeIntervalMs: 0, stalenessMs: undefined });
  });
});

describe('serve --workers: sharing the prefix index', () => {
  test('records are batched, applied on a sibling as if routed there, and not echoed back', async () => {
    const [a, b] = [endpoint(1), endpoint(2)];
    const batches: PrefixBatch[] = [];
    const outbox = new PrefixOutbox((batch, done) => {
      batches.push(batch);
      done();
    }, { flushMs: 1 });
    const mine = new PrefixIndex();
    mine.onRecord((e, h) => outbox.add(e, h));
    mine.record(a, Uint32Array.of(1, 2, 3));
    mine.record(b, Uint32Array.of(7, 8));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(batches.length, 1, 'both records in one batch');

    const sibling = new PrefixIndex();
    let echoed = 0;
    sibling.onRecord(() => echoed++);
    const byKey = new Map([a, b].map((e) => [e.key, e]));
    assert.equal(applyPrefixBatch(batches[0] as PrefixBatch, (k) => byKey.get(k), (e, h) => sibling.recordShared(e, h)), 2);
    const out = new Int32Array(2);
    sibling.match(Uint32Array.of(1, 2, 3), [a, b], out);
    assert.deepEqual([...out], [3, 0]);
    sibling.match(Uint32Array.of(7, 8), [a, b], out);
    assert.deepEqual([...out], [0, 2]);
    assert.equal(echoed, 0);
  });

  test('bounded: a batch holds at most maxHashes (a long record keeps its leading ones); a full channel drops batches', () => {
    const sent: PrefixBatch[] = [];
    const pending: Array<() => void> = [];
    const outbox = new PrefixOutbox((batch, done) => {
      sent.push(batch);
      pending.push(done);
    }, { maxHashes: 4, maxUnsent: 2, flushMs: 60_000 });
    const e = endpoint(3);
    outbox.add(e, Uint32Array.of(1, 2, 3, 4, 5, 6));
    outbox.add(e, Uint32Array.of(9));
    outbox.add(e, Uint32Array.of(10));
    outbox.flush();
    assert.deepEqual(sent.map((b) => [...b.hashes]), [[1, 2, 3, 4], [9, 10]]);
    outbox.add(e, Uint32Array.of(11));
    outbox.flush();
    assert.equal(outbox.dropped, 1, 'two batches unsent: the third is dropped');
    for (const done of pending) done();
    outbox.add(e, Uint32Array.of(12));
    outbox.flush();
    assert.equal(sent.length, 3);
  });

  test('a malformed batch applies what fits; unknown endpoints are skipped', () => {
    const e = endpoint(4);
    const got: number[][] = [];
    const n = applyPrefixBatch({ keys: ['nowhere:1', e.key, e.key], lengths: [1, 2, 5], hashes: Uint32Array.of(1, 2, 3, 4) }, (k) => (k === e.key ? e : undefined), (_e, h) => got.push([...h]));
    assert.equal(n, 1);
    assert.deepEqual(got, [[2, 3]]);
  });
});

describe('serve --workers: one answer for the gateway', () => {
  test('ready when every worker is; the first that is not says why', () => {
    const ok = { ready: true, version: 3 };
    assert.deepEqual(mergeReadiness([{ worker: 0, pid: 10, body: ok }, { worker: 1, pid: 11, body: ok }]).ready, true);
    const r = mergeReadiness([{ worker: 0, pid: 10, body: ok }, { worker: 1, pid: undefined, body: undefined, missing: 'not running (being replaced)' }]);
    assert.equal(r.ready, false);
    assert.equal(r.reason, 'worker 1: not running (being replaced)');
    assert.equal(r.version, 3);
  });

  test('/debug/endpoints: in-flight counts and queues summed, each worker listed', () => {
    const view = (inFlight: number, queued: number): unknown => ({
      version: 1,
      prefixIndex: { entries: 5 },
      pools: [{ pool: 'p', queued: { Critical: queued }, endpoints: [{ address: 'a:1', inFlight, inFlightTokens: inFlight * 10, pendingPrefillTokens: 1, inFlightByModel: { m: inFlight } }] }],
    });
    const merged = mergeDebug([
      { worker: 0, pid: 10, body: view(2, 1) },
      { worker: 1, pid: 11, body: view(3, 4) },
    ]) as { pools: Array<{ queued: Record<string, number>; endpoints: Array<Record<string, unknown>> }>; workers: Array<Record<string, unknown>> };
    const e = merged.pools[0]?.endpoints[0];
    assert.deepEqual([e?.['inFlight'], e?.['inFlightTokens'], e?.['pendingPrefillTokens'], e?.['inFlightByModel']], [5, 50, 2, { m: 5 }]);
    assert.equal(merged.pools[0]?.queued['Critical'], 5);
    assert.deepEqual(merged.workers.map((w) => w['inFlight']), [2, 3]);
  });
});

describe('serve --workers: log lines', () => {
  test('forwarded whole: a line split across reads goes out once complete; the last one at the end', async () => {
    const from = new PassThrough();
    const writes: string[] = [];
    const to = new PassThrough();
    to.on('data', (c: Buffer) => writes.push(c.toString()));
    const done = forwardLines(from, to);
    from.write('{"a":1}\n{"b"');
    from.write(':2}\n{"c":3}\n{"d"');
    from.end(':4}');
    await done;
    assert.deepEqual(writes, ['{"a":1}\n', '{"b":2}\n{"c":3}\n', '{"d":4}']);
  });
});
