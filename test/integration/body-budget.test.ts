import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { answer, startFakeEnv, type FakeEnv, type SeenRequest } from '../support/fake-engines.js';
import { finalStatus, rawConnect, requestHead, upload } from '../support/raw-http.js';

const PATH = '/v1/chat/completions';
const KIB = 1024;

/** A chat body of exactly `bytes` bytes. */
function chatOf(bytes: number, id: string): Buffer {
  const shell = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: '' }], user: id });
  return Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'x'.repeat(bytes - shell.length) }], user: id }));
}

interface Answer {
  readonly status: number;
  readonly retryAfter: string | undefined;
  readonly json: { error?: { code?: string; type?: string; message?: string; param?: unknown } };
}

/** POSTs `body` (chunked when `chunked`), resolves with the answer. */
function post(port: number, body: Buffer, id: string, chunked = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'x-request-id': id };
    if (!chunked) headers['content-length'] = body.length;
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: PATH, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let json: Answer['json'] = {};
        try {
          json = JSON.parse(text) as Answer['json'];
        } catch {
          // not JSON
        }
        const ra = res.headers['retry-after'];
        resolve({ status: res.statusCode ?? 0, retryAfter: typeof ra === 'string' ? ra : undefined, json });
      });
    });
    req.on('error', reject);
    if (chunked) {
      // Two writes: no length is declared, the budget grows as bytes arrive.
      req.write(body.subarray(0, body.length >> 1));
      req.end(body.subarray(body.length >> 1));
    } else req.end(body);
  });
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not seen within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the global body budget: past it new bodies get 503 with Retry-After, and every path gives it back', { timeout: 180_000 }, () => {
  let env: FakeEnv;
  let port: number;
  /** Requests the model server holds unanswered until the test releases them. */
  const held: Array<{ res: ServerResponse; seen: SeenRequest }> = [];
  let holding = true;

  before(async () => {
    env = await startFakeEnv(
      {
        '127.0.16.1': (_req, res, seen) => {
          if (holding) held.push({ res, seen });
          else answer(res, seen);
        },
      },
      { 'fake-0': '127.0.16.1' },
      { args: ['--body-budget', '3Mi'] },
    );
    port = env.port;
  });

  after(async () => {
    for (const h of held.splice(0)) h.res.destroy();
    await env?.close();
  });

  const releaseHeld = (): void => {
    for (const h of held.splice(0)) answer(h.res, h.seen);
  };

  /** Three 900 KiB bodies held in flight: 2.7 MiB of the 3 MiB budget. */
  async function fillBudget(tag: string): Promise<Array<Promise<Answer>>> {
    holding = true;
    const inFlight = [0, 1, 2].map((i) => post(port, chatOf(900 * KIB, `${tag}-${i}`), `${tag}-${i}`));
    await until(`the server holds the three ${tag} requests`, () => held.length === 3);
    return inFlight;
  }

  test('bodies beyond the budget are refused at once with 503 body_budget_exhausted and Retry-After, declared or chunked; the next request after is served', async () => {
    const inFlight = await fillBudget('fill');
    const declared = await post(port, chatOf(900 * KIB, 'over-declared'), 'over-declared');
    const chunked = await post(port, chatOf(900 * KIB, 'over-chunked'), 'over-chunked', true);
    for (const refused of [declared, chunked]) {
      assert.equal(refused.status, 503);
      assert.equal(refused.json.error?.code, 'body_budget_exhausted');
      assert.equal(refused.json.error?.type, 'service_unavailable_error');
      assert.equal(refused.json.error?.param, null);
      assert.ok(Number(refused.retryAfter) >= 1, `Retry-After: ${refused.retryAfter}`);
    }
    // A small body still fits in what is left (0.3 MiB).
    holding = false;
    assert.equal((await post(port, chatOf(2 * KIB, 'small'), 'small')).status, 200);
    releaseHeld();
    for (const a of await Promise.all(inFlight)) assert.equal(a.status, 200);
    assert.ok(!env.fakes.seen.some((s) => s.requestId?.startsWith('over-')), 'no refused body reached the model server');
    // Everything was given back: a body that did not fit before is served now.
    assert.equal((await post(port, chatOf(900 * KIB, 'after'), 'after')).status, 200);
  });

  test('refusals, client errors and clients that leave give their reservation back', async () => {
    holding = false;
    // Each of these would keep 900 KiB reserved if a path forgot to release it: four of them
    // would fill the 3 MiB budget for good.
    for (let i = 0; i < 4; i++) {
      const bad = Buffer.concat([Buffer.from('{"model": "m", "messages": '), Buffer.alloc(900 * KIB - 27, ' ')]);
      assert.equal((await post(port, bad, `bad-json-${i}`)).status, 400);
      const conn = await rawConnect(port);
      conn.socket.write(requestHead(PATH, { 'Content-Type': 'application/json', 'Content-Length': 900 * KIB, 'X-Request-Id': `gone-${i}` }));
      await upload(conn.socket, 100 * KIB);
      conn.socket.resetAndDestroy();
      await env.gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === `gone-${i}`);
    }
    const inFlight = await fillBudget('again');
    releaseHeld();
    for (const a of await Promise.all(inFlight)) assert.equal(a.status, 200);
  });

  test('a refused upload that is still arriving gets its 503 whole, then the connection closes', async () => {
    const inFlight = await fillBudget('busy');
    const conn = await rawConnect(port, { paused: true });
    conn.socket.write(requestHead(PATH, { 'Content-Type': 'application/json', 'Content-Length': 900 * KIB }));
    await upload(conn.socket, 900 * KIB);
    conn.socket.resume();
    const { text } = await conn.closed();
    assert.equal(finalStatus(text), 503, text.slice(0, 300));
    assert.match(text, /\r\nretry-after: 1\r\n/i);
    assert.match(text, /"code":"body_budget_exhausted"/);
    holding = false;
    releaseHeld();
    for (const a of await Promise.all(inFlight)) assert.equal(a.status, 200);
  });
});
