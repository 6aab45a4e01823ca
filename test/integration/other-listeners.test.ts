import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Gateway } from '../../src/gateway/index.js';
import { startAdminServer, type AdminServer } from '../../src/observability/admin-server.js';
import { startEnvoyStandin, type EnvoyStandin } from '../../src/extproc/envoy-standin.js';
import { startSidecar, type RunningSidecar } from '../../src/sidecar/server.js';
import { startSimServer, type RunningSimServer } from '../../src/sim/index.js';
import { memoryLogger, MemorySource } from '../support/memory-source.js';
import { rawConnect } from '../support/raw-http.js';

// Every HTTP listener that is not the proxy (the admin and metrics port of `serve` and `epp`, the
// PD sidecar, the simulator, the Envoy stand-in) answers odd request lines with an HTTP status:
// never a connection closed without a byte, never a crash. Before, CONNECT got 0 bytes on each of
// them (Node hands CONNECT to the server's 'connect' event and, with no listener, destroys the
// socket). The proxy's own listeners answer them through the core (test/integration/blame.test.ts).

/** Sends `head` on a fresh connection; what came back before the listener closed it (or 5 s). */
async function exchange(port: number, head: string): Promise<string> {
  const conn = await rawConnect(port);
  conn.socket.write(head);
  const timer = setTimeout(() => conn.socket.destroy(), 5_000);
  const { text } = await conn.closed();
  clearTimeout(timer);
  return text;
}

const PROBES: ReadonlyArray<{ name: string; head: string; status: RegExp; json?: boolean }> = [
  { name: 'CONNECT', head: 'CONNECT other.example:443 HTTP/1.1\r\nHost: other.example:443\r\n\r\n', status: /^HTTP\/1\.1 405 /, json: true },
  { name: 'CONNECT with tunnel bytes after the head', head: 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\nSSH-2.0-x\r\n', status: /^HTTP\/1\.1 405 / },
  { name: 'TRACE', head: 'TRACE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', status: /^HTTP\/1\.1 4\d\d / },
  { name: 'OPTIONS *', head: 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', status: /^HTTP\/1\.1 [24]\d\d / },
  { name: 'an absolute-form target', head: 'GET http://other.example/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', status: /^HTTP\/1\.1 \d{3} / },
  { name: 'an unknown method', head: 'FROB / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', status: /^HTTP\/1\.1 4\d\d / },
  { name: 'a 20 KiB method token', head: `${'M'.repeat(20 * 1024)} / HTTP/1.1\r\nHost: x\r\n\r\n`, status: /^HTTP\/1\.1 4\d\d / },
];

describe('listeners other than the proxy answer odd request lines', { timeout: 60_000 }, () => {
  let admin: AdminServer;
  let sim: RunningSimServer;
  let gateway: Gateway;
  let sidecar: RunningSidecar;
  let standin: EnvoyStandin;
  const ports: Record<string, () => number> = {
    'admin port (serve, epp)': () => admin.port,
    simulator: () => sim.port,
    'PD sidecar': () => sidecar.port,
    'Envoy stand-in': () => standin.port,
  };

  before(async () => {
    admin = await startAdminServer('127.0.0.1', 0, { live: () => true, ready: () => ({ ready: true }) });
    sim = await startSimServer({ host: '127.0.0.1', port: 0, name: 'sim-odd', profile: 'tiny', timeScale: 20 });
    gateway = await Gateway.start({ sources: [new MemorySource('')], logger: memoryLogger().logger, scrapeIntervalMs: 0 });
    sidecar = await startSidecar({ gateway, poolKey: 'default/none', decodeUrl: new URL(`http://127.0.0.1:${sim.port}`), address: '127.0.0.1', port: 0, logger: memoryLogger().logger });
    // Its ext_proc target is never reached by these probes.
    standin = await startEnvoyStandin({ target: '127.0.0.1:1', tls: false });
  });

  after(async () => {
    await standin?.close();
    await sidecar?.close(0);
    await gateway?.close();
    await sim?.close();
    await admin?.close();
  });

  for (const [listener, port] of Object.entries(ports)) {
    test(`${listener}: CONNECT, TRACE, OPTIONS *, absolute-form, unknown and huge methods each get an HTTP answer`, async () => {
      for (const probe of PROBES) {
        const text = await exchange(port(), probe.head);
        // The stand-in hands every request but CONNECT to its ext_proc server, absent here: it
        // fails closed (500) as Envoy does; only an HTTP answer is asked of it.
        const status = listener === 'Envoy stand-in' && probe.json !== true ? /^HTTP\/1\.1 \d{3} / : probe.status;
        assert.match(text, status, `${listener}, ${probe.name}: ${JSON.stringify(text.slice(0, 200))}`);
        if (probe.json === true) {
          assert.match(text, /\r\nallow: [A-Z, ]+\r\n/i, `${listener}, ${probe.name}: Allow`);
          const body = text.slice(text.indexOf('\r\n\r\n') + 4);
          assert.doesNotThrow(() => JSON.parse(body), `${listener}, ${probe.name}: a JSON body (${body.slice(0, 100)})`);
        }
      }
      // The listener still serves.
      assert.match(await exchange(port(), 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 \d{3} /);
    });
  }
});
