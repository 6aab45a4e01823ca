import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { answer, readAll, startFakeEngines, type FakeEngines } from '../support/fake-engines.js';
import { configDir, gatewayYaml, podYaml, poolYaml, routeYaml } from '../support/config.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';
import { rawConnect } from '../support/raw-http.js';
import { chatBody, debugPools, gatewayForPools, poolYaml as simPoolYaml, post, startSmartEnv, waitFor, type SmartEnv } from '../support/smart.js';

/** A gateway over one pool `fake` of `pods` (name → host), its route a catch-all `/` (every target reaches it). */
async function catchAll(fakes: FakeEngines, pods: Readonly<Record<string, string>>, args: readonly string[] = []): Promise<{ gateway: GatewayProcess; port: number; remove: () => Promise<void> }> {
  const port = await freePort();
  const cfg = await configDir(gatewayYaml(port) + poolYaml('fake', 'fake', fakes.port) + Object.entries(pods).map(([n, ip]) => podYaml(n, 'fake', ip)).join('') + routeYaml('all', [{ pool: 'fake', weight: 1 }], '/'));
  const gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-interval', '0', ...args]);
  return { gateway, port, remove: cfg.remove };
}

/** Sends raw HTTP/1.1 bytes and returns the status line's code and the body. */
async function raw(port: number, request: string): Promise<{ status: number; head: string; body: string }> {
  const c = await rawConnect(port);
  c.socket.write(request);
  const text = await c.until((t) => {
    const end = t.indexOf('\r\n\r\n');
    const length = /content-length: (\d+)/i.exec(t)?.[1];
    return end !== -1 && length !== undefined && t.length >= end + 4 + Number(length);
  });
  c.socket.destroy();
  const end = text.indexOf('\r\n\r\n');
  return { status: Number(text.slice(9, 12)), head: text.slice(0, end), body: text.slice(end + 4) };
}

const A = '127.0.6.70';
const B = '127.0.6.71';

