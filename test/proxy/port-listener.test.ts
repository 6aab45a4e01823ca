import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { CLIENT_LIMITS, PortListener } from '../../src/proxy/port-listener.js';
import { freePort } from '../support/ports.js';

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

    // Other parse failures keep Node's answers.
    assert.match(await exchange(listener.port, 'GET / HTTP/1.1\r\nbad header line\r\n\r\n'), /^HTTP\/1\.1 400 /);
  } finally {
    listener.close();
    await listener.closed;
  }
});
