import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { request } from 'undici';
import { until } from '../support/fixed-picker.js';
import { handledLine, startSidecarEnv, type SidecarEnv } from '../support/sidecar-env.js';

// infergate pd-sidecar in front of a simulated SGLang decode server, beside a simulated SGLang
// prefill server: the pinned pair, pass-through, hostile prefill headers, a client that leaves.

const HOSTS = { prefill: '127.0.11.2', decode: '127.0.11.3', outsider: '127.0.11.4' };

describe('pd-sidecar, SGLang', { timeout: 120_000 }, () => {
  let env: SidecarEnv;
  before(async () => {
    env = await startSidecarEnv('sglang', HOSTS, { poolBodyLimitBytes: 64 * 1024, timeScale: 2 });
  });
  after(async () => {
    await env?.close();
  });

  const chat = (content: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ model: 'mymodel', max_tokens: 8, messages: [{ role: 'user', content }], ...extra });
  const post = (id: string, body: string, headers: Record<string, string | string[]> = {}): ReturnType<typeof request> =>
    request(`${env.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id, ...headers }, body });
  const prefillHeader = (): string => `${HOSTS.prefill}:${env.port}`;

  test('a pinned pair, streamed and not: both legs run (bootstrap fields name the prefill), the decode answer comes back, one Request Handled line', async () => {
    for (const stream of [false, true]) {
      const id = `pair-${stream}`;
      const before = { p: env.prefill.stats().received, d: env.decode.stats().received };
      const res = await post(id, chat(`pinned ${stream}`, { stream }), { 'x-prefiller-host-port': prefillHeader(), 'x-gateway-destination-endpoint': `${HOSTS.decode}:${env.port}` });
      const text = await res.body.text();
      assert.equal(res.statusCode, 200, text);
      assert.equal(res.headers['x-sim-pod'], 'decode-0', 'the answer is the local decode server\'s');
      if (stream) {
        assert.match(String(res.headers['content-type']), /text\/event-stream/);
        assert.match(text, /data: \[DONE\]/);
      } else assert.equal((JSON.parse(text) as { object: string }).object, 'chat.completion');
      assert.equal(env.prefill.stats().received, before.p + 1, 'the prefill leg reached the named prefill');
      assert.equal(env.decode.stats().received, before.d + 1, 'the decode leg reached the local decode server');
      await until(() => handledLine(env.lines, id) !== undefined, 20_000, 'Request Handled');
      const line = handledLine(env.lines, id) as Record<string, unknown>;
      assert.equal(line['status'], 200);
      const pd = line['pd'] as Record<string, unknown>;
      assert.equal(pd['reason'], 'pinned');
      assert.equal(pd['disaggregated'], true);
      assert.equal(pd['prefillPod'], 'prefill-0');
      assert.equal(pd['decodePod'], 'decode-0');
    }
    await until(() => env.sidecar.inFlight.size === 0, 20_000, 'sidecar idle');
  });

  test('without x-prefiller-host-port: /metrics, /v1/models and the decode server\'s own refusal pass through unchanged', async () => {
    const metrics = await request(`${env.url}/metrics`);
    const page = await metrics.body.text();
    assert.equal(metrics.statusCode, 200);
    assert.match(page, /^sglang:/m, 'the decode server\'s own metrics page (the picker scrapes the pod\'s port)');
    const models = await request(`${env.url}/v1/models`);
    assert.equal(models.statusCode, 200);
    assert.match(await models.body.text(), /mymodel/);
    // SGLang's decode server in disaggregation mode refuses a request without bootstrap fields: its answer, as it is.
    const direct = await request(`http://${HOSTS.decode}:${new URL(env.decode.url).port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chat('direct') });
    const directText = await direct.body.text();
    const through = await post('pass-1', chat('direct'));
    assert.equal(through.statusCode, direct.statusCode);
    assert.equal(await through.body.text(), directText);
    assert.equal(handledLine(env.lines, 'pass-1'), undefined, 'a pass-through is the picker\'s request; the sidecar\'s core does not account it');
  });

  test('hostile x-prefiller-host-port values: not in the pool 403, malformed 400, and nothing is dialled', async () => {
    const before = { p: env.prefill.stats().received, d: env.decode.stats().received };
    const cases: { value: string | string[]; status: number; code: string }[] = [
      { value: `${HOSTS.outsider}:${env.port}`, status: 403, code: 'prefill_not_allowed' },
      { value: `${HOSTS.decode}:${env.port}`, status: 403, code: 'prefill_not_allowed' },
      { value: `${HOSTS.prefill}:1`, status: 403, code: 'prefill_not_allowed' },
      { value: `http://${HOSTS.outsider}:${env.port}/`, status: 400, code: 'invalid_header' },
      { value: `localhost:${env.port}`, status: 400, code: 'invalid_header' },
      { value: `${HOSTS.outsider}:${env.port}, ${prefillHeader()}`, status: 400, code: 'invalid_header' },
      { value: [prefillHeader(), `${HOSTS.outsider}:${env.port}`], status: 400, code: 'invalid_header' },
      { value: `${'9'.repeat(300)}:80`, status: 400, code: 'invalid_header' },
    ];
    let i = 0;
    for (const c of cases) {
      const id = `hostile-${i++}`;
      const res = await post(id, chat('hostile'), { 'x-prefiller-host-port': c.value });
      const body = JSON.parse(await res.body.text()) as { error: { code: string; message: string } };
      assert.equal(res.statusCode, c.status, JSON.stringify(c.value));
      assert.equal(body.error.code, c.code);
      await until(() => handledLine(env.lines, id) !== undefined, 20_000, 'Request Handled');
    }
    assert.equal(env.outsiderConnections(), 0, 'no connection to an address outside the pool');
    assert.equal(env.prefill.stats().received, before.p, 'the prefill server got none of them');
    assert.equal(env.decode.stats().received, before.d, 'the decode server got none of them');
  });

  test('a body over the pool limit is 413 before anything is sent', async () => {
    const res = await post('too-big', chat('x'.repeat(100 * 1024)), { 'x-prefiller-host-port': prefillHeader() });
    const body = JSON.parse(await res.body.text()) as { error: { code: string } };
    assert.equal(res.statusCode, 413);
    assert.equal(body.error.code, 'body_too_large');
  });

  test('a client that leaves mid-body (connection closed, declared or chunked body cut short) is 499, never 400 or 500, and no leg runs', async () => {
    const whole = chat('half a story');
    const cases = {
      'gone-declared': `Content-Length: ${whole.length + 20}\r\n\r\n${whole}`,
      'gone-chunked': `Transfer-Encoding: chunked\r\n\r\n${whole.length.toString(16)}\r\n${whole}\r\n10\r\nabc`,
      'gone-half': `Content-Length: ${whole.length}\r\n\r\n${whole.slice(0, 20)}`,
    };
    const before = { p: env.prefill.stats().received, d: env.decode.stats().received };
    for (const [id, rest] of Object.entries(cases)) {
      const socket = netConnect(env.port, HOSTS.decode);
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      socket.end(`POST /v1/chat/completions HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nX-Request-Id: ${id}\r\nX-Prefiller-Host-Port: ${prefillHeader()}\r\n${rest}`);
      await until(() => handledLine(env.lines, id) !== undefined, 20_000, `Request Handled (${id})`);
      const line = handledLine(env.lines, id) as Record<string, unknown>;
      assert.equal(line['status'], 499, JSON.stringify(line));
      assert.equal(line['code'], 'client_gone', JSON.stringify(line));
      socket.destroy();
    }
    assert.deepEqual({ p: env.prefill.stats().received, d: env.decode.stats().received }, before, 'no leg ran');
    assert.deepEqual(env.lines.filter((l) => Number(l['level']) >= 50), [], 'no error-level line');
    await until(() => env.sidecar.inFlight.size === 0 && env.gateway.uploads.budget.reservedBytes === 0, 20_000, 'sidecar idle, body budget released');
  });

  test('a client that leaves mid-stream ends both legs and releases the pair', async () => {
    const ac = new AbortController();
    const res = await request(`${env.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'cancel-1', 'x-prefiller-host-port': prefillHeader() },
      body: chat('a long story', { stream: true, max_tokens: 900, ignore_eos: true }),
      signal: ac.signal,
    });
    assert.equal(res.statusCode, 200);
    const it = res.body[Symbol.asyncIterator]();
    await it.next();
    ac.abort();
    await until(() => handledLine(env.lines, 'cancel-1') !== undefined, 20_000, 'Request Handled');
    assert.equal(handledLine(env.lines, 'cancel-1')?.['status'], 499);
    await until(() => env.decode.stats().inFlight === 0 && env.prefill.stats().inFlight === 0, 20_000, 'both servers idle');
    await until(() => env.sidecar.inFlight.size === 0, 20_000, 'sidecar idle');
    const pool = env.gateway.runtime?.pools.get('default/pd');
    assert.ok(pool?.members.endpoints.every((e) => e.inFlight === 0), 'the prefill endpoint is released');
  });
});
