import assert from 'node:assert/strict';
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { answer, startFakeEnv, type FakeEnv } from '../support/fake-engines.js';
import { rawConnect } from '../support/raw-http.js';

// A client that leaves while it is still sending its body — an HTTP/2 stream reset (any code), an
// HTTP/2 connection dropped with or without GOAWAY, an HTTP/1.1 connection closed mid-body — is a
// client gone: logged 499 `client_gone`, never a 400 `invalid_json` for the half body it left
// behind, and never forwarded to a model server. Before, Node's HTTP/2 request emitted 'end' when
// the stream was reset (its 'aborted' came a moment later), so the half body was parsed as if
// complete: 400 over a CANCEL, and a whole JSON document sent before the reset reached the server.

const HOST = '127.0.6.52';
const PATH = '/v1/chat/completions';
const HALF = '{"model":"m","messages":[{"role":"user","content":"Say hel';
/** A whole JSON document, sent without ending the stream (the client then resets it). */
const WHOLE = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'Say hello.' }] });


/** An HTTP/2 frame: 9-byte header (length, type, flags, stream id), then the payload. */
function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** A HEADERS frame (END_HEADERS) of a chat POST, each field a literal without indexing (RFC 7541 §6.2.2). */
function headersFrame(stream: number, requestId: string): Buffer {
  const fields: Array<[string, string]> = [[':method', 'POST'], [':scheme', 'http'], [':path', PATH], [':authority', 'gw'], ['content-type', 'application/json'], ['x-request-id', requestId]];
  const block = Buffer.concat(fields.map(([n, v]) => Buffer.concat([Buffer.from([0, n.length]), Buffer.from(n), Buffer.from([v.length]), Buffer.from(v)])));
  return frame(1, 0x4, stream, block);
}

function dataFrame(stream: number, text: string, end: boolean): Buffer {
  return frame(0, end ? 0x1 : 0, stream, Buffer.from(text));
}

function rstFrame(stream: number, code: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(3, 0, stream, payload);
}

/**
 * A bare HTTP/2 client: the preface, an empty SETTINGS, then `frames`, all in one write (so the
 * gateway reads them together, as from a client that sent them back to back). The connection
 * stays open (closed when the tests end).
 */
async function rawH2(port: number, frames: Buffer[]): Promise<void> {
  const socket = netConnect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  socket.resume();
  opened.push(socket);
  await once(socket, 'connect');
  socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0)), ...frames]));
}

const opened: Socket[] = [];

