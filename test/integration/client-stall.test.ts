import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { constants as h2constants, connect as h2connect } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { chatRequest, startFakeEnv, type FakeEnv } from '../support/fake-engines.js';
import { rawConnect, requestHead } from '../support/raw-http.js';
import { waitFor } from '../support/smart.js';

/** Requests whose answer the endless engine stopped writing because the gateway closed it. */
const upstreamClosed = new Set<string>();

/**
 * A model server with an endless answer: SSE events as fast as the gateway takes them (it waits
 * for 'drain', as a real server's transport does), until the gateway closes the exchange.
 */
function endless(req: { headers: Record<string, string | string[] | undefined> }, res: ServerResponse): void {
  const id = String(req.headers['x-request-id'] ?? '');
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  const event = `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: 'x'.repeat(200) }, finish_reason: null }] })}\n\n`;
  let open = true;
  res.on('close', () => {
    open = false;
    upstreamClosed.add(id);
  });
  const pump = (): void => {
    while (open) {
      if (!res.write(event)) {
        res.once('drain', pump);
        return;
      }
    }
  };
  pump();
}

interface EndpointsView {
  pools: Array<{ pool: string; endpoints: Array<{ name: string; inFlight: number }> }>;
}

describe('a client that stops reading a stream is cut after the client stall timeout', { timeout: 90_000 }, () => {
  let env: FakeEnv;

  before(async () => {
    env = await startFakeEnv({ '127.0.6.70': endless }, { 'endless-0': '127.0.6.70' }, { args: ['--client-stall-timeout', '600'] });
  });

  after(async () => {
    await env?.close();
  });

  const inFlight = async (): Promise<number> => {
    const view = (await (await fetch(`http://127.0.0.1:${env.gateway.adminPort}/debug/endpoints`)).json()) as EndpointsView;
    return view.pools.flatMap((p) => p.endpoints).find((e) => e.name === 'endless-0')?.inFlight ?? -1;
  };

  /** After a stalled request: logged as the client's stall, upstream aborted, in-flight back to 0. */
  async function assertCut(id: string): Promise<void> {
    const line = await env.gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id, 60_000);
    assert.equal(line['code'], 'client_stalled');
    assert.equal(line['status'], 499, 'logged as the client side, like client_gone');
    assert.match(String(line['error']), /600 ms/, 'the log names the timeout');
    await waitFor('the upstream exchange aborted', () => upstreamClosed.has(id));
    await waitFor('in-flight back to 0', async () => (await inFlight()) === 0);
    assert.ok(!env.gateway.logs.some((l) => l.msg?.startsWith('endpoint ejected') === true), 'the model server is not blamed');
  }

  test('HTTP/1.1: read the headers, then stop reading', async () => {
    const body = chatRequest(true);
    const conn = await rawConnect(env.port);
    conn.socket.write(requestHead('/v1/chat/completions', { 'content-type': 'application/json', 'x-request-id': 'stall-h1', 'content-length': Buffer.byteLength(body) }) + body);
    await conn.until((t) => t.includes('\r\n\r\n'));
    conn.socket.pause();
    await assertCut('stall-h1');
    conn.socket.resume();
    const { text } = await conn.closed();
    assert.ok(!text.endsWith('0\r\n\r\n'), 'the connection was closed, not the response ended');
  });

  test('h2c: read the headers, then stop reading', async () => {
    const session = h2connect(`http://127.0.0.1:${env.port}`);
    session.on('error', () => undefined);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json', 'x-request-id': 'stall-h2' });
      stream.on('error', () => undefined);
      stream.end(chatRequest(true));
      const [headers] = (await once(stream, 'response')) as [Record<string, string | number>];
      assert.equal(headers[':status'], 200);
      stream.pause();
      await assertCut('stall-h2');
      stream.resume();
      // The reset may have closed the stream already (a reset discards what was not read).
      if (!stream.closed) await once(stream, 'close');
      assert.equal(stream.rstCode, h2constants.NGHTTP2_CANCEL, 'the stream was reset (CANCEL), not ended');
    } finally {
      session.destroy();
    }
  });
});
