import assert from 'node:assert/strict';
import { test } from 'node:test';
import { responseHeaderEdits, upstreamHeaderEdits } from '../../src/gateway/headers.js';
import { clientResponseHeaders, pdLegRequestHeaders, upstreamRequestHeaders } from '../../src/upstream/headers.js';

test('upstream headers: hop-by-hop, host, content-length and x-gateway-* are dropped; ids and forwarding added', () => {
  const incoming = {
      host: 'gw:8080',
      connection: 'keep-alive, x-drop-me',
      'x-drop-me': '1',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'content-length': '999',
      'content-type': 'application/json',
      authorization: 'Bearer k',
      'x-gateway-model-name-rewrite': 'evil',
      'x-forwarded-for': '10.0.0.1',
  };
  // The core says what changes (gateway/headers.ts); the proxy drops hop-by-hop headers and applies it.
  const edits = upstreamHeaderEdits(incoming, { requestId: 'rid', clientAddress: '127.0.0.1', bodyLength: 42, modifier: { set: [{ name: 'X-Team', value: 'a' }], add: [{ name: 'authorization', value: 'extra' }], remove: ['content-type'] } });
  const out = upstreamRequestHeaders(incoming, edits);
  assert.deepEqual(out, {
    authorization: ['Bearer k', 'extra'],
    'x-forwarded-for': '10.0.0.1, 127.0.0.1',
    'x-request-id': 'rid',
    'accept-encoding': 'identity',
    'content-length': '42',
    'x-team': 'a',
  });
});

test('client response headers keep the upstream ones minus hop-by-hop, plus the request id', () => {
  const out = clientResponseHeaders({ 'content-type': 'text/event-stream', connection: 'close', 'x-sim-pod': 'p', 'transfer-encoding': 'chunked' }, responseHeaderEdits('rid', null));
  assert.deepEqual(out, { 'content-type': 'text/event-stream', 'x-sim-pod': 'p', 'x-request-id': 'rid' });
});

test('prefill/decode legs get the client headers SGLang\'s router forwards, and the gateway\'s own', () => {
  const incoming = {
    host: 'gw:8080',
    connection: 'keep-alive',
    'content-type': 'application/json',
    'content-length': '999',
    authorization: 'Bearer k',
    traceparent: '00-abc-def-01',
    tracestate: 'v=1',
    'x-correlation-id': 'c-1',
    'x-request-id-parent': 'p-1',
    cookie: 'session=secret',
    'accept-encoding': 'gzip',
    'x-my-app': 'whatever',
  };
  const edits = upstreamHeaderEdits(incoming, { requestId: 'req-1', clientAddress: '127.0.0.9', bodyLength: 12, modifier: { set: [{ name: 'x-route-set', value: 'yes' }], add: [], remove: [] } });
  const out = pdLegRequestHeaders(incoming, edits);
  assert.equal(out['authorization'], 'Bearer k');
  assert.equal(out['traceparent'], '00-abc-def-01');
  assert.equal(out['tracestate'], 'v=1');
  assert.equal(out['x-correlation-id'], 'c-1');
  assert.equal(out['x-request-id-parent'], 'p-1');
  assert.equal(out['content-type'], 'application/json');
  assert.equal(out['x-request-id'], 'req-1');
  assert.equal(out['content-length'], '12', 'the leg\'s own body length');
  assert.equal(out['accept-encoding'], 'identity');
  assert.equal(out['x-route-set'], 'yes', 'the HTTPRoute\'s header modifier still applies');
  for (const dropped of ['cookie', 'x-my-app', 'host', 'connection']) assert.equal(out[dropped], undefined, dropped);
});
