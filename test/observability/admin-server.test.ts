import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { startAdminServer } from '../../src/observability/admin-server.js';

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

function ask(port: number, method: string, path: string, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('admin port: every path answers GET and HEAD only; other methods get 405 with Allow in the error shape', async () => {
  const metrics = { contentType: 'text/plain; version=0.0.4', metrics: () => Promise.resolve('up 1\n') };
  const admin = await startAdminServer('127.0.0.1', 0, { live: () => true, ready: () => ({ ready: true, version: 1 }), metrics: () => metrics, endpoints: () => ({ pools: [] }) });
  try {
    for (const path of ['/healthz', '/readyz', '/metrics', '/debug/endpoints']) {
      assert.equal((await ask(admin.port, 'GET', path)).status, 200, `GET ${path}`);
      const head = await ask(admin.port, 'HEAD', path);
      assert.equal(head.status, 200, `HEAD ${path}`);
      assert.equal(head.body, '', `HEAD ${path} has no body`);
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
        const a = await ask(admin.port, method, path, method === 'POST' ? '{"x":1}' : undefined);
        assert.equal(a.status, 405, `${method} ${path}`);
        assert.equal(a.headers['allow'], 'GET, HEAD', `${method} ${path}`);
        const parsed = JSON.parse(a.body) as { error: { code: string; type: string; message: string; param: null } };
        assert.equal(parsed.error.code, 'method_not_allowed');
        assert.equal(parsed.error.type, 'invalid_request_error');
        assert.equal(parsed.error.param, null);
        assert.match(parsed.error.message, new RegExp(`GET, HEAD only, not ${method}`));
      }
    }
    // An unknown path is still 404 for GET, and 405 for a method no admin path answers.
    assert.equal((await ask(admin.port, 'GET', '/nope')).status, 404);
    assert.equal((await ask(admin.port, 'POST', '/nope')).status, 405);
  } finally {
    await admin.close();
  }
});
