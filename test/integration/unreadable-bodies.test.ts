import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configDir, gatewayYaml, podYaml, poolYaml, routeYaml } from '../support/config.js';
import { answer, startFakeEngines, startFakeEnv, type FakeEngines, type FakeEnv } from '../support/fake-engines.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';

/**
 * Bodies the gateway cannot read get the body's own 400 (docs/errors.md), through the real HTTP
 * gateway: on a route that matches the model header (model-based routing, filled from the body),
 * where no rule matching means the body named no model the gateway could read, and an inference
 * request that comes without a body, which is never forwarded.
 */
const deep = (n: number): string => `{"model":"m","messages":[],"x":${'['.repeat(n)}${']'.repeat(n)}}`;

const BAD_BODIES: ReadonlyArray<readonly [string, string]> = [
  ['{"model":"m",', 'invalid_json'],
  ['not json', 'invalid_json'],
  ['{"model":"m","model":"m","messages":[]}', 'invalid_body'],
  [deep(200), 'invalid_body'],
  ['{"model":"m","stream":"yes","messages":[]}', 'invalid_body'],
  ['[1,2]', 'invalid_body'],
  ['{"model":5,"messages":[]}', 'missing_model'],
  ['{"messages":[]}', 'missing_model'],
  ['{"model":"","messages":[]}', 'missing_model'],
  ['', 'missing_model'],
];

async function send(base: string, method: string, path: string, body: string | undefined, id?: string): Promise<{ status: number; code: unknown; text: string }> {
  const r = await fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json', ...(id === undefined ? {} : { 'x-request-id': id }) }, ...(body === undefined ? {} : { body }) });
  const text = await r.text();
  let code: unknown;
  try {
    code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: r.status, code, text };
}

describe('a route matching X-Gateway-Model-Name: unreadable bodies get their 400, not 404', { timeout: 120_000 }, () => {
  let fakes: FakeEngines;
  let gateway: GatewayProcess;
  let base: string;
  let remove: () => Promise<void>;

  before(async () => {
    fakes = await startFakeEngines({ '127.0.17.2': (_req, res, seen) => answer(res, seen) });
    const port = await freePort();
    const yaml = gatewayYaml(port) + poolYaml('fake', 'fake', fakes.port) + podYaml('fake-0', 'fake', '127.0.17.2') + routeYaml('by-model', [{ pool: 'fake', weight: 1 }], '/v1', { name: 'X-Gateway-Model-Name', value: 'm' });
    const cfg = await configDir(yaml);
    remove = cfg.remove;
    gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-interval', '0']);
    base = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    await gateway?.stop();
    await fakes?.close();
    await remove?.();
  });

  test('each kind of bad body is its own 400 on chat, completions and embeddings; no server sees one', async () => {
    const seen = fakes.seen.length;
    for (const path of ['/v1/chat/completions', '/v1/completions', '/v1/embeddings']) {
      for (const [body, code] of BAD_BODIES) {
        const r = await send(base, 'POST', path, body);
        assert.equal(r.status, 400, `${path} ${body.slice(0, 40)}: ${r.text}`);
        assert.equal(r.code, code, `${path} ${body.slice(0, 40)}`);
      }
    }
    assert.equal(fakes.seen.length, seen, 'nothing was forwarded');
  });

  test('what no rule would match even with a readable body stays 404: another model, another path, a bodyless GET', async () => {
    assert.equal((await send(base, 'POST', '/v1/chat/completions', '{"model":"other","messages":[]}')).code, 'route_not_found');
    assert.equal((await send(base, 'POST', '/v2/whatever', 'not json')).code, 'route_not_found');
    assert.equal((await send(base, 'GET', '/v1/health', undefined)).code, 'route_not_found');
    const ok = await send(base, 'POST', '/v1/chat/completions', '{"model":"m","messages":[]}');
    assert.equal(ok.status, 200, ok.text);
  });
});

describe('an inference request without a body on a PathPrefix route: the gateway\'s 400, never forwarded', { timeout: 120_000 }, () => {
  let env: FakeEnv;

  before(async () => {
    // A bodyless request gets `{}` (the fake's `answer` reads a JSON body).
    env = await startFakeEnv({ '127.0.17.3': (_req, res, seen) => (seen.body.length === 0 ? res.writeHead(200, { 'content-type': 'application/json' }).end('{}') : answer(res, seen)) }, { 'fake-0': '127.0.17.3' });
  });

  after(async () => {
    await env?.close();
  });

  test('POST with an empty body or none, to every inference path: 400 missing_model', async () => {
    const seen = env.fakes.seen.length;
    for (const path of ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses']) {
      for (const body of ['', undefined]) {
        const r = await send(env.base, 'POST', path, body, `empty-${path}-${String(body)}`);
        assert.equal(r.status, 400, `${path}: ${r.text}`);
        assert.equal(r.code, 'missing_model', path);
      }
    }
    assert.equal(env.fakes.seen.length, seen, 'no model server saw them');
  });

  test('bodyless requests that are no inference are still balanced: GET /v1/health, POST /v1/reset_prefix_cache', async () => {
    const seen = env.fakes.seen.length;
    assert.equal((await send(env.base, 'GET', '/v1/health', undefined)).status, 200);
    assert.equal((await send(env.base, 'POST', '/v1/reset_prefix_cache', '')).status, 200);
    assert.equal(env.fakes.seen.length, seen + 2);
  });
});
