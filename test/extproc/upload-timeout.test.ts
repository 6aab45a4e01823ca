import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FileConfigSource } from '../../src/config/file-source.js';
import { headerMap } from '../../src/extproc/headers.js';
import { corePicker } from '../../src/extproc/picker.js';
import { startExtProcServer } from '../../src/extproc/server.js';
import { Gateway, InFlight } from '../../src/gateway/index.js';
import { configDir, podYaml, poolYaml } from '../support/config.js';
import { EnvoyExtProcClient, envoyRequestHeaders } from '../support/envoy-standin.js';
import { until } from '../support/fixed-picker.js';
import { memoryLogger } from '../support/memory-source.js';

// A client that stops sending its body behind Envoy: without the upload timeouts its share of the
// body budget stays held until Envoy's message timeout (1000 s in upstream's configuration).

test('a body that stalls behind Envoy gets 408 request_body_timeout after the body idle timeout, and its body budget share and in-flight count are freed at once', async () => {
  const { logger, lines } = memoryLogger();
  const config = await configDir(poolYaml('pool', 'r1', 8000) + podYaml('a', 'r1', '127.0.0.61'));
  const gateway = await Gateway.start({ sources: [new FileConfigSource([config.dir], { watch: false })], logger, scrapeIntervalMs: 0, uploads: { timeouts: { idleMs: 300 } } });
  const inFlight = new InFlight();
  const epp = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: corePicker(gateway, { poolKey: 'default/pool', inFlight }), ready: () => true, logger });
  const envoy = new EnvoyExtProcClient({ target: `127.0.0.1:${epp.grpcPort}`, tls: false });
  try {
    const call = envoy.open();
    call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('POST', '/v1/completions', { 'content-type': 'application/json', 'content-length': '5000000', 'x-request-id': 'stalled-1' })) }, protocol_config: envoy.protocolConfig() });
    call.send({ request_body: { body: Buffer.alloc(100_000, 'x') } });
    await until(() => gateway.uploads.budget.reservedBytes === 5_000_000, 20_000, 'the declared body reserved');
    // Nothing more arrives: the idle timeout frees the reservation without waiting for Envoy.
    await until(() => gateway.uploads.budget.reservedBytes === 0 && inFlight.size === 0, 20_000, 'the stalled upload released');
    const line = lines.find((l) => l['msg'] === 'Request Handled' && l['requestId'] === 'stalled-1');
    assert.equal(line?.['status'], 408);
    assert.equal(line?.['code'], 'request_body_timeout');
    // The piece that arrives late is answered with the 408.
    call.send({ request_body: { body: Buffer.alloc(10, 'x') } });
    const answer = await call.next();
    assert.equal(answer.immediate_response?.status?.code, 408);
    assert.match(Buffer.from(answer.immediate_response?.body ?? '').toString(), /request_body_timeout/);
    call.end();
  } finally {
    envoy.close();
    await epp.close(1000);
    await gateway.close();
    await config.remove();
  }
});
