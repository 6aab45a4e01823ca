import assert from 'node:assert/strict';
import { request, type IncomingHttpHeaders } from 'node:http';
import { describe, test } from 'node:test';
import { createGunzip } from 'node:zlib';
import { acceptsGzip, type RunningSimServer } from '../../src/sim/index.js';
import { sseEvents, tinyServer, type Completion } from './helpers.js';

interface Raw {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body as received (compressed when the server compressed it). */
  body: Buffer;
}

/** A request with exactly these headers (fetch would add its own Accept-Encoding and decode). */
function raw(s: RunningSimServer, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(`${s.url}${path}`, { method, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const gunzip = (b: Buffer): Promise<string> =>
  new Promise((resolve, reject) => {
    const gz = createGunzip();
    const out: Buffer[] = [];
    gz.on('data', (c: Buffer) => out.push(c));
    gz.on('end', () => resolve(Buffer.concat(out).toString('utf8')));
    gz.on('error', reject);
    gz.end(b);
  });

const completion = { model: 'mymodel', prompt: 'compress me', max_tokens: 8, ignore_eos: true };

describe('compress: gzip like a compressing proxy in front of the server', () => {
  test('JSON answers are gzipped when Accept-Encoding allows it, plain otherwise; both say Vary', async () => {
    const s = await tinyServer({ compress: true });
    try {
      const zipped = await raw(s, 'POST', '/v1/completions', { 'accept-encoding': 'gzip, deflate' }, completion);
      assert.equal(zipped.status, 200);
      assert.equal(zipped.headers['content-encoding'], 'gzip');
      assert.equal(zipped.headers['vary'], 'Accept-Encoding');
      assert.equal(zipped.headers['content-length'], undefined);
      const body = JSON.parse(await gunzip(zipped.body)) as Completion;
      assert.equal(body.usage.completion_tokens, 8);

      const plain = await raw(s, 'POST', '/v1/completions', {}, completion);
      assert.equal(plain.headers['content-encoding'], undefined);
      assert.equal(plain.headers['vary'], 'Accept-Encoding');
      assert.deepEqual((JSON.parse(plain.body.toString('utf8')) as Completion).choices, body.choices);

      const refused = await raw(s, 'POST', '/v1/completions', { 'accept-encoding': 'gzip;q=0, identity' }, completion);
      assert.equal(refused.headers['content-encoding'], undefined);

      const page = await raw(s, 'GET', '/metrics', { 'accept-encoding': 'gzip' });
      assert.match(await gunzip(page.body), /^vllm:num_requests_running/m, '/metrics too');
      const health = await raw(s, 'GET', '/health', { 'accept-encoding': 'gzip' });
      assert.equal(health.headers['content-encoding'], undefined, 'an empty body is not compressed');
    } finally {
      await s.close();
    }
  });

  test('a gzipped SSE stream is flushed per event: the first event decodes while the engine is still generating', async () => {
    const s = await tinyServer({ compress: true, timeScale: 1, overrides: { decodeFloorMs: 25 } });
    try {
      const { firstWhileRunning, text } = await new Promise<{ firstWhileRunning: boolean; text: string }>((resolve, reject) => {
        const req = request(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip' } }, (res) => {
          assert.equal(res.headers['content-encoding'], 'gzip');
          assert.match(res.headers['content-type'] ?? '', /^text\/event-stream/);
          const gz = createGunzip();
          let text = '';
          let firstWhileRunning: boolean | undefined;
          gz.on('data', (c: Buffer) => {
            firstWhileRunning ??= s.engine.stats().running === 1;
            text += c.toString('utf8');
          });
          gz.on('end', () => resolve({ firstWhileRunning: firstWhileRunning === true, text }));
          gz.on('error', reject);
          res.pipe(gz);
        });
        req.on('error', reject);
        req.end(JSON.stringify({ ...completion, max_tokens: 10, stream: true }));
      });
      assert.ok(firstWhileRunning, 'decoded data arrived before the answer was complete');
      const events = sseEvents(text);
      assert.equal(events.length, 11, '10 tokens and [DONE]');
      assert.equal(events.at(-1), '[DONE]');
    } finally {
      await s.close();
    }
  });

  test('fetch (which asks for gzip and decodes) reads compressed answers transparently', async () => {
    const s = await tinyServer({ compress: true });
    try {
      const r = await fetch(`${s.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'mymodel', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 }),
      });
      assert.equal(r.headers.get('content-encoding'), 'gzip');
      assert.equal(((await r.json()) as Completion).usage.completion_tokens, 3);
    } finally {
      await s.close();
    }
  });

  test('off by default', async () => {
    const s = await tinyServer();
    try {
      const r = await raw(s, 'POST', '/v1/completions', { 'accept-encoding': 'gzip' }, completion);
      assert.equal(r.headers['content-encoding'], undefined);
      assert.equal(r.headers['vary'], undefined);
    } finally {
      await s.close();
    }
  });

  test('acceptsGzip reads Accept-Encoding with qualities', () => {
    const cases: Array<[string | undefined, boolean]> = [
      [undefined, false],
      ['', false],
      ['gzip', true],
      ['GZIP', true],
      ['deflate, gzip;q=0.5', true],
      ['gzip;q=0', false],
      ['gzip; q=0.0, *', false],
      ['br, *;q=0.1', true],
      ['*;q=0', false],
      ['identity', false],
      ['x-gzip', true],
    ];
    for (const [header, want] of cases) assert.equal(acceptsGzip(header), want, String(header));
  });
});
