import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { LogLine } from '../support/gateway-process.js';
import { answer, chatRequest, startFakeEnv, type FakeEnv } from '../support/fake-engines.js';

const CRASH = '127.0.6.20';
const GOOD = '127.0.6.21';
/** No server listens here: connecting is refused. */
const REFUSED = '127.0.6.22';

/** One request with its id; its status, body, the hosts that saw it, and its log line. */
async function send(env: FakeEnv, id: string, stream: boolean): Promise<{ status: number; text: string; hosts: string[]; line: LogLine }> {
  const r = await fetch(`${env.base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id }, body: chatRequest(stream) });
  const text = await r.text();
  const line = await env.gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === id);
  return { status: r.status, text, hosts: env.fakes.seen.filter((s) => s.requestId === id).map((s) => s.host), line };
}

// Pods behind one pool, health checking off so every pod stays a candidate: each request goes
// to either first. `crash` reads each request whole, then drops the connection without answering
// (a model server that took the request, worked on it and died); `good` answers; `refused` has
// no server. Passive health ejects a pod after 5 failures in a row, so each case has its own
// pool and stops before its failing pod reaches 5.
describe('retries: a request a model server read is never sent again', { timeout: 60_000 }, () => {
  let env: FakeEnv;

  before(async () => {
    env = await startFakeEnv({ [CRASH]: (req) => req.socket.destroy(), [GOOD]: (_req, res, seen) => answer(res, seen) }, { crash: CRASH, good: GOOD });
  });

  after(async () => {
    await env?.close();
  });

  test('a request the server read before dropping the connection is not sent again: 502, and no other pod sees it', async () => {
    let crashed = 0;
    for (let i = 0; i < 60 && crashed < 4; i++) {
      const r = await send(env, `once-${i}`, false);
      if (!r.hosts.includes(CRASH)) continue;
      crashed++;
      assert.deepEqual(r.hosts, [CRASH], `once-${i} reached only the pod that dropped it`);
      assert.equal(r.status, 502, r.text);
      assert.equal((JSON.parse(r.text) as { error: { code: string } }).error.code, 'upstream_reset');
      assert.equal(r.line['pod'], 'crash');
    }
    assert.ok(crashed > 0, 'some requests were drawn to the pod that drops them');
  });
});

describe('retries: a request that never reached a model server goes to the fallback', { timeout: 60_000 }, () => {
  let env: FakeEnv;

  before(async () => {
    env = await startFakeEnv({ [GOOD]: (_req, res, seen) => answer(res, seen) }, { good: GOOD, refused: REFUSED });
  });

  after(async () => {
    await env?.close();
  });

  test('a request whose connection is refused is retried on the fallback and served', async () => {
    let retried = 0;
    for (let i = 0; i < 60 && retried < 3; i++) {
      const r = await send(env, `refused-${i}`, true);
      if (r.line['pod'] !== 'good' || r.line['attempts'] !== 2) continue;
      retried++;
      assert.equal(r.status, 200);
      assert.match(r.text, /data: \[DONE\]/);
      assert.deepEqual(r.hosts, [GOOD]);
    }
    assert.ok(retried > 0, 'some requests were first drawn to the refusing pod and retried');
  });
});
