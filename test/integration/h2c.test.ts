import assert from 'node:assert/strict';
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import type { GatewayProcess } from '../support/gateway-process.js';
import { answer, chatRequest, FAKE_USAGE, startFakeEnv, type FakeEngines, type FakeEnv } from '../support/fake-engines.js';

// HTTP/2 cleartext with prior knowledge (what Envoy and gRPC-style clients send): the listener
// port speaks it beside HTTP/1.1.
describe('HTTP/2 cleartext (prior knowledge) on a listener port', { timeout: 60_000 }, () => {
  let env: FakeEnv;
  let gateway: GatewayProcess;
  let fakes: FakeEngines;
  let port: number;
  let session: ClientHttp2Session;

  before(async () => {
    env = await startFakeEnv({ '127.0.6.30': (_req, res, seen) => answer(res, seen) }, { 'fake-0': '127.0.6.30' });
    ({ gateway, fakes, port } = env);
    session = connect(`http://127.0.0.1:${port}`);
  });

  after(async () => {
    session?.close();
    await env?.close();
  });

  function post(body: string, id: string, sendLength: boolean): Promise<{ headers: IncomingHttpHeaders; text: string }> {
    return new Promise((resolve, reject) => {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/v1/chat/completions',
        'content-type': 'application/json',
        'x-request-id': id,
        // Node's HTTP/2 client sends no content-length unless told: the body ends with the stream.
        ...(sendLength ? { 'content-length': String(Buffer.byteLength(body)) } : {}),
      });
      let headers: IncomingHttpHeaders = {};
      let text = '';
      stream.setEncoding('utf8');
      stream.on('response', (h) => (headers = h));
      stream.on('data', (c: string) => (text += c));
      stream.on('end', () => resolve({ headers, text }));
      stream.on('error', reject);
      stream.end(body);
    });
  }

  test('a streamed chat completion', async () => {
    const r = await post(chatRequest(true, { stream_options: { include_usage: true } }), 'h2-stream', false);
    assert.equal(r.headers[':status'], 200);
    assert.match(String(r.headers['content-type']), /text\/event-stream/);
    const events = r.text.split('\n\n').filter((e) => e !== '');
    assert.equal(events.at(-1), 'data: [DONE]');
    const usage = JSON.parse((events.at(-2) ?? '').slice(6)) as { usage: typeof FAKE_USAGE };
    assert.deepEqual(usage.usage, FAKE_USAGE);
    const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === 'h2-stream');
    assert.equal(line['status'], 200);
    assert.equal(line['completionTokens'], FAKE_USAGE.completion_tokens);
  });

  test('a whole chat completion, with and without content-length', async () => {
    for (const sendLength of [true, false]) {
      const id = `h2-json-${sendLength}`;
      const r = await post(chatRequest(false), id, sendLength);
      assert.equal(r.headers[':status'], 200);
      assert.equal(r.headers['x-request-id'], id);
      assert.equal((JSON.parse(r.text) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content, 'Hello there!');
      const seen = fakes.seen.find((s) => s.requestId === id);
      assert.ok(seen !== undefined);
      assert.equal(seen.headers[':path'], undefined, 'no HTTP/2 pseudo-header is forwarded');
      assert.equal(JSON.parse(seen.body.toString('utf8')).stream, false, 'the body reached the model server');
    }
  });

  test('HTTP/1.1 still works on the same port', async () => {
    const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatRequest(false) });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  });
});
