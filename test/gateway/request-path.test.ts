import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_REQUEST_TARGET_BYTES, normalizeRequestTarget, removeDotSegments } from '../../src/gateway/request-path.js';

test('removeDotSegments: RFC 3986 §5.2.4 examples, never above the root', () => {
  const cases: Array<[string, string]> = [
    ['/a/b/c/./../../g', '/a/g'],
    ['/mid/content=5/../6', '/mid/6'],
    ['/..', '/'],
    ['/../..', '/'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a/..b/c', '/a/..b/c'],
    ['/a/.b', '/a/.b'],
    ['/', '/'],
  ];
  for (const [input, out] of cases) assert.equal(removeDotSegments(input), out, input);
});

test('normalizeRequestTarget: canonical paths, query untouched', () => {
  const cases: Array<[string, string]> = [
    ['/v1/chat/completions', '/v1/chat/completions'],
    ['/v1/../admin', '/admin'],
    ['/v1/%2e%2e/metrics', '/metrics'],
    ['/v1/%2E%2e/metrics', '/metrics'],
    ['/v1/chat/completions/../../../debug/endpoints', '/debug/endpoints'],
    ['/v1//chat//completions', '/v1/chat/completions'],
    ['/a//../b', '/a/b'],
    ['/v1/%41%7a%30%2d%5f%7e', '/v1/Az0-_~'],
    ['/v1/%c3%a9%20x', '/v1/%C3%A9%20x'],
    ['/v1/%25', '/v1/%25'],
    ['/v1/%252e%252e/x', '/v1/%252e%252e/x'],
    ['/v1/x?y=/../%2F#', ''],
    ['/v1/x?y=/../%2F', '/v1/x?y=/../%2F'],
    ['/v1/x?', '/v1/x?'],
    ['HTTP://host:8080/v1/./x?q', '/v1/x?q'],
    ['http://host', '/'],
    ['http://host?q=1', '/?q=1'],
    ['*', '*'],
  ];
  for (const [input, out] of cases) {
    if (out === '') continue;
    assert.equal(normalizeRequestTarget(input).target, out, input);
  }
  assert.deepEqual(normalizeRequestTarget('/a/../b?c=%2e'), { path: '/b', query: 'c=%2e', target: '/b?c=%2e' });
});

test('normalizeRequestTarget: refusals', () => {
  const refused: Array<[string, string]> = [
    ['/v1/a%2Fb', 'invalid_path'],
    ['/v1/a%2fb', 'invalid_path'],
    ['/v1/a%5Cb', 'invalid_path'],
    ['/v1/a\\b', 'invalid_path'],
    ['/v1/%00', 'invalid_path'],
    ['/v1/%1f', 'invalid_path'],
    ['/v1/%7F', 'invalid_path'],
    ['/v1/a\u0000b', 'invalid_path'],
    ['/v1/a\tb', 'invalid_path'],
    ['/v1/%', 'invalid_path'],
    ['/v1/%4', 'invalid_path'],
    ['/v1/%g1', 'invalid_path'],
    ['/v1/x#frag', 'invalid_path'],
    ['v1/x', 'invalid_path'],
    ['', 'invalid_path'],
    [`/${'a'.repeat(MAX_REQUEST_TARGET_BYTES)}`, 'path_too_long'],
  ];
  for (const [input, code] of refused) {
    assert.throws(() => normalizeRequestTarget(input), (err: { code?: string }) => err.code === code, JSON.stringify(input.slice(0, 40)));
  }
});
