import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';
import { extractMetrics, type Dialect } from '../../src/endpoints/metrics/index.js';
import type { RunningSimServer, SimRuntime } from '../../src/sim/index.js';
import { post, scrape, sseEvents, tinyServer, until } from './helpers.js';

const DIALECT: { readonly [R in SimRuntime]: Dialect } = { vllm: 'vllm', 'vllm-v0': 'vllm', sglang: 'sglang', trtllm: 'trt-llm' };
const RUNTIMES: readonly SimRuntime[] = ['vllm', 'vllm-v0', 'sglang', 'trtllm'];

const completion = { model: 'mymodel', prompt: 'a b c', max_tokens: 10, ignore_eos: true };

/** Health and metrics answer 200 (the fault must not touch them). */
async function stillObservable(s: RunningSimServer): Promise<void> {
  assert.equal((await fetch(`${s.url}/metrics`)).status, 200);
  const health = s.runtime === 'trtllm' ? '/health/ready' : '/health';
  assert.equal((await fetch(`${s.url}${health}`)).status, 200);
  assert.equal((await fetch(`${s.url}/v1/models`)).status, 200);
}

/** Collects a response's bytes as they arrive, for stalls: nothing ends it but the client. */
function openRaw(s: RunningSimServer, body: unknown, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, unknown>; received: () => string; ended: () => boolean; close: () => void }> {
  return new Promise((resolve, reject) => {
    const req = request(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      let ended = false;
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => (ended = true));
      res.on('error', () => {});
      resolve({ status: res.statusCode ?? 0, headers: res.headers, received: () => text, ended: () => ended, close: () => req.destroy() });
    });
    req.on('error', () => {});
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

/** Lets the event loop run a few turns, so anything the server had queued would have arrived. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

describe('metrics faults', () => {
  test('nan: the load gauges read NaN on every runtime, in valid exposition text', async () => {
    for (const runtime of RUNTIMES) {
      const s = await tinyServer({ runtime, metricsFault: 'nan' });
      try {
        const page = await scrape(s);
        assert.equal(extractMetrics(page, DIALECT[runtime]).malformedLines, 0, `${runtime}: NaN is a valid sample value`);
        const waiting = { vllm: /^vllm:num_requests_waiting\{[^}]*\} NaN$/m, 'vllm-v0': /^vllm:num_requests_waiting\{[^}]*\} NaN$/m, sglang: /^sglang:num_queue_reqs\{[^}]*\} NaN$/m, trtllm: /request_type="waiting"[^}]*\} NaN$/m }[runtime];
        const kv = { vllm: /^vllm:kv_cache_usage_perc\{[^}]*\} NaN$/m, 'vllm-v0': /^vllm:gpu_cache_usage_perc\{[^}]*\} NaN$/m, sglang: /^sglang:token_usage\{[^}]*\} NaN$/m, trtllm: /kv_cache_block_type="fraction"[^}]*\} NaN$/m }[runtime];
        assert.match(page, waiting, `${runtime} waiting`);
        assert.match(page, kv, `${runtime} kv`);
        const running = { vllm: /^vllm:num_requests_running\{[^}]*\} NaN$/m, 'vllm-v0': /^vllm:num_requests_running\{[^}]*\} NaN$/m, sglang: /^sglang:num_running_reqs\{[^}]*\} NaN$/m, trtllm: /request_type="scheduled"[^}]*\} NaN$/m }[runtime];
        assert.match(page, running, `${runtime} running`);
      } finally {
        await s.close();
      }
    }
  });

  test('no-stats: the page still answers 200 without the engine gauges; what remains per runtime', async () => {
    const remains: { readonly [R in SimRuntime]: { has: RegExp[]; lacks: RegExp } } = {
      vllm: { has: [/^python_info\{implementation="CPython"/m, /^process_resident_memory_bytes \d/m, /^http_requests_total\{method="POST",status="2xx",handler="\/v1\/completions"\} 1\.0$/m], lacks: /^vllm:/m },
      'vllm-v0': { has: [], lacks: /./ },
      sglang: { has: [/^sglang:prompt_tokens_total/m, /^sglang:time_to_first_token_seconds_count/m], lacks: /^sglang:(num_queue_reqs|num_running_reqs|token_usage)/m },
      trtllm: { has: [/^nv_inference_request_success\{/m, /^nv_inference_pending_request_count\{/m], lacks: /^nv_trt_llm_/m },
    };
    for (const runtime of RUNTIMES) {
      const s = await tinyServer({ runtime, metricsFault: 'no-stats' });
      try {
        const r = await post(s, '/v1/completions', { model: 'mymodel', prompt: 'hi', max_tokens: 2 });
        await r.arrayBuffer();
        const page = await scrape(s);
        for (const re of remains[runtime].has) assert.match(page, re, runtime);
        assert.doesNotMatch(page, remains[runtime].lacks, runtime);
        const read = extractMetrics(page, DIALECT[runtime]);
        assert.equal(read.found.waitingRequests, undefined, `${runtime}: no queue signal for a scraper`);
        assert.equal(read.metrics, undefined);
      } finally {
        await s.close();
      }
    }
  });

  test('POST /sim/faults switches the page at run time, and back', async () => {
    const s = await tinyServer();
    try {
      assert.match(await scrape(s), /^vllm:num_requests_waiting\{[^}]*\} 0\.0$/m);
      const set = await post(s, '/sim/faults', { metrics: 'nan' });
      assert.deepEqual(await set.json(), { generation: 'ok', metrics: 'nan' });
      assert.match(await scrape(s), /^vllm:num_requests_waiting\{[^}]*\} NaN$/m);
      assert.deepEqual(s.setFaults({ metrics: 'none' }), { generation: 'ok', metrics: 'none' });
      assert.match(await scrape(s), /^vllm:num_requests_waiting\{[^}]*\} 0\.0$/m);
    } finally {
      await s.close();
    }
  });
});

describe('generation faults', () => {
  test('hang: the body is read, no answer ever comes; metrics and health still answer; the client leaving counts as aborted', async () => {
    const s = await tinyServer();
    try {
      const controller = new AbortController();
      const pending = post(s, '/v1/completions', completion, { 'x-sim-fault': 'hang' }, controller.signal);
      await until('the hung request to be received', () => (s.stats().received === 1 ? true : undefined));
      assert.equal(s.stats().inFlight, 1);
      await stillObservable(s);
      assert.equal(s.engine.stats().promptTokensTotal, 0, 'the engine never saw it');
      controller.abort();
      await assert.rejects(pending);
      await until('the abort to be counted', () => (s.stats().aborted === 1 ? true : undefined));
      assert.deepEqual(s.stats(), { received: 1, served: 0, inFlight: 0, aborted: 1 });
    } finally {
      await s.close();
    }
  });

  test('hang-after-headers: a stream gets 200 and SSE headers, then nothing', async () => {
    const s = await tinyServer();
    try {
      const controller = new AbortController();
      const r = await post(s, '/v1/completions', { ...completion, stream: true }, { 'x-sim-fault': 'hang-after-headers' }, controller.signal);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
      const reader = (r.body as ReadableStream<Uint8Array>).getReader();
      const read = reader.read();
      await settle();
      assert.equal(s.stats().inFlight, 1);
      await stillObservable(s);
      controller.abort();
      await assert.rejects(read);
    } finally {
      await s.close();
    }
  });

  test('stall-mid-stream: half of the tokens arrive, then the stream stays open with nothing more', async () => {
    const s = await tinyServer();
    try {
      const c = await openRaw(s, { ...completion, stream: true }, { 'x-sim-fault': 'stall-mid-stream' });
      assert.equal(c.status, 200);
      await until('the engine to finish the request', () => (s.engine.stats().requestSuccessTotal.length === 1 ? true : undefined));
      await settle();
      assert.equal(sseEvents(c.received()).length, 5, '5 of 10 tokens, no [DONE]');
      assert.equal(c.ended(), false);
      assert.equal(s.stats().inFlight, 1);
      await stillObservable(s);
      c.close();
      await until('the abort', () => (s.stats().aborted === 1 ? true : undefined));
      assert.equal(s.stats().served, 0);
    } finally {
      await s.close();
    }
  });

  test('stall-mid-stream on a JSON answer: the headers and half of the body, then nothing', async () => {
    const s = await tinyServer();
    try {
      const c = await openRaw(s, completion, { 'x-sim-fault': 'stall-mid-stream' });
      assert.equal(c.status, 200);
      const length = Number(c.headers['content-length']);
      await until('half of the body', () => (c.received().length >= Math.floor(length / 2) ? true : undefined));
      await settle();
      assert.equal(Buffer.byteLength(c.received()), Math.floor(length / 2));
      assert.equal(c.ended(), false);
      c.close();
    } finally {
      await s.close();
    }
  });

  test('drop-after-body: the whole body is read, then the connection is destroyed without a response', async () => {
    const s = await tinyServer();
    try {
      await assert.rejects(post(s, '/v1/chat/completions', { model: 'mymodel', messages: [{ role: 'user', content: 'crash' }] }, { 'x-sim-fault': 'drop-after-body' }));
      assert.deepEqual(s.stats(), { received: 1, served: 0, inFlight: 0, aborted: 0 });
      assert.equal(s.engine.stats().promptTokensTotal, 0);
      await stillObservable(s);
    } finally {
      await s.close();
    }
  });

  test('status:<code> answers that status in each runtime’s own error shape, on every generation route', async () => {
    const shapes: { readonly [R in SimRuntime]: (b: Record<string, unknown>) => unknown } = {
      vllm: (b) => (b['error'] as { code: number; type: string }).type,
      'vllm-v0': (b) => [b['object'], b['type']],
      sglang: (b) => [b['object'], b['type']],
      trtllm: (b) => typeof b['detail'],
    };
    const want: { readonly [R in SimRuntime]: unknown } = {
      vllm: 'ServiceUnavailableError',
      'vllm-v0': ['error', 'ServiceUnavailableError'],
      sglang: ['error', 'Service Unavailable'],
      trtllm: 'string',
    };
    for (const runtime of RUNTIMES) {
      const s = await tinyServer({ runtime, fault: 'status:503' });
      try {
        for (const [path, body] of [
          ['/v1/completions', completion],
          ['/v1/chat/completions', { model: 'mymodel', messages: [{ role: 'user', content: 'x' }] }],
          ['/v1/embeddings', { model: 'mymodel', input: 'x' }],
        ] as const) {
          const r = await post(s, path, body);
          assert.equal(r.status, 503, `${runtime} ${path}`);
          assert.deepEqual(shapes[runtime]((await r.json()) as Record<string, unknown>), want[runtime], `${runtime} ${path}`);
        }
        const tooMany = await post(s, '/v1/completions', completion, { 'x-sim-fault': 'status:429' });
        assert.equal(tooMany.status, 429, `${runtime}: the header wins over the server-wide fault`);
        const want429 = { vllm: 'TooManyRequestsError', 'vllm-v0': ['error', 'TooManyRequestsError'], sglang: ['error', 'Too Many Requests'], trtllm: 'string' }[runtime];
        assert.deepEqual(shapes[runtime]((await tooMany.json()) as Record<string, unknown>), want429);
        await stillObservable(s);
        assert.equal(s.stats().received, 4);
      } finally {
        await s.close();
      }
    }
  });

  test('server-wide faults: GET and POST /sim/faults, setFaults(); the x-sim-fault header wins; bad values change nothing', async () => {
    const s = await tinyServer();
    try {
      assert.deepEqual(await (await fetch(`${s.url}/sim/faults`)).json(), { generation: 'ok', metrics: 'none' });
      const set = await post(s, '/sim/faults', { generation: 'status:500' });
      assert.deepEqual(await set.json(), { generation: 'status:500', metrics: 'none' });
      assert.equal((await post(s, '/v1/completions', completion)).status, 500);
      const served = await post(s, '/v1/completions', { ...completion, max_tokens: 2 }, { 'x-sim-fault': 'ok' });
      assert.equal(served.status, 200);
      await served.arrayBuffer();

      for (const bad of [{ generation: 'explode' }, { generation: 'status:200' }, { metrics: 'zero' }, { other: 1 }, 'not json']) {
        const r = await post(s, '/sim/faults', bad);
        assert.equal(r.status, 400, JSON.stringify(bad));
        assert.equal(typeof ((await r.json()) as { error: string }).error, 'string');
      }
      assert.deepEqual(s.faults(), { generation: 'status:500', metrics: 'none' }, 'unchanged by the bad posts');
      assert.throws(() => s.setFaults({ generation: 'nope' as 'ok' }), RangeError);
      assert.deepEqual(s.setFaults({ generation: 'ok' }), { generation: 'ok', metrics: 'none' });

      const badHeader = await post(s, '/v1/completions', completion, { 'x-sim-fault': 'sometimes' });
      assert.equal(badHeader.status, 400);
      assert.match(((await badHeader.json()) as { error: { message: string } }).error.message, /x-sim-fault: unknown generation fault "sometimes"/);
    } finally {
      await s.close();
    }
  });

  test('stats().received proves whether a request reached a server', async () => {
    const s = await tinyServer({ runtime: 'trtllm' });
    try {
      assert.equal(s.stats().received, 0);
      const r404 = await post(s, '/v1/responses', { model: 'mymodel', input: 'x' });
      assert.equal(r404.status, 404);
      await r404.arrayBuffer();
      const bad = await post(s, '/v1/completions', '{"model": ');
      assert.equal(bad.status, 400);
      await bad.arrayBuffer();
      assert.deepEqual(s.stats(), { received: 1, served: 0, inFlight: 0, aborted: 0 }, 'an invalid body was still received; an unknown route was not');
    } finally {
      await s.close();
    }
  });
});
