import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { test } from 'node:test';
import { CLIENT_LIMITS, PortListener } from '../../src/proxy/port-listener.js';
import { freePort } from '../support/ports.js';
import { rawConnect } from '../support/raw-http.js';

/** Sends `head` on a new connection and reads until the server closes it. */
function exchange(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (text += d));
    socket.on('error', (err) => (text === '' ? reject(err) : resolve(text)));
    socket.on('close', () => resolve(text));
  });
}

test('a listener: headers over the size bound get 431 request_headers_too_large in the gateway\'s error shape, worded as the endpoint picker\'s; 1,500 small headers arrive whole', async () => {
  let seen = 0;
  const listener = await PortListener.open(await freePort('127.0.0.1'), '127.0.0.1', (req, res) => {
    seen = req.rawHeaders.length / 2;
    res.writeHead(200, { 'content-length': '2', connection: 'close' });
    res.end('ok');
  });
  try {
    const many = Array.from({ length: 1500 }, (_, i) => `x-h${i}: v\r\n`).join('');
    const ok = await exchange(listener.port, `GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n${many}\r\n`);
    assert.match(ok, /^HTTP\/1\.1 200 /);
    assert.equal(seen, 1502, 'every header field reached the handler');

    const big = await exchange(listener.port, `GET / HTTP/1.1\r\nhost: a\r\nx-big: ${'v'.repeat(CLIENT_LIMITS.maxHeaderBytes)}\r\n\r\n`);
    assert.match(big, /^HTTP\/1\.1 431 /);
    const body = JSON.parse(big.slice(big.indexOf('\r\n\r\n') + 4)) as { error: { code: string; type: string; message: string } };
    assert.equal(body.error.code, 'request_headers_too_large');
    assert.equal(body.error.type, 'invalid_request_error');
    assert.equal(body.error.message, `the request has more bytes of header names and values (its target included) than the ${CLIENT_LIMITS.maxHeaderBytes} accepted`);

  } finally {
    listener.close();
    await listener.closed;
  }
});

/** The status and OpenAI-style error of a refusal as received, asserting it closes the connection. */
function refusal(text: string): { status: number; code: string; message: string } {
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  assert.match(head, /\r\nconnection: close\r?$/im, text.slice(0, 300));
  assert.match(head, /\r\ncontent-type: application\/json/i);
  const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: { code: string; type: string; message: string; param: unknown } };
  assert.equal(body.error.type, 'invalid_request_error');
  assert.equal(body.error.param, null);
  return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1]), code: body.error.code, message: body.error.message };
}

test('a listener: whatever Node\'s HTTP/1.1 parser refuses gets a status and the gateway\'s JSON error body, then the connection closes; a refusal never lands inside an answer already begun', async () => {
  let served = 0;
  const listener = await PortListener.open(await freePort('127.0.0.1'), '127.0.0.1', (req, res) => {
    served++;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-length': '2' });
      res.end('ok');
    });
  });
  try {
    const cases: ReadonlyArray<readonly [string, string, number, string, RegExp]> = [
      ['a folded header line (obs-fold)', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n', 400, 'malformed_request', /folded/],
      ['bare LF line ends', 'GET / HTTP/1.1\nHost: a\n\n', 400, 'malformed_request', /CRLF/],
      ['a chunk size that is not hex', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400, 'malformed_request', /chunk size/],
      ['a negative Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', 400, 'malformed_request', /Content-Length/],
      ['a 20-digit Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n', 400, 'malformed_request', /Content-Length/],
      ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'malformed_request', /Content-Length/],
      ['a control character in a header value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n', 400, 'malformed_request', /header/],
      ['a method that is not a token', 'G(T / HTTP/1.1\r\nHost: a\r\n\r\n', 400, 'malformed_request', /method/],
      ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: a\r\n\r\n', 505, 'http_version_not_supported', /HTTP\/1\.2/],
      ['HTTP/3.0', 'GET / HTTP/3.0\r\nHost: a\r\n\r\n', 505, 'http_version_not_supported', /HTTP\/3\.0/],
      ['Expect: foo', 'GET / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\n\r\n', 417, 'expectation_failed', /100-continue/],
    ];
    for (const [what, bytes, status, code, message] of cases) {
      const r = refusal(await exchange(listener.port, bytes));
      assert.deepEqual([r.status, r.code], [status, code], what);
      assert.match(r.message, message, what);
    }
    assert.equal(served, 1, 'no refused request reached the handler but the bad chunk\'s, whose head was well-formed (refused unanswered: no 200 before the 400)');

    // On a keep-alive connection: a first request served, a malformed second one refused after
    // the first answer ended, in its own answer.
    const conn = await rawConnect(listener.port);
    conn.socket.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    await conn.until((t) => t.endsWith('\r\n\r\nok'));
    conn.socket.write('GET / HTTP/1.1\nHost: a\n\n');
    const both = (await conn.closed()).text;
    assert.match(both, /^HTTP\/1\.1 200 [^]*\r\n\r\nokHTTP\/1\.1 400 /, both.slice(0, 400));
    assert.equal(refusal(both.slice(both.indexOf('okHTTP') + 2)).code, 'malformed_request');
  } finally {
    listener.close();
    await listener.closed;
  }
});

