import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { describe, test } from 'node:test';
import { cli } from '../support/cli.js';
import { configDir, gatewayYaml, poolYaml, routeYaml } from '../support/config.js';
import { startGatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';
import { rawConnect } from '../support/raw-http.js';

/** Holds `port` on 127.0.0.1 until closed, as another program would. */
async function occupy(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return server;
}

/** A Gateway with a listener per port (and a route on the first to a pool with no pods). */
function listenersYaml(ports: readonly number[]): string {
  return gatewayYaml(ports) + poolYaml('pool', 'none', 8000) + routeYaml('all', [{ pool: 'pool', weight: 1 }]);
}

/** True when the gateway answers HTTP on `port` (any answer: 503 no pod, or 404 no route). */
async function serves(port: number): Promise<boolean> {
  const r = await fetch(`http://127.0.0.1:${port}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"m","prompt":"x"}' }).catch(() => undefined);
  await r?.arrayBuffer();
  return r !== undefined;
}

describe('start-up and reloads bind every port or refuse', { timeout: 90_000 }, () => {
  for (const what of ['admin port', 'Gateway listener'] as const) {
    test(`${what === 'admin port' ? 'an' : 'a'} ${what} in use is fatal: one clear line, non-zero exit`, async () => {
      const [busy, other] = [await freePort(), await freePort()];
      const blocker = await occupy(busy);
      const listener = what === 'admin port' ? other : busy;
      const admin = what === 'admin port' ? busy : other;
      const cfg = await configDir(gatewayYaml(listener));
      try {
        const r = await cli(['serve', '-f', cfg.dir, '--address', '127.0.0.1', '--admin-port', String(admin)], 30_000);
        assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
        const lines = r.stderr.split('\n').filter((l) => l !== '');
        assert.equal(lines.length, 1, r.stderr);
        assert.equal(lines[0], `infergate serve: cannot listen on 127.0.0.1:${busy} (${what}): the address is already in use (EADDRINUSE)`);
      } finally {
        blocker.close();
        await cfg.remove();
      }
    });
  }

  test('a reload that adds a port which cannot bind is rejected: the ports opened for it close, the last good config serves', async () => {
    const [kept, busy, fresh] = [await freePort(), await freePort(), await freePort()];
    const cfg = await configDir(listenersYaml([kept]));
    const gateway = await startGatewayProcess(['-f', cfg.dir]);
    const blocker = await occupy(busy);
    try {
      assert.ok(await serves(kept));
      await cfg.write(listenersYaml([kept, busy, fresh]));
      const error = await gateway.waitForLog((l) => l.msg === 'config error');
      assert.match(String(error['problem']), new RegExp(`cannot listen on 127\\.0\\.0\\.1:${busy} \\(Gateway listener\\): .*EADDRINUSE`));
      await gateway.waitForLog((l) => l.msg === 'config change rejected; the last good configuration keeps serving');
      assert.ok(await serves(kept), 'the kept port serves');
      await assert.rejects(rawConnect(fresh), (err: NodeJS.ErrnoException) => err.code === 'ECONNREFUSED', 'the port opened for the rejected change was closed');
      const ready = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/readyz`)).json()) as { status: string; version: number };
      assert.deepEqual(ready, { status: 'ready', ready: true, version: 1 });

      // Once the port is free, the same change applies.
      blocker.close();
      await cfg.write(listenersYaml([kept, busy, fresh]));
      await gateway.waitForLog((l) => l.msg === 'config reloaded');
      assert.ok(await serves(busy));
      assert.ok(await serves(fresh));
    } finally {
      blocker.close();
      await gateway.stop();
      await cfg.remove();
    }
  });
});
