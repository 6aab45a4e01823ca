import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { FileConfigSource } from '../../src/config/file-source.js';
import { corePicker } from '../../src/extproc/picker.js';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { Gateway, InFlight } from '../../src/gateway/index.js';
import { configDir, podYaml, poolYaml } from '../support/config.js';
import { startEnvoyStandin, type EnvoyStandin } from '../support/envoy-standin.js';
import { startFakeEngines, type FakeEngines } from '../support/fake-engines.js';
import { until } from '../support/fixed-picker.js';
import { memoryLogger } from '../support/memory-source.js';

// An answer that breaks after it started, behind Envoy: the model server ends its SSE stream in
// the middle of an event. The client gets the complete events, one error event and [DONE] (as
// from the standalone proxy), and the request is logged as failed, not as a clean 200.

const event = (text: string): string => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'mymodel', choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })}\n\n`;

let fakes: FakeEngines;
let gateway: Gateway;
let epp: ExtProcServer;
let envoy: EnvoyStandin;
let config: Awaited<ReturnType<typeof configDir>>;
const inFlight = new InFlight();
const { logger, lines } = memoryLogger();

before(async () => {
  fakes = await startFakeEngines({
    '127.0.0.41': (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // Two whole events, then half of a third, and a clean end of the body.
      res.end(event('Hel') + event('lo') + 'data: {"id":"c","unfinished');
    },
  });
  config = await configDir(poolYaml('pool', 'r1', fakes.port) + podYaml('a', 'r1', '127.0.0.41'));
  gateway = await Gateway.start({ sources: [new FileConfigSource([config.dir], { watch: false })], logger, scrapeIntervalMs: 0 });
  epp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: corePicker(gateway, { poolKey: 'default/pool', inFlight }), ready: () => true, logger });
  envoy = await startEnvoyStandin({ target: `127.0.0.1:${epp.grpcPort}`, tls: false });
});

after(async () => {
  await envoy.close();
  await epp.close(1000);
  await gateway.close();
  await fakes.close();
  await config.remove();
});

test('a stream the server ends mid-event: complete events, one error event and [DONE] reach the client; the request is logged as failed', async () => {
  const res = await request(`${envoy.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'cut-1' },
    body: JSON.stringify({ model: 'mymodel', messages: [{ role: 'user', content: 'hi' }], stream: true }),
  });
  const text = await res.body.text();
  assert.equal(res.statusCode, 200);
  const events = text.split('\n\n').filter((e) => e !== '');
  assert.equal(events.length, 4, text);
  assert.ok(events[0]?.includes('Hel') && events[1]?.includes('lo'), 'the complete events, as sent');
  assert.match(events[2] ?? '', /^data: \{"error":\{/, 'one error event');
  assert.equal(events[3], 'data: [DONE]');
  assert.ok(!text.includes('unfinished'), `never half an event: ${JSON.stringify(text)}`);
  await until(() => lines.some((l) => l['msg'] === 'Request Handled' && l['requestId'] === 'cut-1'), 20_000, 'Request Handled');
  const line = lines.find((l) => l['msg'] === 'Request Handled' && l['requestId'] === 'cut-1')!;
  assert.equal(line['code'], 'upstream_reset', JSON.stringify(line));
  await until(() => inFlight.size === 0, 20_000, 'in-flight back to zero');
});
