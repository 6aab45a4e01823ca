import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { answer, chatRequest, startFakeEnv, type FakeEnv, type SeenRequest } from '../support/fake-engines.js';
import { finalStatus, rawConnect, requestHead } from '../support/raw-http.js';

/*
 * Request targets are normalised before routing and forwarding (RFC 3986 dot segments, merged
 * slashes, unreserved characters decoded; encoded slashes, control bytes and fragments refused),
 * through the real gateway, with a model server that records the path it received. Sent on a raw
 * socket: fetch would normalise the path itself.
 */

describe('request paths are normalised before routing and forwarding', { timeout: 90_000 }, () => {
  let env: FakeEnv;
  /** The paths the model server received, in order. */
  const received: string[] = [];

  before(async () => {
    env = await startFakeEnv(
      {
        '127.0.6.90': (req, res, seen) => {
          received.push(req.url ?? '');
          // An empty body reaching the server (a test failing) is answered too: the next tests go on.
          if (seen.body.length === 0) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
          else answer(res, seen);
        },
      },
      { 'path-0': '127.0.6.90' },
    );
  });

  after(async () => {
    await env?.close();
  });

  /** Sends a chat request to `target` (as written); the status and the path the server saw (if it saw one). */
  async function send(target: string): Promise<{ status: number | undefined; seen: string | undefined; text: string }> {
    const before = received.length;
    const body = chatRequest(false);
    const conn = await rawConnect(env.port);
    try {
      conn.socket.write(requestHead(target, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' }) + body);
      const { text } = await conn.closed();
      return { status: finalStatus(text), seen: received.length > before ? received.at(-1) : undefined, text };
    } finally {
      conn.socket.destroy();
    }
  }

  const FORWARDED: ReadonlyArray<readonly [string, string]> = [
    ['/v1/chat/completions', '/v1/chat/completions'],
    ['/v1/chat/../completions', '/v1/completions'],
    ['/v1/./chat/./completions', '/v1/chat/completions'],
    ['/v1//chat///completions', '/v1/chat/completions'],
    ['//v1/chat/completions', '/v1/chat/completions'],
    ['/../../v1/chat/completions', '/v1/chat/completions'],
    ['/v1/x/%2e%2e/chat/completions', '/v1/chat/completions'],
    ['/v1/x/%2E%2E/chat/completions', '/v1/chat/completions'],
    ['/v1/x/.%2E/chat/%2e/completions', '/v1/chat/completions'],
    ['/v1/chat/%63ompletions', '/v1/chat/completions'],
    ['/v1/chat/completions?a=/../b%2F&c=%2e%2e%00', '/v1/chat/completions?a=/../b%2F&c=%2e%2e%00'],
    ['/v1/chat/completions?x=1', '/v1/chat/completions?x=1'],
    ['/v1/caf%c3%a9', '/v1/caf%C3%A9'],
    ['/v1/%7Euser', '/v1/~user'],
    ['http://gateway/v1/x/../chat/completions?q=1', '/v1/chat/completions?q=1'],
  ];

  for (const [target, expected] of FORWARDED) {
    test(`${target} reaches the server as ${expected}`, async () => {
      const r = await send(target);
      assert.equal(r.seen, expected, r.text.slice(0, 300));
      assert.equal(r.status, 200);
    });
  }

  const REFUSED: ReadonlyArray<readonly [string, number, string]> = [
    // Escapes above the /v1 rule: after normalisation no rule matches.
    ['/v1/../admin', 404, 'route_not_found'],
    ['/v1/%2e%2e/metrics', 404, 'route_not_found'],
    ['/v1/%2E%2E/metrics', 404, 'route_not_found'],
    ['/v1/chat/completions/../../../debug/endpoints', 404, 'route_not_found'],
    ['/v1/..', 404, 'route_not_found'],
    ['/v1/chat%2Fcompletions', 400, 'invalid_path'],
    ['/v1/chat%2fcompletions', 400, 'invalid_path'],
    ['/v1/chat%5Ccompletions', 400, 'invalid_path'],
    ['/v1/chat%5ccompletions', 400, 'invalid_path'],
    ['/v1/chat/completions%00', 400, 'invalid_path'],
    ['/v1/chat/completions%0a', 400, 'invalid_path'],
    ['/v1/chat/completions%zz', 400, 'invalid_path'],
    ['/v1/chat/completions%', 400, 'invalid_path'],
    ['/v1/chat\\completions', 400, 'invalid_path'],
    ['/v1/chat/completions#frag', 400, 'invalid_path'],
    [`/v1/${'a'.repeat(9000)}`, 414, 'path_too_long'],
  ];

  for (const [target, status, code] of REFUSED) {
    test(`${target.slice(0, 60)} is refused with ${status} ${code}, unseen by the server`, async () => {
      const r = await send(target);
      assert.equal(r.seen, undefined, `the server saw ${r.seen}`);
      assert.equal(r.status, status, r.text.slice(0, 300));
      assert.match(r.text, new RegExp(`"code":"${code}"`));
    });
  }

  /** Sends `method target` with `body` (none when undefined); the status, the answer and what the server saw. */
  async function sendRaw(method: string, target: string, body?: string): Promise<{ status: number | undefined; seen: SeenRequest | undefined; text: string }> {
    const before = env.fakes.seen.length;
    const conn = await rawConnect(env.port);
    try {
      const length = body === undefined ? {} : { 'content-length': Buffer.byteLength(body) };
      conn.socket.write(`${method} ${target} HTTP/1.1\r\nHost: gateway\r\ncontent-type: application/json\r\nconnection: close\r\n${Object.entries(length).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body ?? ''}`);
      const { text } = await conn.closed();
      return { status: finalStatus(text), seen: env.fakes.seen.length > before ? env.fakes.seen.at(-1) : undefined, text };
    } finally {
      conn.socket.destroy();
    }
  }

  // Every spelling that names an inference endpoint once normalised (dot segments, merged slashes,
  // decoded unreserved escapes, a query, the trailing slash the model servers' routers redirect)
  // is that endpoint: an empty POST is the gateway's 400, never forwarded.
  const EMPTY_POSTS: readonly string[] = [
    '/v1/chat/completions',
    '/v1/chat/completions/',
    '/v1/chat/completions//',
    '/v1/chat/completions/.',
    '/v1//chat//completions/',
    '/v1/./chat/completions',
    '/v1/chat/x/../completions/',
    '/v1/chat/%63ompletions/',
    '/v1/chat/completions/?x=1',
    '/v1/chat/completions?x=1',
    '/v1/completions/',
    '/v1/embeddings/',
    '/v1/responses/',
    '/v1/rerank/',
    '/v1/score/',
    'http://gateway/v1/chat/completions/',
  ];
  for (const target of EMPTY_POSTS) {
    for (const withLength of [true, false]) {
      test(`an empty POST ${target}${withLength ? ' (Content-Length: 0)' : ' (no length)'} is 400 missing_model, unseen by the server`, async () => {
        const r = await sendRaw('POST', target, withLength ? '' : undefined);
        assert.equal(r.seen, undefined, `the server saw ${r.seen?.requestId ?? 'it'}`);
        assert.equal(r.status, 400, r.text.slice(0, 300));
        assert.match(r.text, /"code":"missing_model"/);
      });
    }
  }

  test('a streamed chat to /v1/chat/completions/ is asked for usage as /v1/chat/completions is', async () => {
    for (const target of ['/v1/chat/completions', '/v1/chat/completions/']) {
      const r = await sendRaw('POST', target, chatRequest(true));
      assert.equal(r.status, 200, r.text.slice(0, 300));
      const body = JSON.parse(r.seen?.body.toString('utf8') ?? '{}') as { stream_options?: { include_usage?: boolean } };
      assert.equal(body.stream_options?.include_usage, true, target);
    }
  });

  test('GET /v1/models/ is the model list, as GET /v1/models', async () => {
    for (const target of ['/v1/models', '/v1/models/', '/v1//models/']) {
      const r = await sendRaw('GET', target);
      assert.equal(r.status, 200, r.text.slice(0, 300));
      assert.match(r.text, /"object":"list"/, target);
    }
  });
});
