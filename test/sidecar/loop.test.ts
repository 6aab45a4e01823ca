import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import { FileConfigSource } from '../../src/config/file-source.js';
import { Gateway } from '../../src/gateway/index.js';
import { startSidecar } from '../../src/sidecar/server.js';
import { configDir, poolYaml } from '../support/config.js';
import { memoryLogger } from '../support/memory-source.js';
import { freePort } from '../support/ports.js';
import { rawConnect } from '../support/raw-http.js';

// Two sidecars whose decode URLs name each other (a misconfiguration): a request would go round
// forever, a socket per turn. The sidecar's Via entry ends it at the second visit with a 508.

test('a request that comes back to a sidecar (decode URLs pointing at sidecars) ends with 508 forwarding_loop, not an endless relay', async () => {
  const { logger } = memoryLogger();
  const config = await configDir(poolYaml('pd', 'r1', 8000));
  const gateway = await Gateway.start({ sources: [new FileConfigSource([config.dir], { watch: false })], logger, scrapeIntervalMs: 0 });
  const [portA, portB] = [await freePort(), await freePort()];
  const a = await startSidecar({ gateway, poolKey: 'default/pd', decodeUrl: new URL(`http://127.0.0.51:${portB}`), decodeName: 'a', address: '127.0.0.50', port: portA, logger });
  const b = await startSidecar({ gateway, poolKey: 'default/pd', decodeUrl: new URL(`http://127.0.0.50:${portA}`), decodeName: 'b', address: '127.0.0.51', port: portB, logger });
  try {
    for (const [path, init] of [
      ['/health', { method: 'GET' }],
      ['/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) }],
    ] as const) {
      const res = await request(`http://127.0.0.50:${portA}${path}`, { ...init, headersTimeout: 30_000, bodyTimeout: 30_000 });
      const body = (await res.body.json()) as { error: { code: string } };
      assert.equal(res.statusCode, 508, path);
      assert.equal(body.error.code, 'forwarding_loop', path);
    }
    assert.equal(a.inFlight.size + b.inFlight.size, 0);
  } finally {
    await a.close(1000);
    await b.close(1000);
    await gateway.close();
    await config.remove();
  }
});

test('the sidecar answers malformed HTTP/1.1, a Host that is no host, a missing Host and a non-1.x version in its error body, before anything reaches the decode server', async () => {
  const { logger } = memoryLogger();
  const config = await configDir(poolYaml('pd', 'r1', 8000));
  const gateway = await Gateway.start({ sources: [new FileConfigSource([config.dir], { watch: false })], logger, scrapeIntervalMs: 0 });
  // The decode URL leads nowhere: anything forwarded would be a 502, not the refusals below.
  const sidecar = await startSidecar({ gateway, poolKey: 'default/pd', decodeUrl: new URL(`http://127.0.0.53:${await freePort('127.0.0.53')}`), address: '127.0.0.52', port: await freePort('127.0.0.52'), logger });
  try {
    for (const [bytes, status, code] of [
      ['GET /health HTTP/1.1\nHost: a\n\n', 400, 'malformed_request'],
      ['POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', 400, 'malformed_request'],
      ['GET /health HTTP/1.1\r\nHost: a b\r\n\r\n', 400, 'invalid_host'],
      ['GET /health HTTP/1.1\r\n\r\n', 400, 'invalid_host'],
      ['GET /health HTTP/2.0\r\nHost: a\r\n\r\n', 505, 'http_version_not_supported'],
      ['GET /health HTTP/1.1\r\nHost: a\r\nExpect: foo\r\n\r\n', 417, 'expectation_failed'],
    ] as const) {
      const conn = await rawConnect(sidecar.port, { host: '127.0.0.52' });
      conn.socket.write(bytes);
      const { text } = await conn.closed();
      assert.equal(Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1]), status, text.slice(0, 300));
      assert.equal((JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: { code: string } }).error.code, code, bytes);
    }
  } finally {
    await sidecar.close(1000);
    await gateway.close();
    await config.remove();
  }
});
