import assert from 'node:assert/strict';
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { chatRequest, startFakeEnv, type FakeEnv } from '../support/fake-engines.js';

// An HTTP/2 client that goes away mid-answer, by cancelling its stream (RST_STREAM) or dropping
// the whole connection, is a client gone as over HTTP/1.1: the request to the model server is
// aborted, the endpoint's in-flight count falls back, and the request is logged with 499. Before,
// a cancelled stream stayed in flight for ever (the load scorers saw a busy endpoint, shutdown
// waited out its grace) and the server generated to the end.

const HOST = '127.0.6.36';

describe('an HTTP/2 client going away mid-answer', { timeout: 90_000 }, () => {
  let env: FakeEnv;
  /** Request ids whose upstream request was closed before its answer ended (the gateway aborted it). */
  const abortedUpstream = new Set<string>();

  before(async () => {
    env = await startFakeEnv(
      {
        // A model server that streams an event every 20 ms until its client (the gateway) leaves.
        [HOST]: (_req, res, seen) => {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          const timer = setInterval(() => res.write('data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'), 20);
          res.on('close', () => {
            clearInterval(timer);
            if (!res.writableEnded && seen.requestId !== undefined) abortedUpstream.add(seen.requestId);
          });
        },
      },
      { 'slow-0': HOST },
    );
  });

  after(async () => {
    await env?.close();
  });

  /** Starts a streamed request and resolves once some of its answer has arrived. */
  async function streaming(session: ClientHttp2Session, id: string): Promise<ClientHttp2Stream> {
    const stream = session.request({ ':method': 'POST', ':path': '/v1/chat/completions', 'content-type': 'application/json', 'x-request-id': id });
    stream.on('error', () => undefined);
    stream.end(chatRequest(true));
    await new Promise<void>((resolve, reject) => {
      stream.once('data', () => resolve());
      stream.once('close', () => reject(new Error(`stream ${id} closed before any answer`)));
    });
    return stream;
  }

  async function inFlight(): Promise<number> {
    const view = (await (await fetch(`http://127.0.0.1:${env.gateway.adminPort}/debug/endpoints`)).json()) as { pools: Array<{ endpoints: Array<{ inFlight: number }> }> };
    return view.pools.flatMap((p) => p.endpoints).reduce((n, e) => n + e.inFlight, 0);
  }

  async function expectGone(...ids: string[]): Promise<void> {
    for (const id of ids) {
      const line = await env.gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id, 60_000);
      assert.equal(line['status'], 499, JSON.stringify(line));
      for (const deadline = Date.now() + 60_000; !abortedUpstream.has(id); ) {
        assert.ok(Date.now() < deadline, `the request to the model server was aborted (${id})`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    for (const deadline = Date.now() + 60_000; (await inFlight()) !== 0; ) {
      assert.ok(Date.now() < deadline, 'the endpoint has nothing in flight');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  test('the stream cancelled (RST_STREAM CANCEL) while the connection stays open', async () => {
    const session = connect(`http://127.0.0.1:${env.port}`);
    try {
      const stream = await streaming(session, 'h2-cancel');
      stream.close(constants.NGHTTP2_CANCEL);
      await expectGone('h2-cancel');
      // The connection serves on.
      const next = await streaming(session, 'h2-after-cancel');
      next.close(constants.NGHTTP2_CANCEL);
      await expectGone('h2-after-cancel');
    } finally {
      session.destroy();
    }
  });

  test('the stream reset with another error code (INTERNAL_ERROR)', async () => {
    const session = connect(`http://127.0.0.1:${env.port}`);
    try {
      const stream = await streaming(session, 'h2-reset');
      stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      await expectGone('h2-reset');
    } finally {
      session.destroy();
    }
  });

  test('the whole connection dropped with two streams on it', async () => {
    const session = connect(`http://127.0.0.1:${env.port}`);
    await streaming(session, 'h2-drop-a');
    await streaming(session, 'h2-drop-b');
    session.destroy();
    await expectGone('h2-drop-a', 'h2-drop-b');
  });

  test('a GOAWAY and close from the client (session.close) ends its streams too once it stops reading', async () => {
    const session = connect(`http://127.0.0.1:${env.port}`);
    const stream = await streaming(session, 'h2-goaway');
    // close() waits for open streams; the client then cancels the one it no longer wants.
    session.close();
    stream.close(constants.NGHTTP2_CANCEL);
    await expectGone('h2-goaway');
  });
});
