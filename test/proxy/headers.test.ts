import assert from 'node:assert/strict';
import { test } from 'node:test';
import { responseHeaderEdits, upstreamHeaderEdits } from '../../src/gateway/headers.js';
import { clientResponseHeaders, upstreamRequestHeaders } from '../../src/proxy/headers.js';

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
