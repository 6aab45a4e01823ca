import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { credentials, makeGenericClientConstructor, type Client, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { request } from 'undici';
import { BIN } from '../support/cli.js';
import { configDir, gatewayYaml, modelYaml, podYaml, poolYaml, routeYaml } from '../support/config.js';
import { headerMap } from '../../src/extproc/headers.js';
import { bodyMessages, EnvoyExtProcClient, envoyRequestHeaders, startEnvoyStandin, type EnvoyStandin } from '../support/envoy-standin.js';
import { startFleet } from '../support/fleet.js';
import { startGatewayProcess, watchLogs, type LogWatch } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';

// `infergate epp` as a user runs it: a process with -f files, TLS by default (self-signed) or
// --insecure, gRPC readiness, the standalone --endpoint-selector mode, its `Request Handled` lines
// on stdout (seed 002 greps them from the picker's logs) with the proxy's fields, and SIGTERM drains.

const HOSTS = ['127.0.0.12', '127.0.0.13'];

let fleet: Awaited<ReturnType<typeof startFleet>>;
let config: Awaited<ReturnType<typeof configDir>>;
let listener: number;

before(async () => {
  fleet = await startFleet(HOSTS.map((host, i) => ({ host, name: `sim-${i}` })));
  listener = await freePort();
  config = await configDir(
    gatewayYaml(listener) + routeYaml('r', [{ pool: 'pool', weight: 1 }]) + poolYaml('pool', 'r1', fleet.port) + HOSTS.map((h, i) => podYaml(`sim-${i}`, 'r1', h)).join('') + modelYaml('m', 'food-review', 'pool', [{ name: 'mymodel', weight: 1 }]),
  );
});

after(async () => {
  await fleet.close();
  await config.remove();
});

type HealthClient = Client & { Check(req: { service: string }, cb: (err: ServiceError | null, res?: { status: string }) => void): void };
const HealthClientCtor = makeGenericClientConstructor(healthService, 'Health') as unknown as new (target: string, creds: ReturnType<typeof credentials.createInsecure>) => HealthClient;

interface Epp extends LogWatch {
  readonly child: ChildProcess;
  readonly grpcPort: number;
  readonly tls: boolean;
  readonly selfSigned: boolean;
  /** gRPC health status of `service` on the health port: SERVING, NOT_SERVING, or `error <code>`. */
  health(service: string): Promise<string>;
  close(): Promise<void>;
}

async function startEpp(args: string[]): Promise<Epp> {
  const child = spawn(process.execPath, [BIN, 'epp', '--exit-with-parent', '-f', config.dir, '--address', '127.0.0.1', '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const watch = watchLogs(child);
  const started = await Promise.race([watch.waitForLog((l) => l.msg === 'endpoint picker started', 60_000), watch.exited.then((code) => Promise.reject(new Error(`epp exited ${code}: ${watch.stderr()}`)))]);
  const health = new HealthClientCtor(`127.0.0.1:${Number(started['healthPort'])}`, credentials.createInsecure());
  return {
    ...watch,
    child,
    grpcPort: Number(started['grpcPort']),
    tls: started['tls'] === true,
    selfSigned: started['selfSigned'] === true,
    health: (service) => new Promise((resolve) => health.Check({ service }, (err, res) => resolve(err === null ? String(res?.status) : `error ${err.code}`))),
    async close() {
      health.close();
      if (child.exitCode === null) child.kill('SIGKILL');
      await watch.exited;
    },
  };
}

async function untilServing(epp: Epp): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await epp.health('readiness')) !== 'SERVING') {
    if (Date.now() > deadline) throw new Error(`readiness never SERVING: ${epp.stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const chat = (id: number): string => JSON.stringify({ model: 'food-review', messages: [{ role: 'user', content: `hello ${id}` }], max_tokens: 3 });

async function post(base: string, body: string, requestId: string): Promise<number> {
  const res = await request(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': requestId }, body });
  await res.body.text();
  return res.statusCode;
}

test('TLS by default (self-signed): ready once the pool is loaded; one Request Handled line per request on stdout, with the proxy\'s fields', { timeout: 180_000 }, async () => {
  const epp = await startEpp(['--pool-name', 'pool']);
  let envoy: EnvoyStandin | undefined;
  const proxy = await startGatewayProcess(['-f', config.dir]);
  try {
    assert.equal(epp.tls, true);
    assert.equal(epp.selfSigned, true);
    assert.equal(await epp.health('liveness'), 'SERVING');
    await untilServing(epp);
    envoy = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, tls: true });
    const ids = Array.from({ length: 5 }, (_, i) => `epp-line-${i}`);
    for (const [i, id] of ids.entries()) assert.equal(await post(envoy.url, chat(i), id), 200);
    assert.equal(await post(`http://127.0.0.1:${listener}`, chat(9), 'proxy-line'), 200);
    const proxyLine = await proxy.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === 'proxy-line');
    for (const id of ids) await epp.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
    for (const id of ids) {
      const mine = epp.logs.filter((l) => l.msg === 'Request Handled' && l['requestId'] === id);
      assert.equal(mine.length, 1, `one line for ${id}`);
      const line = mine[0]!;
      // Every field the proxy's line has, but its listener port (Envoy owns the listener in front of the picker).
      const missing = Object.keys(proxyLine).filter((k) => !(k in line) && k !== 'port');
      assert.deepEqual(missing, [], `fields of the proxy's line missing: ${JSON.stringify(line)} vs ${JSON.stringify(proxyLine)}`);
      assert.equal(line['status'], 200);
      assert.match(String(line['address']), new RegExp(`^(${HOSTS.join('|').replace(/\./g, '\\.')}):${fleet.port}$`));
      assert.equal(line['model'], 'food-review');
    }
  } finally {
    await envoy?.close();
    await proxy.stop();
    await epp.close();
  }
});

