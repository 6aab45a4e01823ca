import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { configDir, gatewayYaml, podYaml, poolYaml, routeYaml } from '../support/config.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';

/**
 * A model server whose answer is not valid HTTP gets 502 `upstream_invalid_response` "not valid
 * HTTP", never `upstream_unavailable` "unreachable": it was reached, and answered garbage. undici's
 * parser errors often carry no code, so each member here is real bytes from a raw TCP server.
 */

const HOST = '127.0.6.104';
/** What the raw server answers, by the request's `x-case` header. */
const ANSWERS: Readonly<Record<string, string>> = {
  'a control byte in a header value': 'HTTP/1.1 200 OK\r\nx-a: a\x01b\r\ncontent-length: 2\r\n\r\n{}',
  'a garbage status line': 'GARBAGE\r\n\r\n',
  'a status code that is not a number': 'HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n',
  'a header line without a colon': 'HTTP/1.1 200 OK\r\nNoColonHere\r\ncontent-length: 0\r\n\r\n',
  'an HTTP/0.9-style bare body': 'hello there',
  'a duplicate Content-Length': 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}',
};

describe('a model server answering invalid HTTP: 502 upstream_invalid_response, not "unreachable"', { timeout: 60_000 }, () => {
  let server: Server;
  let gateway: GatewayProcess;
  let port: number;
  let remove: () => Promise<void>;

  before(async () => {
    const podPort = await freePort();
    server = createServer((socket) => {
      let seen = '';
      socket.on('error', () => undefined);
      socket.on('data', (d) => {
        seen += d.toString('latin1');
        const end = seen.indexOf('\r\n\r\n');
        if (end === -1) return;
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(seen.slice(0, end))?.[1] ?? 0);
        if (seen.length < end + 4 + length) return;
        const which = /\r\nx-case: *([^\r]*)/i.exec(seen.slice(0, end))?.[1] ?? '';
        seen = '';
        const chunked = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n';
        socket.end(which === 'bad chunk' ? chunked : ANSWERS[which] ?? 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}');
      });
    });
    await new Promise<void>((r) => server.listen(podPort, HOST, r));
    port = await freePort();
    const cfg = await configDir(gatewayYaml(port) + poolYaml('raw', 'raw', podPort) + podYaml('raw-0', 'raw', HOST) + routeYaml('all', [{ pool: 'raw', weight: 1 }], '/'));
    remove = cfg.remove;
    gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-interval', '0']);
  });

  after(async () => {
    await gateway?.stop();
    await remove?.();
    await new Promise((r) => server?.close(r));
  });

  test('a chunk size that is not hex, before any byte of the answer reached the client: a 502 in the error body, not an empty reply', async () => {
    const before = gateway.logs.length;
    const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-case': 'bad chunk' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) });
    const body = (await r.json()) as { error: { code: string; message: string } };
    assert.equal(r.status, 502);
    assert.equal(body.error.code, 'upstream_invalid_response', body.error.message);
    const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && gateway.logs.indexOf(l) >= before);
    assert.equal(line['status'], 502, JSON.stringify(line));
    assert.equal(line['code'] ?? line['interrupted'], 'upstream_invalid_response', JSON.stringify(line));
  });

  for (const name of Object.keys(ANSWERS)) {
    test(name, async () => {
      const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-case': name }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) });
      const body = (await r.json()) as { error: { code: string; message: string } };
      assert.equal(r.status, 502);
      assert.equal(body.error.code, 'upstream_invalid_response', body.error.message);
      assert.match(body.error.message, /not valid HTTP/);
      assert.doesNotMatch(body.error.message, /unreachable/);
    });
  }
});
