import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import * as zlib from 'node:zlib';
import type { Transform } from 'node:stream';
import type { GatewayProcess } from '../support/gateway-process.js';
import { chatEvents, chatJson, chatRequest, FAKE_USAGE, jsonBody, startFakeEnv, type FakeEnv, type FakeHandler } from '../support/fake-engines.js';

// Model servers (and middleboxes in front of them) may compress answers although the gateway asks
// for identity. This one compresses every answer with the coding the test names, streamed with a
// flush per event as a streaming server does.
type Encoder = Transform & zlib.Zlib;

const ENCODERS: Readonly<Record<string, { header: string; create: () => Encoder }>> = {
  gzip: { header: 'gzip', create: () => zlib.createGzip() },
  deflate: { header: 'deflate', create: () => zlib.createDeflate() },
  'raw deflate': { header: 'deflate', create: () => zlib.createDeflateRaw() },
  br: { header: 'br', create: () => zlib.createBrotliCompress() },
};

/** Answers with the coding the request's `x-test-coding` names, whatever it accepts. */
const compressing: FakeHandler = (_req, res, seen) => {
  const encoder = ENCODERS[String(seen.headers['x-test-coding'])] ?? (ENCODERS['gzip'] as { header: string; create: () => Encoder });
  const body = jsonBody(seen);
  const z = encoder.create();
  z.pipe(res);
  if (body.stream === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'content-encoding': encoder.header });
    void (async () => {
      for (const event of chatEvents('m', body.stream_options?.include_usage === true)) {
        z.write(event);
        await new Promise<void>((resolve) => z.flush(() => resolve()));
      }
      z.end();
    })();
  } else {
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': encoder.header });
    z.end(chatJson('m'));
  }
};

describe('compressed upstream answers reach the client and the gateway uncompressed', { timeout: 60_000 }, () => {
  let env: FakeEnv;
  let gateway: GatewayProcess;
  let port: number;

  before(async () => {
    env = await startFakeEnv({ '127.0.6.2': compressing }, { 'fake-0': '127.0.6.2' });
    ({ gateway, port } = env);
  });

  after(async () => {
    await env?.close();
  });

  /** A client that, like the OpenAI Python SDK, accepts gzip and deflate (and br). */
  function post(body: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', 'accept-encoding': 'gzip, deflate, br', ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  for (const coding of Object.keys(ENCODERS)) {
    test(`${coding}: a stream whose usage event the gateway strips is valid SSE, and the log has the usage`, async () => {
      const id = `sse-${coding.replace(' ', '-')}`;
      const r = await post(chatRequest(true), { 'x-test-coding': coding, 'x-request-id': id });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-encoding'], undefined, 'the client gets identity bytes');
      const events = r.text.split('\n\n').filter((e) => e !== '');
      assert.equal(events.at(-1), 'data: [DONE]');
      const parsed = events.slice(0, -1).map((e) => {
        assert.match(e, /^data: /);
        return JSON.parse(e.slice(6)) as { choices: Array<{ delta: { content?: string } }>; usage?: unknown };
      });
      assert.equal(parsed.map((p) => p.choices[0]?.delta.content ?? '').join(''), 'Hello there!');
      assert.ok(parsed.every((p) => p.usage === undefined), 'the usage event the client did not ask for is stripped');
      const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
      assert.equal(line['status'], 200);
      assert.equal(line['promptTokens'], FAKE_USAGE.prompt_tokens);
      assert.equal(line['completionTokens'], FAKE_USAGE.completion_tokens);
    });

    test(`${coding}: a whole JSON answer is valid JSON, and the log has the usage`, async () => {
      const id = `json-${coding.replace(' ', '-')}`;
      const r = await post(chatRequest(false), { 'x-test-coding': coding, 'x-request-id': id });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-encoding'], undefined);
      const body = JSON.parse(r.text) as { choices: Array<{ message: { content: string } }>; usage: typeof FAKE_USAGE };
      assert.equal(body.choices[0]?.message.content, 'Hello there!');
      assert.deepEqual(body.usage, FAKE_USAGE);
      const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
      assert.equal(line['promptTokens'], FAKE_USAGE.prompt_tokens);
      assert.equal(line['completionTokens'], FAKE_USAGE.completion_tokens);
    });
  }
});