describe('requests no model server serves are answered at the gateway, and blame no one', { timeout: 90_000 }, () => {
  let fakes: FakeEngines;
  let env: Awaited<ReturnType<typeof catchAll>>;

  before(async () => {
    const ok = (_req: unknown, res: ServerResponse, seen: Parameters<typeof answer>[1]): void => {
      if (seen.body.length === 0) {
        res.writeHead(200, { 'content-length': '2', 'x-fake-host': seen.host });
        res.end('{}');
      } else answer(res, seen);
    };
    fakes = await startFakeEngines({ [A]: ok, [B]: ok });
    env = await catchAll(fakes, { a: A, b: B });
  });

  after(async () => {
    await env?.gateway.stop();
    await env?.remove();
    await fakes?.close();
  });

  const MEMBERS: ReadonlyArray<{ name: string; request: string; status: number; code?: string; allow?: boolean }> = [
    { name: 'OPTIONS *', request: 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n', status: 200, allow: true },
    { name: 'GET * (asterisk-form on another method)', request: 'GET * HTTP/1.1\r\nHost: x\r\n\r\n', status: 400, code: 'invalid_request_target' },
    { name: 'TRACE', request: 'TRACE /v1/models HTTP/1.1\r\nHost: x\r\n\r\n', status: 405, code: 'method_not_allowed', allow: true },
    { name: 'CONNECT', request: 'CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n', status: 405, code: 'method_not_allowed', allow: true },
    { name: 'an ftp: absolute-form target', request: 'GET ftp://x/v1/models HTTP/1.1\r\nHost: x\r\n\r\n', status: 400, code: 'invalid_request_target' },
    { name: 'a file: absolute-form target with a body', request: 'POST file:///v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}', status: 400, code: 'invalid_request_target' },
  ];

  for (const m of MEMBERS) {
    test(`${m.name}: ${m.status}${m.code === undefined ? '' : ` ${m.code}`}, never forwarded`, async () => {
      const before = fakes.seen.length;
      // Twelve of each: more than enough to eject both pods on a gateway that blamed them.
      for (let i = 0; i < 12; i++) {
        const r = await raw(env.port, m.request);
        assert.equal(r.status, m.status, r.head);
        if (m.allow === true) assert.match(r.head, /\r\nallow: [^\r]*POST/i);
        if (m.code !== undefined) assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, m.code);
      }
      assert.equal(fakes.seen.length, before, 'no model server saw it');
    });
  }

  test('after all of them, no endpoint was ejected and both still serve', async () => {
    assert.ok(!env.gateway.logs.some((l) => l.msg?.startsWith('endpoint ejected') === true), 'no ejection');
    const view = await debugPools(env.gateway);
    assert.ok(view.every((p) => p.endpoints.every((e) => (e as unknown as { available: boolean }).available)));
    const hosts = new Set<string | null>();
    for (let i = 0; i < 40 && hosts.size < 2; i++) {
      const r = await fetch(`http://127.0.0.1:${env.port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) });
      assert.equal(r.status, 200);
      hosts.add(r.headers.get('x-fake-host'));
      await r.arrayBuffer();
    }
    assert.equal(hosts.size, 2, 'both pods take requests');
  });

  test('clients that leave mid-request blame no one', async () => {
    for (let i = 0; i < 12; i++) {
      const ac = new AbortController();
      const r = fetch(`http://127.0.0.1:${env.port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }), signal: ac.signal });
      ac.abort();
      await r.catch(() => undefined);
    }
    assert.ok(!env.gateway.logs.some((l) => l.msg?.startsWith('endpoint ejected') === true));
  });
});

describe('a long non-streamed answer on an endpoint ejected meanwhile completes (the unavailable idle timeout is no answer timeout)', { timeout: 90_000 }, () => {
  let fakes: FakeEngines;
  let env: Awaited<ReturnType<typeof catchAll>>;
  const held: Array<() => void> = [];

  before(async () => {
    // `x-fail` requests fail at once with 500 (evidence, to eject a pod); others are held until released.
    const handler = (req: { headers: Record<string, string | string[] | undefined> }, res: ServerResponse, seen: Parameters<typeof answer>[1]): void => {
      if (req.headers['x-fail'] !== undefined) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end('{"error":"broken"}');
      } else held.push(() => answer(res, seen));
    };
    fakes = await startFakeEngines({ [A]: handler, [B]: handler });
    env = await catchAll(fakes, { a: A, b: B }, ['--unavailable-idle-timeout', '200']);
  });

  after(async () => {
    for (const release of held.splice(0)) release();
    await env?.gateway.stop();
    await env?.remove();
    await fakes?.close();
  });

  test('both held requests answer 200 after one of their pods was ejected', async () => {
    const url = `http://127.0.0.1:${env.port}/v1/chat/completions`;
    const send = (headers: Record<string, string> = {}): Promise<Response> => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ model: 'm', stream: false, messages: [{ role: 'user', content: 'a long story' }] }) });
    // One long request on each pod (the in-flight count spreads them).
    const long = [send(), send()];
    await waitFor('both long requests reached a pod', () => held.length === 2);
    const ejected = (): boolean => env.gateway.logs.some((l) => l.msg?.startsWith('endpoint ejected') === true);
    for (let i = 0; i < 40 && !ejected(); i++) await (await send({ 'x-fail': '1' })).arrayBuffer();
    assert.ok(ejected(), 'a pod was ejected');
    // Far longer than the unavailable idle timeout (200 ms) and a few watchdog sweeps: no timing is asserted.
    await new Promise((r) => setTimeout(r, 2_000));
    for (const release of held.splice(0)) release();
    const answers = await Promise.all(long);
    assert.deepEqual(answers.map((r) => r.status), [200, 200]);
    assert.ok(!env.gateway.logs.some((l) => l.msg === 'Request Handled' && l['code'] === 'upstream_timeout'), 'no request timed out');
  });
});

/** vLLM metrics of an idle engine: what a fast-failing server looks like to the scraper. */
const IDLE_METRICS = ['vllm:num_requests_running{model_name="mymodel"} 0', 'vllm:num_requests_waiting{model_name="mymodel"} 0', 'vllm:kv_cache_usage_perc{model_name="mymodel"} 0', ''].join('\n');

