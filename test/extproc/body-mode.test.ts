import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { FileConfigSource } from '../../src/config/file-source.js';
import { headerMap } from '../../src/extproc/headers.js';
import { corePicker } from '../../src/extproc/picker.js';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { Gateway, InFlight } from '../../src/gateway/index.js';
import { configDir, modelYaml, podYaml, poolYaml } from '../support/config.js';
import { EnvoyExtProcClient, envoyRequestHeaders, startEnvoyStandin } from '../support/envoy-standin.js';
import { until } from '../support/fixed-picker.js';
import { startFleet } from '../support/fleet.js';
import { memoryLogger } from '../support/memory-source.js';

// Envoy older than 1.32 sends no protocol_config: the picker falls back to --body-mode. A BUFFERED
// filter then works with --body-mode BUFFERED; a mismatch either way is recognised from what
// arrives (or does not), said once in the log with the flag that fixes it, and releases the request.

let fleet: Awaited<ReturnType<typeof startFleet>>;
let config: Awaited<ReturnType<typeof configDir>>;
let gateway: Gateway;
let duplexEpp: ExtProcServer;
let bufferedEpp: ExtProcServer;
const inFlight = new InFlight();
const { logger, lines } = memoryLogger();

before(async () => {
  fleet = await startFleet([{ host: '127.0.0.14', name: 'sim-0' }]);
  config = await configDir(poolYaml('pool', 'r1', fleet.port) + podYaml('sim-0', 'r1', '127.0.0.14') + modelYaml('m', 'food-review', 'pool', [{ name: 'mymodel', weight: 1 }]));
  gateway = await Gateway.start({ sources: [new FileConfigSource([config.dir], { watch: false })], logger });
  const processor = corePicker(gateway, { poolKey: 'default/pool', inFlight });
  duplexEpp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor, ready: () => true, logger });
  bufferedEpp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor, ready: () => true, logger, stream: { defaultBodyMode: 'BUFFERED' } });
  await until(() => JSON.stringify(gateway.debugEndpoints()).includes('"available":true'), 30_000, 'endpoint scraped');
});

after(async () => {
  await duplexEpp.close(1000);
  await bufferedEpp.close(1000);
  await gateway.close();
  await fleet.close();
  await config.remove();
});

const body = (pad = 0): string => JSON.stringify({ model: 'food-review', messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, ...(pad > 0 ? { pad: 'x'.repeat(pad) } : {}) });
const mismatchLogged = (): boolean => lines.some((l) => l['msg'] === 'ext_proc body mode mismatch');

test('a BUFFERED filter without protocol_config is served by a picker started with --body-mode BUFFERED', async () => {
  const envoy = await startEnvoyStandin({ target: `127.0.0.1:${bufferedEpp.grpcPort}`, tls: false, bodyMode: 'BUFFERED', protocolConfig: false });
  try {
    const res = await request(`${envoy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(40_000) });
    assert.equal(res.statusCode, 200, await res.body.text());
    assert.equal((JSON.parse(envoy.exchanges.at(-1)!.upstreamBody.toString()) as { model: string }).model, 'mymodel', 'decided on the whole body');
    await until(() => inFlight.size === 0, 20_000, 'released');
  } finally {
    await envoy.close();
  }
});

test('a BUFFERED filter without protocol_config against the default (FULL_DUPLEX_STREAMED): no answer, Envoy\'s message timeout ends the stream, the request is released and the log says to use --body-mode BUFFERED', async () => {
  const client = new EnvoyExtProcClient({ target: `127.0.0.1:${duplexEpp.grpcPort}`, tls: false, bodyMode: 'BUFFERED', protocolConfig: false });
  try {
    const call = client.open();
    const bytes = Buffer.from(body());
    call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': String(bytes.length) })) } });
    // BUFFERED Envoy now waits for the headers answer; the picker waits for the body.
    await until(() => inFlight.size === 1, 20_000, 'the request reached the picker');
    assert.equal(call.pending(), 0);
    assert.equal(mismatchLogged(), false);
    call.cancel(); // Envoy's message_timeout
    await until(() => inFlight.size === 0, 20_000, 'released');
    await until(mismatchLogged, 20_000, 'the mismatch is logged');
    const line = lines.find((l) => l['msg'] === 'ext_proc body mode mismatch')!;
    assert.match(String(line['hint']), /--body-mode BUFFERED/);
  } finally {
    client.close();
  }
});

test('a streaming filter without protocol_config against --body-mode BUFFERED: the first piece of a longer body ends the stream (never decided on a piece), the request is released', async () => {
  const client = new EnvoyExtProcClient({ target: `127.0.0.1:${bufferedEpp.grpcPort}`, tls: false, protocolConfig: false });
  try {
    const call = client.open();
    const bytes = Buffer.from(body(40_000));
    call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': String(bytes.length) })) } });
    call.send({ request_body: { body: bytes.subarray(0, 16 * 1024) } });
    call.send({ request_body: { body: bytes.subarray(16 * 1024) } });
    const first = await call.next();
    assert.ok(first.request_headers !== undefined, 'the headers answer of the BUFFERED guess');
    const status = await call.status;
    assert.equal(status.code, 9, `FAILED_PRECONDITION: ${status.details}`);
    assert.match(status.details, /--body-mode/);
    assert.equal(call.pending(), 0, 'no routing answer for a piece of the body');
    await until(() => inFlight.size === 0, 20_000, 'released');
  } finally {
    client.close();
  }
});
