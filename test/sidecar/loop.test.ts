import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request } from 'undici';
import { FileConfigSource } from '../../src/config/file-source.js';
import { Gateway } from '../../src/gateway/index.js';
import { startSidecar } from '../../src/sidecar/server.js';
import { configDir, poolYaml } from '../support/config.js';
import { memoryLogger } from '../support/memory-source.js';
import { freePort } from '../support/ports.js';

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
