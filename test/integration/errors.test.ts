import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { configDir, gatewayYaml, podYaml, poolYaml, routeYaml } from '../support/config.js';
import { startFleet } from '../support/fleet.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';
import { runConcurrently } from '../support/stats.js';

const POLICIES = `---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: small-bodies}
spec:
  connection: {bufferLimit: 1Ki}
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: short-timeout}
spec:
  timeout: {http: {requestTimeout: 800ms}}
  targetRef: {group: gateway.networking.k8s.io, kind: Gateway, name: gw}
`;

interface ErrorBody {
  error: { message: string; type: string; code: string; param: null };
}

describe('data-plane failures map to the documented statuses', { timeout: 60_000 }, () => {
  let fleet: Awaited<ReturnType<typeof startFleet>>;
  let gateway: GatewayProcess;
  let cfg: Awaited<ReturnType<typeof configDir>>;
  let base: string;

  before(async () => {
    fleet = await startFleet([
      { host: '127.0.0.21', name: 'live-0' },
      { host: '127.0.0.22', name: 'live-1' },
    ]);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // Header x-pool picks the pool: none → two live pods; dead → a pod whose address has no
    // server; half → one dead pod and one live one.
    cfg = await configDir(
      gatewayYaml(port) +
        POLICIES +
        poolYaml('live', 'live', fleet.port) +
        poolYaml('dead', 'dead', fleet.port) +
        poolYaml('half', 'half', fleet.port) +
        podYaml('live-0', 'live', '127.0.0.21') +
        podYaml('live-1', 'live', '127.0.0.22') +
        podYaml('dead-0', 'dead', '127.0.0.23') +
        podYaml('half-dead', 'half', '127.0.0.24') +
        podYaml('half-live', 'half', '127.0.0.21') +
        routeYaml('live', [{ pool: 'live', weight: 1 }], '/v1') +
        routeYaml('dead', [{ pool: 'dead', weight: 1 }], '/v1', { name: 'x-pool', value: 'dead' }) +
        routeYaml('half', [{ pool: 'half', weight: 1 }], '/v1', { name: 'x-pool', value: 'half' }),
    );
    // Health checking off: the dead endpoints stay candidates, so the retry path is what is tested.
    gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-interval', '0']);
  });

  after(async () => {
    await gateway?.stop();
    await fleet?.close();
    await cfg?.remove();
  });

  const post = (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  test('413 when the body is over the ClientTrafficPolicy limit (Content-Length and chunked)', async () => {
    const big = { model: 'mymodel', prompt: 'x'.repeat(2048) };
    const r = await post('/v1/completions', big);
    assert.equal(r.status, 413);
    assert.equal(((await r.json()) as ErrorBody).error.code, 'body_too_large');

    // Chunked: no Content-Length, so the limit is enforced while reading.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(JSON.stringify(big).slice(0, 900));
      req.end(JSON.stringify(big).slice(900));
    });
    assert.equal(status, 413);

    // Just under the limit is served.
    const ok = await post('/v1/completions', { model: 'mymodel', prompt: 'x'.repeat(900) });
    assert.equal(ok.status, 200);
  });

  test('504 when the upstream outlives the BackendTrafficPolicy request timeout', async () => {
    const r = await post('/v1/completions', { model: 'mymodel', prompt: 'slow' }, { 'x-sim-first-token-delay-ms': '5000' });
    assert.equal(r.status, 504);
    const body = (await r.json()) as ErrorBody;
    assert.equal(body.error.code, 'upstream_timeout');
    assert.equal(body.error.type, 'timeout_error');
    assert.match(body.error.message, /BackendTrafficPolicy default\/short-timeout timeout\.http\.requestTimeout/, 'the message names the setting that fired');
  });

  test('502 when every endpoint refuses the connection', async () => {
    const r = await post('/v1/completions', { model: 'mymodel', prompt: 'hi' }, { 'x-pool': 'dead' });
    assert.equal(r.status, 502);
    assert.equal(((await r.json()) as ErrorBody).error.code, 'upstream_unavailable');
  });

  test('a refused connection is retried once on another endpoint: no request is lost', async () => {
    const statuses = await runConcurrently(40, 4, async () => {
      const r = await post('/v1/completions', { model: 'mymodel', prompt: 'hi', max_tokens: 2 }, { 'x-pool': 'half' });
      await r.arrayBuffer();
      return r.status;
    });
    assert.deepEqual([...new Set(statuses)], [200]);
    const retried = gateway.logs.filter((l) => l.msg === 'Request Handled' && l['rule'] === 'default/half#0' && l['attempts'] === 2);
    assert.ok(retried.length > 0, 'some requests were first drawn to the dead endpoint and retried');
  });

  test('502 when the upstream resets before answering (not retried: the server had read the request)', async () => {
    const r = await post('/v1/completions', { model: 'mymodel', prompt: 'hi' }, { 'x-sim-reset': 'before-headers' });
    assert.equal(r.status, 502);
    assert.equal(((await r.json()) as ErrorBody).error.code, 'upstream_reset');
  });

  test('a reset mid-stream ends the SSE stream with an error event and [DONE]', async () => {
    const r = await post('/v1/completions', { model: 'mymodel', prompt: 'a b c d e f', stream: true }, { 'x-sim-reset': 'mid-stream' });
    assert.equal(r.status, 200);
    const text = await r.text();
    const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
    assert.equal(events.at(-1), 'data: [DONE]');
    const error = JSON.parse((events.at(-2) ?? '').slice(6)) as ErrorBody;
    assert.equal(error.error.code, 'upstream_reset');
    assert.ok(events.length >= 4, 'the events sent before the reset reached the client');
  });
});
