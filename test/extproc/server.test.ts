import assert from 'node:assert/strict';
import { test } from 'node:test';
import { credentials, makeGenericClientConstructor, status, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { headerMap } from '../../src/extproc/headers.js';
import { HEALTH_SERVICES } from '../../src/extproc/health.js';
import { EXT_PROC_SERVICE } from '../../src/extproc/proto.js';
import { startExtProcServer } from '../../src/extproc/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { EnvoyExtProcClient, envoyRequestHeaders } from '../support/envoy-standin.js';
import { fixedPicker, until } from '../support/fixed-picker.js';

type HealthClient = Client & {
  Check(req: { service: string }, cb: (err: ServiceError | null, res?: { status: string }) => void): void;
  Watch(req: { service: string }): ClientReadableStream<{ status: string }>;
};
const HealthClientCtor = makeGenericClientConstructor(healthService, 'Health') as unknown as new (target: string, creds: ReturnType<typeof credentials.createInsecure>) => HealthClient;

function check(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve) => client.Check({ service }, (err, res) => resolve(err === null ? String(res?.status) : `error ${err.code}`)));
}

test('gRPC health: liveness always, readiness and the ext_proc service follow ready() (Check and Watch), on the health port and on the TLS gRPC port', async () => {
  let ready = false;
  const { factory } = fixedPicker({ endpoint: '10.0.0.1:8000' });
  const server = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: {}, processor: factory, ready: () => ready, logger: createLogger('silent') });
  const plain = new HealthClientCtor(`127.0.0.1:${server.healthPort}`, credentials.createInsecure());
  const tls = new HealthClientCtor(`127.0.0.1:${server.grpcPort}`, credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined }));
  try {
    assert.equal(server.tls, true);
    assert.equal(server.selfSigned, true);
    assert.equal(await check(plain, ''), 'SERVING');
    assert.equal(await check(plain, HEALTH_SERVICES.liveness), 'SERVING');
    assert.equal(await check(plain, HEALTH_SERVICES.readiness), 'NOT_SERVING');
    assert.equal(await check(tls, EXT_PROC_SERVICE), 'NOT_SERVING');
    assert.equal(await check(plain, 'no-such-service'), `error ${status.NOT_FOUND}`);

    const seen: string[] = [];
    const watch = plain.Watch({ service: HEALTH_SERVICES.readiness });
    watch.on('data', (r: { status: string }) => seen.push(r.status));
    watch.on('error', () => undefined);
    await until(() => seen.length >= 1, 20_000, 'the first Watch answer');
    ready = true;
    await until(() => seen.at(-1) === 'SERVING', 20_000, 'Watch to say SERVING');
    assert.equal(await check(tls, EXT_PROC_SERVICE), 'SERVING');
    watch.cancel();
  } finally {
    plain.close();
    tls.close();
    await server.close(1000);
  }
});

test('close() drains: readiness goes NOT_SERVING, an open stream may finish, then the server stops', async () => {
  const picker = fixedPicker({ endpoint: '10.0.0.1:8000' });
  const server = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: picker.factory, ready: () => true, logger: createLogger('silent') });
  const envoy = new EnvoyExtProcClient({ target: `127.0.0.1:${server.grpcPort}`, tls: false });
  const health = new HealthClientCtor(`127.0.0.1:${server.healthPort}`, credentials.createInsecure());
  try {
    assert.equal(server.tls, false);
    const call = envoy.open();
    call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('POST', '/v1/completions', {})) }, protocol_config: envoy.protocolConfig() });
    await until(() => picker.log.requests.length === 1, 20_000, 'the request headers');
    let closed = false;
    const closing = server.close(60_000).then(() => (closed = true));
    assert.equal(await check(health, HEALTH_SERVICES.readiness), 'NOT_SERVING');
    assert.equal(closed, false, 'close waits for the open stream');
    call.send({ request_body: { body: Buffer.from('{}'), end_of_stream: true } });
    assert.equal((await call.next()).response, 'request_headers');
    assert.equal((await call.next()).request_body?.response?.body_mutation?.streamed_response?.end_of_stream, true);
    call.send({ response_headers: { headers: headerMap({ ':status': '200' }), end_of_stream: true } });
    assert.equal((await call.next()).response, 'response_headers');
    call.end();
    assert.equal((await call.status).code, status.OK);
    await closing;
    assert.equal(picker.log.completed, 1);
    assert.equal(picker.log.cancelled, 0);
  } finally {
    envoy.close();
    health.close();
    await server.close(1000);
  }
});

test('past the drain deadline an open stream is cut and its processor hears cancelled()', async () => {
  const picker = fixedPicker({ endpoint: '10.0.0.1:8000' });
  const server = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: picker.factory, ready: () => true, logger: createLogger('silent') });
  const envoy = new EnvoyExtProcClient({ target: `127.0.0.1:${server.grpcPort}`, tls: false });
  try {
    const call = envoy.open();
    call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('POST', '/v1/completions', {})) }, protocol_config: envoy.protocolConfig() });
    await until(() => picker.log.requests.length === 1, 20_000, 'the request headers');
    await server.close(200);
    assert.equal(picker.log.cancelled, 1);
    assert.notEqual((await call.status).code, status.OK);
  } finally {
    envoy.close();
  }
});

test('a port in use is a bind error, not a crash', async () => {
  const { factory } = fixedPicker({ endpoint: '10.0.0.1:8000' });
  const first = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: factory, ready: () => true, logger: createLogger('silent') });
  try {
    await assert.rejects(startExtProcServer({ address: '127.0.0.1', grpcPort: first.grpcPort, healthPort: 0, tls: false, processor: factory, ready: () => true, logger: createLogger('silent') }));
  } finally {
    await first.close(1000);
  }
});

test('--cert-path: the certificate in DIR/tls.crt and DIR/tls.key is served; a missing one is a read error', async () => {
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { generate } = await import('selfsigned');
  const dir = await mkdtemp(join(tmpdir(), 'epp-cert-'));
  const picker = fixedPicker({ endpoint: '10.0.0.1:8000' });
  try {
    const pems = await generate([{ name: 'commonName', value: 'epp.test' }], { keyType: 'ec', algorithm: 'sha256' });
    await writeFile(join(dir, 'tls.crt'), pems.cert);
    await writeFile(join(dir, 'tls.key'), pems.private);
    const server = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: { certPath: dir }, processor: picker.factory, ready: () => true, logger: createLogger('silent') });
    const envoy = new EnvoyExtProcClient({ target: `127.0.0.1:${server.grpcPort}` });
    try {
      assert.equal(server.tls, true);
      assert.equal(server.selfSigned, false);
      const call = envoy.open();
      call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('GET', '/v1/models', {})), end_of_stream: true }, protocol_config: envoy.protocolConfig() });
      assert.equal((await call.next()).response, 'request_headers');
      call.end();
    } finally {
      envoy.close();
      await server.close(1000);
    }
    await assert.rejects(startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: { certPath: join(dir, 'missing') }, processor: picker.factory, ready: () => true, logger: createLogger('silent') }), /ENOENT/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