for (const failing of [
  { status: 429, body: '{"error":{"message":"Too many requests","type":"rate_limit_error","code":429}}' },
  { status: 404, body: '{"error":{"message":"The model `mymodel` does not exist.","type":"NotFoundError","code":404}}' },
]) {
  describe(`a server answering every request ${failing.status} at once beside two healthy ones is no traffic magnet`, { timeout: 120_000 }, () => {
    const FAKE = '127.0.6.75';
    let env: SmartEnv;
    let fake: Server;

    before(async () => {
      env = await startSmartEnv(
        [
          { name: 'sim-0', host: '127.0.6.73', labels: { pool: 'p' } },
          { name: 'sim-1', host: '127.0.6.74', labels: { pool: 'p' } },
        ],
        (port, pods) => {
          fake = createServer((req, res) => {
            void readAll(req).then(() => {
              if (req.url === '/metrics') return res.end(IDLE_METRICS);
              if (req.url === '/v1/models') return res.end(JSON.stringify({ object: 'list', data: [{ id: 'mymodel', object: 'model' }] }));
              res.writeHead(failing.status, { 'content-type': 'application/json' });
              res.end(failing.body);
            });
          }).listen(pods.port, FAKE);
          return gatewayForPools(port, ['p']) + simPoolYaml('p', pods.port) + pods.podsYaml() + `---\napiVersion: v1\nkind: Pod\nmetadata: {name: fast-fail, labels: {app: sim, pool: p}}\nstatus: {phase: Running, podIP: ${FAKE}}\n`;
        },
      );
    });

    after(async () => {
      await env?.close();
      await new Promise((r) => fake?.close(r));
    });

    test('it gets a small share of the requests, and every other request succeeds', async () => {
      const N = 200;
      const pods: Array<string | null> = [];
      let next = 0;
      // Four clients at once, as a pool under some load.
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (next < N) {
            next++;
            const r = await post(env.base, chatBody('mymodel', `question ${next}`, { max_tokens: 8 }));
            const line = r.status === 200 ? r.pod : 'fast-fail';
            if (r.status !== 200) assert.equal(r.status, failing.status, r.text);
            pods.push(line);
          }
        }),
      );
      const share = pods.filter((p) => p === 'fast-fail').length / pods.length;
      // About eight requests (its error share is judged after eight outcomes), then one per 10 s back-off.
      assert.ok(share < 0.1, `the fast-failing pod got ${(share * 100).toFixed(0)} % of ${pods.length} requests`);
      assert.ok(!env.gateway.logs.some((l) => l.msg?.startsWith('endpoint ejected') === true && l['endpoint'] !== 'fast-fail'), 'no healthy pod was ejected');
    });
  });
}

describe('a client sending only bad requests (400 from every server) ejects and backs off nobody', { timeout: 90_000 }, () => {
  const C = '127.0.6.72';
  let fakes: FakeEngines;
  let env: Awaited<ReturnType<typeof catchAll>>;

  before(async () => {
    const bad = (_req: unknown, res: ServerResponse): void => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"bad request","type":"BadRequestError","code":400}}');
    };
    fakes = await startFakeEngines({ [A]: bad, [B]: bad, [C]: bad });
    env = await catchAll(fakes, { a: A, b: B, c: C });
  });

  after(async () => {
    await env?.gateway.stop();
    await env?.remove();
    await fakes?.close();
  });

  test('60 bad requests: every answer is the servers\' 400, and every pod stays a candidate', async () => {
    for (let i = 0; i < 60; i++) {
      const r = await fetch(`http://127.0.0.1:${env.port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'm', messages: 'not a list' }) });
      assert.equal(r.status, 400);
      await r.arrayBuffer();
    }
    assert.ok(!env.gateway.logs.some((l) => l.msg?.startsWith('endpoint ejected') === true || l.msg?.startsWith('endpoint backed off') === true));
    const view = (await (await fetch(`http://127.0.0.1:${env.gateway.adminPort}/debug/endpoints`)).json()) as { pools: Array<{ endpoints: Array<{ available: boolean; backoffForMs: number }> }> };
    assert.ok(view.pools.every((p) => p.endpoints.every((e) => e.available && e.backoffForMs === 0)));
  });
});