test('a listener: a parse error while an answer is being written ends the connection without a second status line inside it', async () => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const listener = await PortListener.open(await freePort('127.0.0.1'), '127.0.0.1', (req, res) => {
    req.resume();
    // The answer's head and part of its body are out; the rest waits for the malformed bytes.
    res.writeHead(200, { 'content-length': '4' });
    (res as ServerResponse).write('ab');
    void gate.then(() => res.end('cd'));
  });
  try {
    const text = await new Promise<string>((resolve) => {
      const socket = connect(listener.port, '127.0.0.1', () => socket.write('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n'));
      let got = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => {
        got += d;
        if (got.endsWith('ab')) socket.write('GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', () => setTimeout(release, 50));
      });
      socket.on('error', () => undefined);
      socket.on('close', () => resolve(got));
    });
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.equal((text.match(/HTTP\/1\.1 \d{3}/g) ?? []).length, 1, text);
  } finally {
    release();
    listener.close();
    await listener.closed;
  }
});

test('a listener over HTTP/2: headers over the size bound get the same 431 body as HTTP/1.1; far past it Node resets the stream (ENHANCE_YOUR_CALM) before any handler; the session serves on', async () => {
  const { connect: h2connect, constants } = await import('node:http2');
  let seen = 0;
  const listener = await PortListener.open(await freePort('127.0.0.1'), '127.0.0.1', (_req, res) => {
    seen++;
    res.writeHead(200, { 'content-length': '2' });
    res.end('ok');
  });
  const session = h2connect(`http://127.0.0.1:${listener.port}`);
  session.on('error', () => undefined);
  const ask = (headers: Record<string, string>): Promise<{ status: number | undefined; rst: number; body: string }> =>
    new Promise((resolve) => {
      const req = session.request({ ':path': '/', ...headers });
      let status: number | undefined;
      let body = '';
      req.setEncoding('utf8');
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (d: string) => (body += d));
      req.on('error', () => undefined);
      req.on('close', () => resolve({ status, rst: req.rstCode ?? 0, body }));
      req.end();
    });
  try {
    // Just over the bound (Node alone let 17 KiB through to the handler, and reset 18 KiB).
    for (const extra of [64, 1024, 4096]) {
      const over = await ask({ 'x-big': 'v'.repeat(CLIENT_LIMITS.maxHeaderBytes + extra) });
      assert.equal(over.status, 431, `${extra} bytes over`);
      const error = (JSON.parse(over.body) as { error: { code: string; type: string; message: string } }).error;
      assert.equal(error.code, 'request_headers_too_large');
      assert.equal(error.type, 'invalid_request_error');
      assert.match(error.message, new RegExp(`more than the ${CLIENT_LIMITS.maxHeaderBytes} accepted$`));
    }
    assert.equal(seen, 0, 'no handler ran');
    const big = await ask({ 'x-big': 'v'.repeat(CLIENT_LIMITS.maxHeaderBytes * 3) });
    assert.equal(big.status, undefined, 'far past the advertised setting: no answer, the stream is reset');
    assert.equal(big.rst, constants.NGHTTP2_ENHANCE_YOUR_CALM);
    assert.equal(seen, 0, 'no handler ran');
    const small = await ask({ 'x-small': 'v' });
    assert.equal(small.status, 200, 'the same session serves the next request');
    assert.equal(seen, 1);
  } finally {
    session.close();
    listener.close();
    await listener.closed;
  }
});
