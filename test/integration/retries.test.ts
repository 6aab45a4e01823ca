import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { answer, chatRequest, fakePoolConfig, startFakeEngines, type FakeEngines } from '../support/fake-engines.js';

// Two pods behind one pool: `crash` reads each request whole, then drops the connection without
// answering (a model server that took the request, worked on it and died); `good` answers. With
// health checking off both stay candidates, so each request goes to either first.
describe('retries repeat only what never reached a model server', { timeout: 60_000 }, () => {
  let fakes: FakeEngines;
  let gateway: GatewayProcess;
  let base: string;
  let remove: () => Promise<void>;

  before(async () => {
    fakes = await startFakeEngines({
      '127.0.6.20': (req) => req.socket.destroy(),
      '127.0.6.21': (_req, res, seen) => answer(res, seen),
    });
    const cfg = await fakePoolConfig(fakes.port, { crash: '127.0.6.20', good: '127.0.6.21' });
    remove = cfg.remove;
    base = `http://127.0.0.1:${cfg.port}`;
    gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-interval', '0']);
  });

  after(async () => {
    await gateway?.stop();
    await fakes?.close();
    await remove?.();
  });

  test('a request the server read before dropping the connection is not sent again: 502, and the other pod never sees it', async () => {
    let crashed = 0;
    for (let i = 0; i < 30 && crashed < 5; i++) {
      const id = `once-${i}`;
      const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id }, body: chatRequest(false) });
      const text = await r.text();
      const hosts = fakes.seen.filter((s) => s.requestId === id).map((s) => s.host);
      if (!hosts.includes('127.0.6.20')) {
        assert.equal(r.status, 200, text);
        continue;
      }
      crashed++;
      assert.deepEqual(hosts, ['127.0.6.20'], `${id} reached only the pod that dropped it`);
      assert.equal(r.status, 502, text);
      assert.equal((JSON.parse(text) as { error: { code: string } }).error.code, 'upstream_reset');
      const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
      assert.equal(line['attempts'], 1);
      assert.equal(line['pod'], 'crash');
    }
    assert.ok(crashed > 0, 'some requests were drawn to the pod that drops them');
  });
});

describe('a refused connection is retried on the fallback', { timeout: 60_000 }, () => {
  let fakes: FakeEngines;
  let gateway: GatewayProcess;
  let base: string;
  let remove: () => Promise<void>;

  before(async () => {
    fakes = await startFakeEngines({ '127.0.6.23': (_req, res, seen) => answer(res, seen) });
    // 127.0.6.22 has no server: connecting there is refused.
    const cfg = await fakePoolConfig(fakes.port, { refused: '127.0.6.22', good: '127.0.6.23' });
    remove = cfg.remove;
    base = `http://127.0.0.1:${cfg.port}`;
    gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-interval', '0']);
  });

  after(async () => {
    await gateway?.stop();
    await fakes?.close();
    await remove?.();
  });

  test('requests drawn to the refusing pod are served by the other one', async () => {
    let retried = 0;
    for (let i = 0; i < 30 && retried < 3; i++) {
      const id = `refused-${i}`;
      const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id }, body: chatRequest(true) });
      assert.equal(r.status, 200);
      assert.match(await r.text(), /data: \[DONE\]/);
      const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
      assert.equal(line['pod'], 'good');
      if (line['attempts'] === 2) retried++;
    }
    assert.ok(retried > 0, 'some requests were first drawn to the refusing pod and retried');
  });
});
