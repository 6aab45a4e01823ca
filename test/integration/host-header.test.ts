import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { answer, chatRequest, startFakeEnv, type FakeEnv } from '../support/fake-engines.js';
import { finalStatus, rawConnect } from '../support/raw-http.js';

const BODY = chatRequest(false);

/** A request written by hand: `lines` are the request line and header lines as sent. */
function raw(lines: readonly string[], body = BODY): string {
  return `${lines.join('\r\n')}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

describe('a request with more than one authority is refused with 400 invalid_host (RFC 9112 §3.2)', { timeout: 120_000 }, () => {
  let env: FakeEnv;
  let port: number;

  before(async () => {
    env = await startFakeEnv({ '127.0.16.4': (_req, res, seen) => answer(res, seen) }, { 'fake-0': '127.0.16.4' });
    port = env.port;
  });

  after(async () => {
    await env?.close();
  });

  const cases: ReadonlyArray<readonly [string, readonly string[]]> = [
    ['two different Host headers', ['POST /v1/chat/completions HTTP/1.1', 'Host: gateway', 'X-Request-Id: two-hosts', 'Host: other.example']],
    ['the same Host twice', ['POST /v1/chat/completions HTTP/1.1', 'Host: gateway', 'host: gateway', 'X-Request-Id: same-host-twice']],
    ['an absolute-form target naming another authority', ['POST http://other.example/v1/chat/completions HTTP/1.1', 'Host: gateway', 'X-Request-Id: absolute-other']],
    ['a space in Host', ['POST /v1/chat/completions HTTP/1.1', 'Host: gate way', 'X-Request-Id: host-space']],
    ['userinfo in Host', ['POST /v1/chat/completions HTTP/1.1', 'Host: user@gateway', 'X-Request-Id: host-userinfo']],
    ['a path in Host', ['POST /v1/chat/completions HTTP/1.1', 'Host: gateway/v1', 'X-Request-Id: host-path']],
    ['no Host on HTTP/1.1', ['POST /v1/chat/completions HTTP/1.1', 'X-Request-Id: no-host']],
  ];

  for (const [what, lines] of cases) {
    test(`${what}: 400 invalid_host, not forwarded, and the connection closes`, async () => {
      const id = /X-Request-Id: (\S+)/.exec(lines.join('\n'))?.[1] ?? '';
      const conn = await rawConnect(port);
      // A second request behind it on the same connection must not be read as a new one.
      conn.socket.write(raw(lines) + raw(['POST /v1/chat/completions HTTP/1.1', 'Host: gateway', `X-Request-Id: ${id}-next`]));
      const { text } = await conn.closed();
      assert.equal(finalStatus(text), 400, text.slice(0, 300));
      assert.match(text, /"code":"invalid_host"/);
      assert.equal((text.match(/HTTP\/1\.1 \d{3}/g) ?? []).length, 1, 'one answer, then the connection closed');
      const line = await env.gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
      assert.equal(line['code'], 'invalid_host');
      assert.equal(env.fakes.seen.find((s) => s.requestId?.startsWith(id) === true), undefined);
    });
  }

  for (const version of ['2.0', '0.9', '3.1']) {
    test(`a request line of HTTP/${version} on an HTTP/1 connection: 505 http_version_not_supported, not forwarded`, async () => {
      const id = `version-${version}`;
      const conn = await rawConnect(port);
      conn.socket.write(raw([`POST /v1/chat/completions HTTP/${version}`, 'Host: gateway', `X-Request-Id: ${id}`]));
      const { text } = await conn.closed();
      assert.equal(finalStatus(text), 505, text.slice(0, 300));
      assert.match(text, /"code":"http_version_not_supported"/);
      assert.equal(env.fakes.seen.find((s) => s.requestId === id), undefined);
    });
  }

  test('HTTP/1.0 without Host, and a Host with a port or an IPv6 literal, are served', async () => {
    for (const [id, lines] of [
      ['http10-no-host', ['POST /v1/chat/completions HTTP/1.0']],
      ['host-port', ['POST /v1/chat/completions HTTP/1.1', 'Host: gateway:8080', 'Connection: close']],
      ['host-ipv6', ['POST /v1/chat/completions HTTP/1.1', 'Host: [::1]:8080', 'Connection: close']],
    ] as const) {
      const conn = await rawConnect(port);
      conn.socket.write(raw([...lines, `X-Request-Id: ${id}`]));
      const { text } = await conn.closed();
      assert.equal(finalStatus(text), 200, `${id}: ${text.slice(0, 300)}`);
    }
  });

  test('one Host is served as before', async () => {
    const conn = await rawConnect(port);
    conn.socket.write(raw(['POST /v1/chat/completions HTTP/1.1', 'Host: gateway', 'X-Request-Id: one-host', 'Connection: close']));
    const { text } = await conn.closed();
    assert.equal(finalStatus(text), 200, text.slice(0, 300));
  });
});

describe('a transfer coding other than chunked is refused with 501 (RFC 9112 §6.1)', { timeout: 120_000 }, () => {
  let env: FakeEnv;

  before(async () => {
    env = await startFakeEnv({ '127.0.16.5': (_req, res, seen) => answer(res, seen) }, { 'fake-0': '127.0.16.5' });
  });

  after(async () => {
    await env?.close();
  });

  for (const coding of ['gzip, chunked', 'deflate,chunked', 'x-custom , chunked']) {
    test(`Transfer-Encoding: ${coding}: 501, not forwarded`, async () => {
      const id = `te-${coding.replace(/\W+/g, '-')}`;
      const conn = await rawConnect(env.port);
      const chunk = Buffer.byteLength(BODY).toString(16);
      conn.socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nX-Request-Id: ${id}\r\nContent-Type: application/json\r\nTransfer-Encoding: ${coding}\r\n\r\n${chunk}\r\n${BODY}\r\n0\r\n\r\n`);
      const { text } = await conn.closed();
      assert.equal(finalStatus(text), 501, text.slice(0, 300));
      assert.match(text, /"code":"unsupported_transfer_encoding"/);
      assert.equal(env.fakes.seen.find((s) => s.requestId === id), undefined);
    });
  }

  test('Transfer-Encoding: chunked alone is served', async () => {
    const conn = await rawConnect(env.port);
    const chunk = Buffer.byteLength(BODY).toString(16);
    conn.socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}\r\n${BODY}\r\n0\r\n\r\n`);
    const { text } = await conn.closed();
    assert.equal(finalStatus(text), 200, text.slice(0, 300));
  });
});
