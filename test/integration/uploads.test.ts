import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GatewayProcess } from '../support/gateway-process.js';
import { answer, startFakeEnv, type FakeEngines, type FakeEnv } from '../support/fake-engines.js';
import { finalStatus, rawConnect, requestHead, upload, uploadThenRead } from '../support/raw-http.js';
import { runConcurrently } from '../support/stats.js';

const LIMIT = `---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: two-mib}
spec:
  connection: {bufferLimit: 2Mi}
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
`;

const PATH = '/v1/chat/completions';

/** A chat body of about `bytes` bytes. */
function bigChat(bytes: number): Buffer {
  return Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(bytes) }] }));
}

describe('uploads: Expect: 100-continue, bodies over the limit, clients that leave mid-upload', { timeout: 120_000 }, () => {
  let env: FakeEnv;
  let gateway: GatewayProcess;
  let fakes: FakeEngines;
  let port: number;

  before(async () => {
    env = await startFakeEnv({ '127.0.6.10': (_req, res, seen) => answer(res, seen) }, { 'fake-0': '127.0.6.10' }, { extraYaml: LIMIT });
    ({ gateway, fakes, port } = env);
  });

  after(async () => {
    await env?.close();
  });

  test('Expect: 100-continue under the limit: 100, then the body, then the answer; the expectation is not forwarded', async () => {
    // curl sends Expect by itself for bodies of 1 MiB and more.
    const body = bigChat(1536 * 1024);
    const conn = await rawConnect(port);
    conn.socket.write(requestHead(PATH, { 'Content-Type': 'application/json', 'Content-Length': body.length, Expect: '100-continue', 'X-Request-Id': 'expect-ok', Connection: 'close' }));
    await conn.until((t) => t.includes('\r\n\r\n'));
    assert.match(conn.received(), /^HTTP\/1\.1 100 Continue\r\n/);
    conn.socket.write(body);
    const { text } = await conn.closed();
    assert.equal(finalStatus(text), 200, text.slice(0, 400));
    assert.match(text, /Hello there!/);
    const seen = fakes.seen.find((s) => s.requestId === 'expect-ok');
    assert.ok(seen !== undefined, 'the model server got the request');
    assert.equal(seen.headers['expect'], undefined);
    assert.equal(seen.body.length, body.length);
  });

  test('Expect: 100-continue with a declared body over the limit: 413 at once, no 100', async () => {
    const conn = await rawConnect(port);
    conn.socket.write(requestHead(PATH, { 'Content-Type': 'application/json', 'Content-Length': 8 * 1024 * 1024, Expect: '100-continue' }));
    const text = await conn.until((t) => t.includes('\r\n\r\n'));
    assert.match(text, /^HTTP\/1\.1 413 /);
    assert.match(text, /\r\nconnection: close\r\n/i);
    await conn.until((t) => t.includes('"body_too_large"'));
    conn.socket.destroy();
  });

  test('413 without Expect reaches a client that uploads the whole body before reading, every time', async () => {
    // The OpenAI SDK writes the whole body, then reads: a reset after the 413 would destroy it.
    const results = await runConcurrently(20, 4, () => uploadThenRead(port, PATH, { 'Content-Type': 'application/json' }, 6 * 1024 * 1024));
    for (const r of results) {
      assert.equal(finalStatus(r.text), 413, `got ${JSON.stringify(r.text.slice(0, 120))}, error ${r.error ?? 'none'}`);
      assert.match(r.text, /"code":"body_too_large"/);
      assert.match(r.text, /\r\nconnection: close\r\n/i);
    }
  });

  for (const how of ['reset', 'close'] as const) {
    test(`a client that leaves mid-upload (${how}) is logged once as 499 client_gone at info, with no error line`, async () => {
      const id = `gone-${how}`;
      const conn = await rawConnect(port);
      conn.socket.write(requestHead(PATH, { 'Content-Type': 'application/json', 'Content-Length': 1024 * 1024, Expect: '100-continue', 'X-Request-Id': id }));
      // The 100 says the gateway is reading the body now.
      await conn.until((t) => t.includes('100 Continue'));
      await upload(conn.socket, 100 * 1024);
      if (how === 'reset') conn.socket.resetAndDestroy();
      else conn.socket.end();
      const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
      assert.equal(line['status'], 499);
      assert.equal(line['code'], 'client_gone');
      assert.equal(line['level'], 30);
      if (how === 'close') conn.socket.destroy();
      assert.deepEqual(
        gateway.logs.filter((l) => Number(l['level']) >= 50 || (l['requestId'] === id && l.msg !== 'Request Handled')),
        [],
        'no error-level line',
      );
      assert.equal(gateway.logs.filter((l) => l['requestId'] === id).length, 1, 'logged once');
    });
  }
});
