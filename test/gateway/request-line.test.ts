import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../src/core/errors.js';
import { requestLineAnswer } from '../../src/gateway/request-line.js';

const CASES: ReadonlyArray<{ method: string; target: string; expect: number | 'forward' }> = [
  { method: 'POST', target: '/v1/chat/completions', expect: 'forward' },
  { method: 'GET', target: 'http://example.com/v1/models', expect: 'forward' },
  { method: 'GET', target: 'HTTPS://example.com/v1/models', expect: 'forward' },
  { method: 'OPTIONS', target: '/v1/models', expect: 'forward' },
  { method: 'OPTIONS', target: '*', expect: 200 },
  { method: 'GET', target: '*', expect: 400 },
  { method: 'TRACE', target: '/v1/models', expect: 405 },
  { method: 'trace', target: '/', expect: 405 },
  { method: 'CONNECT', target: 'example.com:443', expect: 405 },
  { method: 'GET', target: 'ftp://example.com/v1/models', expect: 400 },
  { method: 'POST', target: 'file:///etc/passwd', expect: 400 },
  { method: 'GET', target: 'gopher://x:70/', expect: 400 },
  { method: 'GET', target: 'example.com:443', expect: 400 },
  { method: 'GET', target: 'v1/models', expect: 400 },
  { method: 'GET', target: '', expect: 400 },
  { method: 'GET', target: '/v1/mo dels', expect: 400 },
  { method: 'GET', target: '/v1/\u0001', expect: 400 },
  { method: 'GET', target: '/v1/\u0100', expect: 400 },
];

for (const c of CASES) {
  test(`request line ${c.method} ${JSON.stringify(c.target)} → ${c.expect}`, () => {
    let answer: ReturnType<typeof requestLineAnswer>;
    try {
      answer = requestLineAnswer(c.method, c.target);
    } catch (err) {
      assert.ok(err instanceof GatewayError, String(err));
      assert.equal(err.status, c.expect);
      if (err.status === 405) assert.match(err.allow ?? '', /POST/, 'a 405 names what is allowed');
      return;
    }
    if (c.expect === 'forward') assert.equal(answer, undefined);
    else {
      assert.equal(answer?.status, c.expect);
      assert.match(answer.headers['allow'] ?? '', /POST/);
    }
  });
}
