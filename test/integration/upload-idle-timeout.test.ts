import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { answer, chatRequest, startFakeEnv, type FakeEnv } from '../support/fake-engines.js';
import { finalStatus, rawConnect, requestHead } from '../support/raw-http.js';

const PATH = '/v1/chat/completions';

describe('a client that goes silent mid-upload gets 408 and its connection closed within the body idle timeout', { timeout: 120_000 }, () => {
  let env: FakeEnv;
  let port: number;

  before(async () => {
    env = await startFakeEnv({ '127.0.16.3': (_req, res, seen) => answer(res, seen) }, { 'fake-0': '127.0.16.3' }, { args: ['--body-idle-timeout', '1s'] });
    port = env.port;
  });

  after(async () => {
    await env?.close();
  });

  for (const framing of ['content-length', 'chunked'] as const) {
    test(`silent after part of the body (${framing}): 408 request_body_timeout, connection closed, logged once, not forwarded`, async () => {
      const id = `silent-${framing}`;
      const body = chatRequest(false);
      const conn = await rawConnect(port);
      const head: Record<string, string | number> = framing === 'chunked' ? { 'Transfer-Encoding': 'chunked' } : { 'Content-Length': body.length };
      conn.socket.write(requestHead(PATH, { 'Content-Type': 'application/json', 'X-Request-Id': id, ...head }));
      const part = body.slice(0, 20);
      conn.socket.write(framing === 'chunked' ? `${part.length.toString(16)}\r\n${part}\r\n` : part);
      // …and nothing more. The gateway answers and closes; the client does not have to.
      const { text } = await conn.closed();
      assert.equal(finalStatus(text), 408, text.slice(0, 300));
      assert.match(text, /"code":"request_body_timeout"/);
      assert.match(text, /\r\nconnection: close\r\n/i);
      const line = await env.gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
      assert.equal(line['status'], 408);
      assert.equal(line['code'], 'request_body_timeout');
      assert.equal(env.gateway.logs.filter((l) => l['requestId'] === id).length, 1, 'logged once, no other line');
      assert.equal(env.fakes.seen.find((s) => s.requestId === id), undefined);
    });
  }

  test('a slow upload that never pauses for the idle timeout is served: the bound is between reads, not on the whole body', async () => {
    const id = 'slow-but-steady';
    const body = chatRequest(false);
    const conn = await rawConnect(port);
    conn.socket.write(requestHead(PATH, { 'Content-Type': 'application/json', 'X-Request-Id': id, 'Content-Length': body.length, Connection: 'close' }));
    // About 2.5 s in all, a piece every 100 ms: longer than the idle timeout, never idle for it.
    const pieces = 25;
    const step = Math.ceil(body.length / pieces);
    for (let i = 0; i < body.length; i += step) {
      conn.socket.write(body.slice(i, i + step));
      await new Promise((r) => setTimeout(r, 100));
    }
    const { text } = await conn.closed();
    assert.equal(finalStatus(text), 200, text.slice(0, 300));
  });
});