describe('a client that leaves mid-body is logged 499, never 400, and nothing is forwarded', { timeout: 90_000 }, () => {
  let env: FakeEnv;

  before(async () => {
    env = await startFakeEnv({ [HOST]: (_req, res, seen) => answer(res, seen) }, { 'fake-0': HOST });
  });

  after(async () => {
    for (const socket of opened) socket.destroy();
    await env?.close();
  });

  /** Opens a stream and writes `body` without ending it; resolves once the bytes are on their way. */
  async function halfUpload(session: ClientHttp2Session, id: string, body: string, length?: number): Promise<ClientHttp2Stream> {
    const stream = session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/json', 'x-request-id': id, ...(length === undefined ? {} : { 'content-length': String(length) }) });
    stream.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => stream.write(body, (err) => (err ? reject(err) : resolve())));
    return stream;
  }

  async function expectGone(id: string): Promise<void> {
    const line = await env.gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id, 60_000);
    assert.equal(line['status'], 499, JSON.stringify(line));
    assert.equal(line['code'], 'client_gone', JSON.stringify(line));
    assert.equal(line['level'], 30, 'logged at info');
    assert.equal(line['attempts'], 0, 'no attempt on a model server');
    assert.equal(
      env.fakes.seen.find((s) => s.requestId === id),
      undefined,
      'the abandoned request never reached the model server',
    );
  }

  const resets: ReadonlyArray<readonly [string, number]> = [
    ['CANCEL', constants.NGHTTP2_CANCEL],
    ['INTERNAL_ERROR', constants.NGHTTP2_INTERNAL_ERROR],
    ['REFUSED_STREAM', constants.NGHTTP2_REFUSED_STREAM],
    ['NO_ERROR', constants.NGHTTP2_NO_ERROR],
  ];
  for (const [name, code] of resets) {
    test(`HTTP/2: half a JSON body, then RST_STREAM ${name} without ending the stream (curl, Go, browsers)`, async () => {
      const id = `h2-rst-${name}`;
      await rawH2(env.port, [headersFrame(1, id), dataFrame(1, HALF, false), rstFrame(1, code)]);
      await expectGone(id);
    });
  }

  test('HTTP/2: a whole JSON document, END_STREAM and RST_STREAM together: not forwarded', async () => {
    await rawH2(env.port, [headersFrame(1, 'h2-end-rst'), dataFrame(1, WHOLE, false), dataFrame(1, '', true), rstFrame(1, constants.NGHTTP2_CANCEL)]);
    await expectGone('h2-end-rst');
  });

  test('HTTP/2: node:http2 `stream.close(code)` after half a body (it sends END_STREAM, then RST_STREAM in a later write)', async () => {
    const session = connect(`http://127.0.0.1:${env.port}`);
    try {
      for (const [name, code] of resets.slice(0, 2)) {
        const id = `h2-close-${name}`;
        const stream = await halfUpload(session, id, HALF);
        stream.close(code);
        await expectGone(id);
      }
    } finally {
      session.destroy();
    }
  });

  test('HTTP/2: a declared content-length not reached, then RST_STREAM CANCEL', async () => {
    const session = connect(`http://127.0.0.1:${env.port}`);
    try {
      const stream = await halfUpload(session, 'h2-rst-declared', WHOLE, WHOLE.length + 100);
      stream.close(constants.NGHTTP2_CANCEL);
      await expectGone('h2-rst-declared');
    } finally {
      session.destroy();
    }
  });

  test('HTTP/2: the connection dropped mid-body (GOAWAY then close, and a bare TCP close)', async () => {
    const a = connect(`http://127.0.0.1:${env.port}`);
    await halfUpload(a, 'h2-goaway', HALF);
    a.destroy();
    await expectGone('h2-goaway');
    // The client's own socket, to close it under the session (no GOAWAY).
    let socket: Socket | undefined;
    const b = connect(`http://127.0.0.1:${env.port}`, { createConnection: () => (socket = netConnect(env.port, '127.0.0.1')) });
    b.on('error', () => undefined);
    await halfUpload(b, 'h2-tcp-close', WHOLE);
    socket?.destroy();
    await expectGone('h2-tcp-close');
    b.destroy();
  });

  test('HTTP/1.1: a chunked body cut mid-chunk and a declared body cut short', async () => {
    const chunked = await rawConnect(env.port);
    chunked.socket.write(`POST ${PATH} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-Request-Id: h1-chunked\r\n\r\n${WHOLE.length.toString(16)}\r\n${WHOLE}\r\n10\r\n`);
    chunked.socket.end();
    await expectGone('h1-chunked');
    const declared = await rawConnect(env.port);
    declared.socket.write(`POST ${PATH} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: ${WHOLE.length + 10}\r\nX-Request-Id: h1-declared\r\n\r\n${WHOLE}`);
    declared.socket.end();
    await expectGone('h1-declared');
  });

  test('no abandoned upload counts as a client error in the metrics, and the next request is served', async () => {
    const session = connect(`http://127.0.0.1:${env.port}`);
    try {
      const stream = session.request({ ':method': 'POST', ':path': PATH, 'content-type': 'application/json', 'x-request-id': 'h2-after' });
      let status: unknown;
      stream.on('response', (h) => (status = h[':status']));
      stream.resume();
      stream.end(WHOLE);
      await new Promise((resolve) => stream.on('close', resolve));
      assert.equal(status, 200);
    } finally {
      session.destroy();
    }
    const text = await (await fetch(`http://127.0.0.1:${env.gateway.adminPort}/metrics`)).text();
    const requests = text.split('\n').filter((l) => l.startsWith('infergate_requests_total{'));
    assert.deepEqual(requests.filter((l) => /status="4(?!99)\d\d"/.test(l)), [], requests.join('\n'));
    assert.ok(requests.some((l) => /status="499",code="client_gone"/.test(l)), requests.join('\n'));
  });
});
