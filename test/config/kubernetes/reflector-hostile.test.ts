import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, test } from 'node:test';
import { Backoff } from '../../../src/config/kubernetes/backoff.js';
import { ApiConnection } from '../../../src/config/kubernetes/connection.js';
import { DEFAULT_LIMITS } from '../../../src/config/kubernetes/limits.js';
import { Reflector, type RawObject, type ReflectorSink } from '../../../src/config/kubernetes/reflector.js';
import { GATEWAY_CLASS, POD } from '../../../src/config/kubernetes/watched-kinds.js';

/*
 * The reflector against an API server that misbehaves in ways the fake API server does not (it is
 * a faithful one): a scripted HTTP server answering each request as the test says.
 */

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function hostile(handler: Handler): Promise<{ conn: ApiConnection; requests: URL[] }> {
  const requests: URL[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push(url);
    handler(req, res, url);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const conn = new ApiConnection({ getCurrentCluster: () => ({ server: `http://127.0.0.1:${port}` }), applyToHTTPSOptions: async () => undefined });
  cleanups.push(async () => {
    await conn.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { conn, requests };
}

interface Recorded {
  sink: ReflectorSink;
  lists: RawObject[][];
  upserts: RawObject[];
  problems: string[];
}

function recorder(): Recorded {
  const r: Recorded = { lists: [], upserts: [], problems: [], sink: undefined as unknown as ReflectorSink };
  r.sink = {
    replace: (objects) => r.lists.push([...objects]),
    upsert: (o) => r.upserts.push(o),
    remove: () => undefined,
    missing: () => undefined,
    problem: (m) => r.problems.push(m),
    health: () => undefined,
  };
  return r;
}

async function until(what: string, probe: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function json(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const pod = (name: string, namespace: string | undefined): Record<string, unknown> => ({ metadata: { name, ...(namespace === undefined ? {} : { namespace }), resourceVersion: '5' } });

/** A watch that stays open and silent (the test ends it). */
function silentWatch(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.flushHeaders();
}

describe('Reflector against a hostile API server', () => {
  test('a list whose continue token never ends is refused, not followed forever', async () => {
    const { conn, requests } = await hostile((_req, res, url) => {
      if (url.searchParams.get('watch') === '1') return silentWatch(res);
      // Every page empty, always "more to come", with the same token.
      json(res, { kind: 'PodList', metadata: { resourceVersion: '7', continue: 'again' }, items: [] });
    });
    const rec = recorder();
    const r = new Reflector(conn, POD, rec.sink, { namespace: 'default', limits: DEFAULT_LIMITS, backoff: new Backoff(5_000, 5_000) });
    r.start();
    cleanups.push(() => r.stop());
    await until('the endless list refused', () => rec.problems.some((p) => /never ends|pages/.test(p)));
    assert.ok(requests.length < 10, `${requests.length} list requests for one endless list`);
    assert.equal(rec.lists.length, 0, 'nothing delivered as a complete list');
  });

  test('a list whose continue tokens change but never end is refused after a bounded number of pages', async () => {
    let n = 0;
    const { conn, requests } = await hostile((_req, res, url) => {
      if (url.searchParams.get('watch') === '1') return silentWatch(res);
      json(res, { kind: 'PodList', metadata: { resourceVersion: '7', continue: `t${n++}` }, items: [] });
    });
    const rec = recorder();
    const limits = { ...DEFAULT_LIMITS, maxObjectsPerKind: 100, listPageSize: 10 };
    const r = new Reflector(conn, POD, rec.sink, { namespace: 'default', limits, backoff: new Backoff(60_000, 60_000) });
    r.start();
    cleanups.push(() => r.stop());
    await until('the endless list refused', () => rec.problems.some((p) => /pages/.test(p)));
    assert.ok(requests.length <= 21, `${requests.length} pages requested (at most 2 × 100/10 + 1)`);
    assert.equal(rec.lists.length, 0);
  });

  test('objects of another namespace, or without one, are skipped with a problem (list and watch)', async () => {
    let watched = false;
    const { conn } = await hostile((_req, res, url) => {
      if (url.searchParams.get('watch') === '1') {
        if (watched) return silentWatch(res);
        watched = true;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write(`${JSON.stringify({ type: 'ADDED', object: pod('w-ours', 'default') })}\n`);
        res.write(`${JSON.stringify({ type: 'ADDED', object: pod('w-theirs', 'kube-system') })}\n`);
        return;
      }
      json(res, { kind: 'PodList', metadata: { resourceVersion: '7' }, items: [pod('ours', 'default'), pod('theirs', 'kube-system'), pod('nowhere', undefined)] });
    });
    const rec = recorder();
    const r = new Reflector(conn, POD, rec.sink, { namespace: 'default', limits: DEFAULT_LIMITS, backoff: new Backoff(20, 20) });
    r.start();
    cleanups.push(() => r.stop());
    // The stray event is refused like any malformed one: listed again (the watch cannot be trusted).
    await until('the stray watch event refused', () => rec.problems.some((p) => p.includes('w-theirs')));
    assert.deepEqual(rec.upserts.map((o) => o.metadata.name), ['w-ours']);
    assert.deepEqual(rec.lists[0]?.map((o) => o.metadata.name), ['ours']);
    assert.ok(rec.problems.some((p) => p.includes('theirs') && p.includes('kube-system')), rec.problems.join('\n'));
    assert.ok(rec.problems.some((p) => p.includes('nowhere') && p.includes('no namespace')), rec.problems.join('\n'));
  });

  test("429 with Retry-After: the next try waits at least as long as the server asked", async () => {
    const at: number[] = [];
    const { conn } = await hostile((_req, res, url) => {
      if (url.searchParams.get('watch') === '1') return silentWatch(res);
      at.push(Date.now());
      if (at.length === 1) {
        res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '2' });
        res.end(JSON.stringify({ kind: 'Status', code: 429, message: 'too many requests' }));
        return;
      }
      json(res, { kind: 'PodList', metadata: { resourceVersion: '7' }, items: [] });
    });
    const rec = recorder();
    // Its own backoff would try again within 20 ms.
    const r = new Reflector(conn, POD, rec.sink, { namespace: 'default', limits: DEFAULT_LIMITS, backoff: new Backoff(20, 20) });
    r.start();
    cleanups.push(() => r.stop());
    await r.synced;
    assert.equal(at.length, 2);
    assert.ok(at[1]! - at[0]! >= 1900, `tried again after ${at[1]! - at[0]!} ms; the server asked for 2 s`);
  });

  for (const answer of ['an ERROR 410 event', 'HTTP 410', 'HTTP 404'] as const) {
    test(`a watch refused at once with ${answer}, every time, does not spin list-watch`, async () => {
      let lists = 0;
      const { conn } = await hostile((_req, res, url) => {
        if (url.searchParams.get('watch') !== '1') {
          lists++;
          return json(res, { kind: 'PodList', metadata: { resourceVersion: '7' }, items: [] });
        }
        if (answer === 'an ERROR 410 event') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' } })}\n`);
        } else {
          res.writeHead(answer === 'HTTP 410' ? 410 : 404, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ kind: 'Status', code: answer === 'HTTP 410' ? 410 : 404 }));
        }
      });
      const rec = recorder();
      const r = new Reflector(conn, POD, rec.sink, { namespace: 'default', limits: DEFAULT_LIMITS, backoff: new Backoff(200, 200) });
      r.start();
      cleanups.push(() => r.stop());
      await r.synced;
      const from = lists;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      // A wait of 100–200 ms between rounds allows at most 10 in a second; a spin makes hundreds.
      assert.ok(lists - from <= 12, `${lists - from} lists in one second`);
    });
  }

  test('a list trickled a byte at a time is cut at its deadline and reported stale, not waited on forever', async () => {
    const timers: NodeJS.Timeout[] = [];
    const { conn } = await hostile((_req, res, url) => {
      if (url.searchParams.get('watch') === '1') return silentWatch(res);
      res.writeHead(200, { 'content-type': 'application/json' });
      // Each byte well within the idle timeout between chunks; the body never ends.
      timers.push(setInterval(() => res.write(' '), 100));
      res.on('close', () => timers.forEach(clearInterval));
    });
    cleanups.push(async () => timers.forEach(clearInterval));
    const stale: string[] = [];
    const rec = recorder();
    const r = new Reflector(conn, POD, { ...rec.sink, health: (s, reason) => (s ? stale.push(reason ?? '') : undefined) }, { namespace: 'default', limits: DEFAULT_LIMITS, backoff: new Backoff(60_000, 60_000), listPageTimeoutMs: 500 });
    r.start();
    cleanups.push(() => r.stop());
    await until('the trickled list reported', () => stale.length > 0);
    assert.equal(rec.lists.length, 0);
  });

  test('a server that closes every watch after one event does not make the reflector spin', async () => {
    let watches = 0;
    let rv = 100;
    const { conn } = await hostile((_req, res, url) => {
      if (url.searchParams.get('watch') !== '1') return json(res, { kind: 'PodList', metadata: { resourceVersion: '7' }, items: [] });
      watches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Pod', metadata: { resourceVersion: String(rv++) } } })}\n`);
    });
    const rec = recorder();
    const r = new Reflector(conn, POD, rec.sink, { namespace: 'default', limits: DEFAULT_LIMITS, backoff: new Backoff(20, 20) });
    r.start();
    cleanups.push(() => r.stop());
    await r.synced;
    await until('a watch', () => watches > 0);
    const from = watches;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    // One a second; a spin makes hundreds.
    assert.ok(watches - from <= 4, `${watches - from} watches in two seconds`);
  });

  test('a cluster-scoped kind with a namespace is skipped', async () => {
    const { conn } = await hostile((_req, res, url) => {
      if (url.searchParams.get('watch') === '1') return silentWatch(res);
      json(res, { kind: 'GatewayClassList', metadata: { resourceVersion: '7' }, items: [{ metadata: { name: 'ok', resourceVersion: '1' } }, { metadata: { name: 'odd', namespace: 'default', resourceVersion: '1' } }] });
    });
    const rec = recorder();
    const r = new Reflector(conn, GATEWAY_CLASS, rec.sink, { namespace: 'default', limits: DEFAULT_LIMITS });
    r.start();
    cleanups.push(() => r.stop());
    await r.synced;
    assert.deepEqual(rec.lists[0]?.map((o) => o.metadata.name), ['ok']);
  });
});
