import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as zlib from 'node:zlib';
import { answer, chatRequest, jsonBody, startFakeEnv, type FakeEnv, type FakeHandler } from '../support/fake-engines.js';
import { debugPools, waitFor } from '../support/smart.js';

// A model server's answers must not size the gateway's memory or break it: compressed answers are
// bounded by their decoded size, a pod that never answered gets no traffic while another can
// serve, and the gateway opens a bounded number of connections to one server.

const PAGE = `vllm:num_requests_waiting{model_name="m"} 0
vllm:num_requests_running{model_name="m"} 0
vllm:kv_cache_usage_perc{model_name="m"} 0.1
`;

async function chat(base: string, stream: boolean, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': 'identity', ...headers }, body: chatRequest(stream) });
  return { status: r.status, text: await r.text() };
}

describe('decompression bombs from a model server end as upstream_invalid_response', { timeout: 120_000 }, () => {
  // 96 MiB of SSE (or JSON-ish) text in about 100–300 KB: past both the 64 MiB cap and the 100× ratio.
  const event = Buffer.from('data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n');
  const plain = Buffer.alloc(96 * 1024 * 1024);
  for (let i = 0; i < plain.length; i += event.length) event.copy(plain, i);
  const BOMBS: Readonly<Record<string, Buffer>> = {
    gzip: zlib.gzipSync(plain),
    deflate: zlib.deflateSync(plain),
    br: zlib.brotliCompressSync(plain, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } }),
  };
  const bomb: FakeHandler = (req, res, seen) => {
    const coding = String(req.headers['x-test-coding']);
    const stream = jsonBody(seen).stream === true;
    res.writeHead(200, { 'content-type': stream ? 'text/event-stream' : 'application/json', 'content-encoding': coding });
    res.end(BOMBS[coding]);
  };
  let env: FakeEnv;
  before(async () => {
    env = await startFakeEnv({ '127.0.16.2': bomb }, { 'fake-0': '127.0.16.2' });
  });
  after(async () => {
    await env?.close();
  });

  for (const coding of Object.keys(BOMBS)) {
    test(`${coding}, not streamed: 502 upstream_invalid_response, counted against the server`, async () => {
      const id = `bomb-json-${coding}`;
      const r = await chat(env.base, false, { 'x-test-coding': coding, 'x-request-id': id });
      assert.equal(r.status, 502, r.text.slice(0, 200));
      assert.equal((JSON.parse(r.text) as { error: { code: string } }).error.code, 'upstream_invalid_response');
      const line = await env.gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
      assert.equal(line['code'], 'upstream_invalid_response');
    });

    test(`${coding}, streamed: the stream is cut at the bound and ends with an error event`, async () => {
      const id = `bomb-sse-${coding}`;
      const r = await chat(env.base, true, { 'x-test-coding': coding, 'x-request-id': id });
      assert.equal(r.status, 200);
      assert.ok(r.text.length < 70 * 1024 * 1024, `${r.text.length} bytes reached the client`);
      assert.match(r.text.slice(-2000), /upstream_invalid_response/);
      const line = await env.gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
      assert.equal(line['code'], 'upstream_invalid_response');
    });
  }
});

describe('a pod that never answered gets no traffic while another is ready', { timeout: 120_000 }, () => {
  let env: FakeEnv;
  const good: FakeHandler = (req, res, seen) => {
    if (req.url === '/metrics') return void res.end(PAGE);
    if (req.url === '/v1/models') return void res.end(JSON.stringify({ object: 'list', data: [{ id: 'm', object: 'model' }] }));
    answer(res, seen);
  };
  // Accepts connections and reads requests, never answers: /metrics hangs, requests hang.
  const blackHole: FakeHandler = () => undefined;
  before(async () => {
    // A long scrape timeout: before the fix the black hole stayed "healthy" for three of them.
    env = await startFakeEnv({ '127.0.16.3': good, '127.0.16.4': blackHole }, { 'fake-good': '127.0.16.3', 'fake-hole': '127.0.16.4' }, { args: ['--scrape-interval', '50', '--scrape-timeout', '10000'] });
  });
  after(async () => {
    // The black hole's connections first: the gateway's shutdown waits for its scrape in flight,
    // which would hang for the whole 10 s scrape timeout.
    await env?.fakes.close();
    await env?.close();
  });

  test('every request reaches the pod that answered', async () => {
    await waitFor('the good pod scraped', async () => (await debugPools(env.gateway)).some((p) => p.endpoints.some((e) => e.name === 'fake-good' && e.metrics !== null)));
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => chat(env.base, i % 2 === 0)));
    assert.deepEqual(results.map((r) => r.status), Array(12).fill(200));
    const pools = await debugPools(env.gateway);
    const hole = pools.flatMap((p) => p.endpoints).find((e) => e.name === 'fake-hole') as unknown as { available: boolean; inFlight: number };
    assert.equal(hole.available, false, 'not routable before its first answer');
    assert.equal(hole.inFlight, 0);
  });
});

describe('connections to one model server are capped; requests beyond the cap wait and succeed', { timeout: 120_000 }, () => {
  let env: FakeEnv;
  const open = new Set<Socket>();
  let maxOpen = 0;
  const slow: FakeHandler = (req, res, seen) => {
    const socket = req.socket;
    if (!open.has(socket)) {
      open.add(socket);
      maxOpen = Math.max(maxOpen, open.size);
      socket.once('close', () => open.delete(socket));
    }
    setTimeout(() => answer(res, seen), 100);
  };
  before(async () => {
    env = await startFakeEnv({ '127.0.16.5': slow }, { 'fake-0': '127.0.16.5' }, { args: ['--upstream-connections', '3'] });
  });
  after(async () => {
    await env?.close();
  });

  test('30 concurrent requests, at most 3 connections, all 200', async () => {
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => chat(env.base, i % 2 === 0)));
    assert.deepEqual(results.map((r) => r.status), Array(30).fill(200));
    assert.ok(maxOpen <= 3, `${maxOpen} connections were open at once`);
    assert.ok(maxOpen >= 1);
  });
});