test('--insecure with --endpoint-selector (standalone mode, no InferencePool) routes end to end over plaintext', { timeout: 180_000 }, async () => {
  const epp = await startEpp(['--insecure', '--endpoint-selector', 'app=sim,release=r1', '--endpoint-target-ports', String(fleet.port)]);
  let envoy: EnvoyStandin | undefined;
  try {
    assert.equal(epp.tls, false);
    await untilServing(epp);
    envoy = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, tls: false });
    const body = JSON.stringify({ model: 'mymodel', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    const res = await request(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(res.statusCode, 200, await res.body.text());
    assert.ok(HOSTS.some((h) => envoy!.exchanges.at(-1)?.destination === `${h}:${fleet.port}`));
  } finally {
    await envoy?.close();
    await epp.close();
  }
});

test('readiness is NOT_SERVING while the pool is not in the configuration', { timeout: 120_000 }, async () => {
  const epp = await startEpp(['--insecure', '--pool-name', 'not-there']);
  try {
    // Give it every chance to load: the files are read before the picker says it started.
    assert.equal(await epp.health('liveness'), 'SERVING');
    assert.equal(await epp.health('readiness'), 'NOT_SERVING');
    assert.equal(await epp.health('envoy.service.ext_proc.v3.ExternalProcessor'), 'NOT_SERVING');
  } finally {
    await epp.close();
  }
});

test('SIGTERM drains: readiness goes NOT_SERVING, the request Envoy holds completes, then the process exits 0', { timeout: 180_000 }, async () => {
  const epp = await startEpp(['--insecure', '--pool-name', 'pool', '--shutdown-grace', '60s']);
  const client = new EnvoyExtProcClient({ target: `127.0.0.1:${epp.grpcPort}`, tls: false });
  try {
    await untilServing(epp);
    // Envoy holds a stream: routed, the upstream's answer not yet through.
    const call = client.open();
    const body = Buffer.from(chat(1));
    call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': String(body.length), 'x-request-id': 'held-over-sigterm' })) }, protocol_config: client.protocolConfig() });
    for (const m of bodyMessages('request_body', body, 16 * 1024)) call.send(m);
    assert.ok((await call.next()).request_headers !== undefined, 'routed');
    while ((await call.next()).request_body?.response?.body_mutation?.streamed_response?.end_of_stream !== true);

    epp.child.kill('SIGTERM');
    await epp.waitForLog((l) => l.msg === 'shutting down', 30_000);
    const deadline = Date.now() + 30_000;
    while ((await epp.health('readiness')) !== 'NOT_SERVING' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await epp.health('readiness'), 'NOT_SERVING');
    assert.equal(epp.child.exitCode, null, 'still draining');

    call.send({ response_headers: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) } });
    assert.ok((await call.next()).response_headers !== undefined);
    call.send({ response_body: { body: Buffer.from('{"choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'), end_of_stream: true } });
    assert.ok((await call.next()).response_body !== undefined);
    call.end();
    assert.equal((await call.status).code, 0);
    assert.equal(await epp.exited, 0);
    assert.ok(epp.logs.some((l) => l.msg === 'Request Handled' && l['requestId'] === 'held-over-sigterm' && l['status'] === 200), 'the held request was handled, not cut');
  } finally {
    client.close();
    await epp.close();
  }
});
