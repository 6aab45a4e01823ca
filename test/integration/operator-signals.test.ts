import assert from 'node:assert/strict';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { configDir, gatewayYaml, poolYaml, routeYaml } from '../support/config.js';
import { startGatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';

/*
 * What operators do to a running gateway out of habit (nginx's signals, moving files about) must
 * neither open a door nor take it down undrained, and readiness must say when it cannot route.
 */

/** Generous: a busy machine may take seconds to deliver a signal or settle a reload. */
const DEADLINE_MS = 30_000;

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() - start > DEADLINE_MS) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function readyz(adminPort: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

test('SIGUSR1 and SIGUSR2 are ignored (no debugger opened, still serving); SIGHUP drains and exits 0', { timeout: 90_000 }, async () => {
  const port = await freePort();
  const cfg = await configDir(gatewayYaml(port) + poolYaml('p', 'p', 8000) + routeYaml('r', [{ pool: 'p', weight: 1 }]));
  const gateway = await startGatewayProcess(['-f', cfg.dir]);
  try {
    for (const signal of ['SIGUSR1', 'SIGUSR2'] as const) {
      gateway.kill(signal);
      await until(`${signal} said ignored`, async () => (gateway.stderr().includes(`${signal} ignored`) ? true : undefined));
      assert.equal((await readyz(gateway.adminPort)).status, 200, `still ready after ${signal}`);
      const models = await fetch(`http://127.0.0.1:${port}/v1/models`);
      assert.equal(models.status, 200, `still serving after ${signal}`);
    }
    assert.doesNotMatch(gateway.stderr(), /Debugger listening/);
    gateway.kill('SIGHUP');
    assert.equal(await gateway.exited, 0, 'drained and exited as on SIGTERM');
    assert.ok(gateway.logs.some((l) => l.msg === 'shutting down' && l['signal'] === 'SIGHUP'), 'the drain names the signal');
  } finally {
    await gateway.stop();
    await cfg.remove();
  }
});

test('a configuration left with no Gateway listener is not ready; putting it back is', { timeout: 90_000 }, async () => {
  const port = await freePort();
  const cfg = await configDir(gatewayYaml(port) + poolYaml('p', 'p', 8000) + routeYaml('r', [{ pool: 'p', weight: 1 }]));
  const gateway = await startGatewayProcess(['-f', cfg.dir]);
  const away = join(cfg.dir, '..', `moved-${port}.yaml`);
  try {
    assert.equal((await readyz(gateway.adminPort)).status, 200);
    // The only file moved out of the watched folder: once the removal settles, nothing listens.
    await rename(cfg.file, away);
    const notReady = await until('readiness fails', async () => {
      const r = await readyz(gateway.adminPort);
      return r.status === 503 ? r : undefined;
    });
    assert.match(String(notReady.body['reason']), /no listener/);
    await rename(away, cfg.file);
    await until('ready again', async () => ((await readyz(gateway.adminPort)).status === 200 ? true : undefined));
  } finally {
    await gateway.stop();
    await rename(away, cfg.file).catch(() => undefined);
    await cfg.remove();
  }
});
