import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import type { ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { BIN } from '../support/cli.js';
import { configDir, gatewayYaml, podYaml, poolYaml, routeYaml } from '../support/config.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { answer, chatEvents, chatRequest, startFakeEngines, type FakeEngines } from '../support/fake-engines.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/smart.js';

interface ErrorBody {
  error: { code: string; message: string };
}

/** Accepts the request and never answers (an engine whose completions hang). */
const hang = (): void => undefined;

/** Sends the SSE headers and two events, then nothing (an engine frozen mid-stream). */
function stall(_req: unknown, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(chatEvents('m', false).slice(0, 2).join(''));
}

/** The SSE events of a response body. */
function events(text: string): string[] {
  return text.split('\n\n').filter((e) => e !== '');
}

describe('upstream timeouts by phase, and passive health', { timeout: 90_000 }, () => {
  let fakes: FakeEngines;
  let gateway: GatewayProcess;
  let base: string;
  let cfg: Awaited<ReturnType<typeof configDir>>;

  before(async () => {
    fakes = await startFakeEngines({
      '127.0.6.40': hang,
      '127.0.6.41': stall,
      '127.0.6.42': hang,
      '127.0.6.43': (_req, res, seen) => answer(res, seen),
    });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    cfg = await configDir(
      gatewayYaml(port) +
        poolYaml('hang', 'hang', fakes.port) +
        poolYaml('stall', 'stall', fakes.port) +
        poolYaml('mixed', 'mixed', fakes.port) +
        podYaml('hang-0', 'hang', '127.0.6.40') +
        podYaml('stall-0', 'stall', '127.0.6.41') +
        podYaml('hung-1', 'mixed', '127.0.6.42') +
        podYaml('good-1', 'mixed', '127.0.6.43') +
        routeYaml('hang', [{ pool: 'hang', weight: 1 }], '/v1') +
        routeYaml('stall', [{ pool: 'stall', weight: 1 }], '/v1', { name: 'x-pool', value: 'stall' }) +
        routeYaml('mixed', [{ pool: 'mixed', weight: 1 }], '/v1', { name: 'x-pool', value: 'mixed' }),
    );
    // Small timeouts, so hung servers are found in a fraction of a second; no scraping, so only
    // the requests' own outcomes (passive health) judge the endpoints.
    gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-interval', '0', '--stream-headers-timeout', '400', '--response-timeout', '800', '--stream-idle-timeout', '500']);
  });

  after(async () => {
    await gateway?.stop();
    await fakes?.close();
    await cfg?.remove();
  });

  const post = (body: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

  test('a streamed request whose headers never come: 504 naming the stream headers timeout', async () => {
    const r = await post(chatRequest(true), { 'x-request-id': 'hang-stream' });
    assert.equal(r.status, 504);
    const body = (await r.json()) as ErrorBody;
    assert.equal(body.error.code, 'upstream_timeout');
    assert.match(body.error.message, /stream headers timeout/);
    const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === 'hang-stream');
    assert.equal(line['status'], 504);
    assert.equal(line['code'], 'upstream_timeout');
    assert.match(String(line['error']), /stream headers timeout/, 'the log says which timeout fired');
  });

  test('a non-streamed request whose answer never comes: 504 naming the response timeout', async () => {
    const r = await post(chatRequest(false));
    assert.equal(r.status, 504);
    const body = (await r.json()) as ErrorBody;
    assert.equal(body.error.code, 'upstream_timeout');
    assert.match(body.error.message, /response timeout/);
  });

  test('a stream that stalls mid-way ends with an SSE error event naming the stream idle timeout, then [DONE]', async () => {
    const r = await post(chatRequest(true), { 'x-pool': 'stall', 'x-request-id': 'stall-1' });
    assert.equal(r.status, 200);
    const e = events(await r.text());
    assert.equal(e.length, 4, 'two events, the error event, [DONE]');
    assert.equal(e.at(-1), 'data: [DONE]');
    const error = JSON.parse((e.at(-2) ?? '').slice(6)) as ErrorBody;
    assert.equal(error.error.code, 'upstream_timeout');
    assert.match(error.error.message, /stream idle timeout/);
    const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === 'stall-1');
    assert.equal(line['status'], 200, 'logged with the status the client saw');
    assert.equal(line['code'], 'upstream_timeout');
    assert.match(String(line['error']), /stream idle timeout/);
  });

  test('an endpoint that keeps timing out is ejected and new requests go to the other one', async () => {
    const ejected = (): boolean => gateway.logs.some((l) => l.msg?.startsWith('endpoint ejected') === true && l['endpoint'] === 'hung-1');
    for (let i = 0; i < 60 && !ejected(); i++) {
      const r = await post(chatRequest(true), { 'x-pool': 'mixed' });
      await r.arrayBuffer();
    }
    assert.ok(ejected(), 'hung-1 was ejected after its requests timed out');
    const view = (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/debug/endpoints`)).json()) as { pools: Array<{ pool: string; endpoints: Array<{ name: string; ejectedForMs: number }> }> };
    const hung = view.pools.find((p) => p.pool === 'default/mixed')?.endpoints.find((e) => e.name === 'hung-1');
    assert.ok((hung?.ejectedForMs ?? 0) > 0, `hung-1 shows as ejected: ${JSON.stringify(hung)}`);
    for (let i = 0; i < 10; i++) {
      const r = await post(chatRequest(false), { 'x-pool': 'mixed' });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('x-fake-host'), '127.0.6.43');
      await r.arrayBuffer();
    }
  });
});

describe('a frozen engine: its silent stream ends once it is found unavailable', { timeout: 90_000 }, () => {
  const HOST = '127.0.6.50';
  let sim: ChildProcess;
  let gateway: GatewayProcess;
  let base: string;
  let cfg: Awaited<ReturnType<typeof configDir>>;

  before(async () => {
    const simPort = await freePort();
    // A real model server process (the simulator), so it can be frozen with SIGSTOP: its
    // /metrics and its streams go silent together, as a hung engine's do.
    sim = spawn(process.execPath, [BIN, 'sim', '--exit-with-parent', '--host', HOST, '--port', String(simPort), '--profile', 'llama-3.1-8b-h100'], { stdio: 'ignore' });
    await waitFor('the simulator', async () => (await fetch(`http://${HOST}:${simPort}/health`).catch(() => undefined))?.status === 200, 20_000);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    cfg = await configDir(gatewayYaml(port) + poolYaml('frozen', 'frozen', simPort) + podYaml('frozen-0', 'frozen', HOST) + routeYaml('all', [{ pool: 'frozen', weight: 1 }]));
    gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-interval', '50', '--scrape-timeout', '200', '--unavailable-idle-timeout', '500']);
  });

  after(async () => {
    sim?.kill('SIGCONT');
    sim?.kill('SIGTERM');
    await gateway?.stop();
    await cfg?.remove();
  });

  test('the stream ends with an SSE error event naming the unavailable idle timeout, not the 60 s stream idle one', async () => {
    const r = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'frozen-1' },
      body: JSON.stringify({ model: 'mymodel', prompt: 'tell me a long story', max_tokens: 5000, ignore_eos: true, stream: true }),
    });
    assert.equal(r.status, 200);
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value);
    sim.kill('SIGSTOP');
    await gateway.waitForLog((l) => l.msg?.startsWith('endpoint unhealthy') === true && l['endpoint'] === 'frozen-0', 20_000);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const e = events(text);
    assert.equal(e.at(-1), 'data: [DONE]');
    const error = JSON.parse((e.at(-2) ?? '').slice(6)) as ErrorBody;
    assert.equal(error.error.code, 'upstream_timeout');
    assert.match(error.error.message, /unavailable idle timeout/);
    const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === 'frozen-1');
    assert.equal(line['status'], 200);
    assert.equal(line['code'], 'upstream_timeout');
  });
});
