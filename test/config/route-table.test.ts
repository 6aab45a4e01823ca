import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HTTPRouteMatch } from '../../src/api/types.js';
import { RouteTable, type RouteEntry, type RouteRequest } from '../../src/config/route-table.js';
import type { RuleConfig } from '../../src/config/snapshot.js';
import { WeightedTable } from '../../src/core/weighted.js';

function rule(id: string): RuleConfig {
  return { id, routeName: id, backends: new WeightedTable([]), requestHeaders: null, responseHeaders: null, requestTimeoutMs: undefined, requestTimeoutSetting: undefined, bufferLimitBytes: 1024 };
}

interface EntrySpec {
  id: string;
  match?: Partial<HTTPRouteMatch>;
  hostnames?: string[];
  listenerHostname?: string;
  created?: string;
  key?: string;
  order?: number;
  ruleIndex?: number;
}

function entry(s: EntrySpec): RouteEntry {
  return {
    rule: rule(s.id),
    listenerHostname: s.listenerHostname,
    routeHostnames: s.hostnames ?? [],
    match: { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [], ...s.match },
    routeOrder: { created: s.created ?? '', key: s.key ?? `default/${s.id}`, fileOrder: s.order ?? 0 },
    ruleIndex: s.ruleIndex ?? 0,
  };
}

function req(path: string, extra: Partial<RouteRequest> = {}): RouteRequest {
  const q = path.indexOf('?');
  return { method: 'POST', path: q === -1 ? path : path.slice(0, q), query: q === -1 ? '' : path.slice(q + 1), host: 'example.com', headers: {}, ...extra };
}

test('PathPrefix matches whole path elements only', () => {
  const table = new RouteTable([entry({ id: 'v1', match: { path: { type: 'PathPrefix', value: '/v1' } } })]);
  const cases: Array<[string, boolean]> = [
    ['/v1', true],
    ['/v1/', true],
    ['/v1/chat/completions', true],
    ['/v1x', false],
    ['/v2/completions', false],
    ['/', false],
  ];
  for (const [path, hit] of cases) assert.equal(table.match(req(path))?.id === 'v1', hit, path);
  const trailing = new RouteTable([entry({ id: 't', match: { path: { type: 'PathPrefix', value: '/v1/' } } })]);
  assert.equal(trailing.match(req('/v1/completions'))?.id, 't');
  assert.equal(trailing.match(req('/v1'))?.id, 't', 'a trailing slash in the prefix is ignored');
});

test('Gateway API precedence: exact > longer prefix > method > headers > query > age > name > rule order', () => {
  const entries = [
    entry({ id: 'root', match: { path: { type: 'PathPrefix', value: '/' } } }),
    entry({ id: 'v1', match: { path: { type: 'PathPrefix', value: '/v1' } } }),
    entry({ id: 'chat', match: { path: { type: 'PathPrefix', value: '/v1/chat' } } }),
    entry({ id: 'exact', match: { path: { type: 'Exact', value: '/v1/chat/completions' } } }),
    entry({ id: 'method', match: { path: { type: 'PathPrefix', value: '/v1' }, method: 'GET' } }),
    entry({ id: 'header', match: { path: { type: 'PathPrefix', value: '/v1' }, headers: [{ type: 'Exact', name: 'X-Canary', value: 'yes' }] } }),
    entry({ id: 'query', match: { path: { type: 'PathPrefix', value: '/v1' }, queryParams: [{ type: 'Exact', name: 'beta', value: '1' }] } }),
  ];
  const table = new RouteTable(entries);
  const cases: Array<[string, RouteRequest, string]> = [
    ['exact path beats every prefix', req('/v1/chat/completions'), 'exact'],
    ['longest prefix', req('/v1/chat/other'), 'chat'],
    ['shorter prefix', req('/v1/completions'), 'v1'],
    ['fallback to /', req('/health'), 'root'],
    ['method match beats plain prefix of equal length', req('/v1/models', { method: 'GET' }), 'method'],
    ['header match (names case-insensitive)', req('/v1/completions', { headers: { 'x-canary': 'yes' } }), 'header'],
    ['header value must match exactly', req('/v1/completions', { headers: { 'x-canary': 'no' } }), 'v1'],
    ['query match', req('/v1/completions?beta=1'), 'query'],
    ['method outranks headers', req('/v1/x', { method: 'GET', headers: { 'x-canary': 'yes' } }), 'method'],
  ];
  for (const [name, r, want] of cases) assert.equal(table.match(r)?.id, want, name);
});

test('ties across routes: older creationTimestamp, then file order; within a route, rule order', () => {
  const p = { path: { type: 'PathPrefix' as const, value: '/v1' } };
  const byAge = new RouteTable([
    entry({ id: 'young', match: p, created: '2025-02-01T00:00:00Z', order: 0 }),
    entry({ id: 'old', match: p, created: '2025-01-01T00:00:00Z', order: 1 }),
  ]);
  assert.equal(byAge.match(req('/v1/x'))?.id, 'old');
  const byFile = new RouteTable([entry({ id: 'second', match: p, order: 5 }), entry({ id: 'first', match: p, order: 2 })]);
  assert.equal(byFile.match(req('/v1/x'))?.id, 'first');
  const byRule = new RouteTable([entry({ id: 'r1', match: p, ruleIndex: 1 }), entry({ id: 'r0', match: p, ruleIndex: 0 })]);
  assert.equal(byRule.match(req('/v1/x'))?.id, 'r0');
});

test('hostnames: listener and route hostnames filter; exact beats wildcard beats any', () => {
  const table = new RouteTable([
    entry({ id: 'any' }),
    entry({ id: 'wild', hostnames: ['*.example.com'] }),
    entry({ id: 'exact', hostnames: ['api.example.com'] }),
    entry({ id: 'listener-only', listenerHostname: 'internal.local', match: { path: { type: 'PathPrefix', value: '/v1' } } }),
  ]);
  assert.equal(table.match(req('/x', { host: 'api.example.com' }))?.id, 'exact');
  assert.equal(table.match(req('/x', { host: 'web.example.com' }))?.id, 'wild');
  assert.equal(table.match(req('/x', { host: 'example.com' }))?.id, 'any', 'a wildcard needs a label before the suffix');
  assert.equal(table.match(req('/v1/x', { host: 'internal.local' }))?.id, 'listener-only');
  assert.equal(table.match(req('/v1/x', { host: 'other' }))?.id, 'any');
});

test('regular expressions are anchored (full match)', () => {
  const table = new RouteTable([
    entry({ id: 're', match: { path: { type: 'RegularExpression', value: '/v[0-9]+/chat/.*' } } }),
    entry({ id: 'hdr', match: { path: { type: 'PathPrefix', value: '/h' }, headers: [{ type: 'RegularExpression', name: 'x-tenant', value: 'team-(a|b)' }] } }),
  ]);
  assert.equal(table.match(req('/v2/chat/completions'))?.id, 're');
  assert.equal(table.match(req('/x/v2/chat/completions')), undefined);
  assert.equal(table.match(req('/h', { headers: { 'x-tenant': 'team-a' } }))?.id, 'hdr');
  assert.equal(table.match(req('/h', { headers: { 'x-tenant': 'team-ab' } })), undefined);
});
