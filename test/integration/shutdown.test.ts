import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { connect } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import type { GatewayProcess } from '../support/gateway-process.js';
import { answer, chatEvents, chatRequest, startFakeEnv, type FakeEnv, type SeenRequest } from '../support/fake-engines.js';
import { rawConnect, requestHead } from '../support/raw-http.js';
import { waitFor } from '../support/smart.js';

const GRACE_MS = 5_000;

/** Requests the fake model server holds until the test releases them, by request id. */
const held = new Map<string, () => void>();

function release(id: string): void {
  const go = held.get(id);
  assert.ok(go !== undefined, `${id} is held by the model server`);
  go();
}

/**
 * `x-test-mode: endless`: SSE headers and one event, then nothing more, ever (a stream longer
 * than any grace period); `hold-stream`: one event, the rest once released; `hold`: the whole
 * answer once released. Anything else is answered at once.
 */
function modes(_req: unknown, res: ServerResponse, seen: SeenRequest): void {
  const mode = seen.headers['x-test-mode'];
  const events = chatEvents('m', false);
  if (mode === 'endless' || mode === 'hold-stream') {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(events[0]);
    if (mode === 'hold-stream') held.set(seen.requestId ?? '', () => res.end(events.slice(1).join('')));
    return;
  }
  if (mode === 'hold') {
    held.set(seen.requestId ?? '', () => answer(res, seen));
    return;
  }
  answer(res, seen);
}

function request(path: string, id: string, mode: string, body: string, extra: Record<string, string> = {}): string {
  return requestHead(path, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'X-Request-Id': id, 'X-Test-Mode': mode, ...extra }) + body;
}

/** The HTTP/1.1 responses in a connection's bytes: status and headers of each. */
function responses(text: string): Array<{ status: number; headers: string }> {
  return [...text.matchAll(/HTTP\/1\.1 (\d{3}) [^\r]*\r\n((?:[^\r]+\r\n)*)\r\n/g)].map((m) => ({ status: Number(m[1]), headers: (m[2] ?? '').toLowerCase() }));
}

describe('graceful shutdown on SIGTERM', { timeout: 60_000 }, () => {
  let env: FakeEnv;
  let gateway: GatewayProcess;
  let port: number;

  before(async () => {
    env = await startFakeEnv({ '127.0.6.60': modes }, { 'fake-0': '127.0.6.60' }, { args: ['--shutdown-grace', String(GRACE_MS)] });
    ({ gateway, port } = env);
  });

  after(async () => {
    await env?.close();
  });

  test('readiness fails at once, connections are told to close, late requests get 503, and a stream outliving the grace period ends with an error event', async () => {
    const path = '/v1/chat/completions';
    // A stream longer than the grace period.
    const endless = await rawConnect(port);
    endless.socket.write(request(path, 'endless', 'endless', chatRequest(true)));
    await endless.until((t) => t.includes('data: '));
    // An idle keep-alive connection.
    const idle = await rawConnect(port);
    idle.socket.write(request(path, 'idle', 'answer', chatRequest(false)));
    await idle.until((t) => t.includes('Hello there!'));
    // A stream whose headers went out before the signal, with a second request pipelined behind it later.
    const pipelined = await rawConnect(port);
    pipelined.socket.write(request(path, 'first', 'hold-stream', chatRequest(true)));
    await pipelined.until((t) => t.includes('data: '));
    // A non-streamed request still waiting for its answer.
    const waiting = await rawConnect(port);
    waiting.socket.write(request(path, 'waiting', 'hold', chatRequest(false)));
    await waitFor('the model server holds the waiting request', () => held.has('waiting'));
    // An HTTP/2 connection.
    const h2 = connect(`http://127.0.0.1:${port}`);
    const goaway = once(h2, 'goaway');
    await new Promise<void>((resolve, reject) => {
      const s = h2.request({ ':method': 'GET', ':path': '/v1/models' });
      s.on('error', reject).on('end', resolve).resume();
    });

    gateway.kill('SIGTERM');

    // Readiness fails at once (the stream is still running).
    await waitFor('readiness to fail', async () => (await fetch(`http://127.0.0.1:${gateway.adminPort}/readyz`)).status === 503);
    const ready = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/readyz`)).json()) as { reason: string };
    assert.equal(ready.reason, 'shutting down');
    // The listener accepts no new connection.
    await assert.rejects(rawConnect(port), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED');
    // The idle keep-alive connection is closed, the HTTP/2 one gets a GOAWAY.
    await idle.closed();
    await goaway;
    h2.close();

    // A request arriving on a kept-alive connection meanwhile: 503 gateway_shutting_down, Connection: close.
    pipelined.socket.write(request(path, 'late', 'answer', chatRequest(false)));
    await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === 'late');
    release('first');
    const late = await pipelined.closed();
    const [first, second] = responses(late.text);
    assert.equal(first?.status, 200);
    assert.equal(second?.status, 503);
    assert.match(second?.headers ?? '', /connection: close/);
    assert.match(late.text, /"code":"gateway_shutting_down"/);
    assert.match(late.text, /data: \[DONE\]/, 'the first stream finished whole');

    // A response written during the drain asks the client to close.
    release('waiting');
    const done = await waiting.closed();
    assert.equal(responses(done.text)[0]?.status, 200);
    assert.match(responses(done.text)[0]?.headers ?? '', /connection: close/);
    assert.match(done.text, /Hello there!/);

    // The stream outliving the grace period ends with one error event and [DONE].
    const cut = await endless.closed();
    // SSE data lines (each event went out as whole chunks, so no chunk framing splits a line).
    const events = [...cut.text.matchAll(/data: ([^\n]*)\n/g)].map((m) => m[1] ?? '');
    assert.equal(events.at(-1), '[DONE]');
    const error = JSON.parse(events.at(-2) ?? '') as { error: { code: string } };
    assert.equal(error.error.code, 'gateway_shutting_down');
    assert.equal(events.filter((e) => e.includes('"error"')).length, 1);

    assert.equal(await gateway.exited, 0);
    const line = (id: string): Record<string, unknown> | undefined => gateway.logs.find((l) => l.msg === 'Request Handled' && l['requestId'] === id);
    assert.equal(line('endless')?.['status'], 200, 'logged with the status the client saw');
    assert.equal(line('endless')?.['code'], 'gateway_shutting_down');
    assert.equal(line('late')?.['status'], 503);
    assert.equal(line('late')?.['code'], 'gateway_shutting_down');
    assert.equal(line('first')?.['status'], 200);
    assert.equal(line('first')?.['code'], undefined);
    assert.equal(line('waiting')?.['status'], 200);
  });
});

