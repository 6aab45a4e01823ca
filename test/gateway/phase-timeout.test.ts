import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Endpoint } from '../../src/core/endpoint.js';
import { GatewayError } from '../../src/core/errors.js';
import { DEFAULT_TIMEOUTS, phaseTimeout, requestDeadline, type PhaseFacts } from '../../src/gateway/index.js';

const endpoint = new Endpoint({ address: '10.0.0.1', port: 8000, name: 'pod-0', podName: 'pod-0', labels: {} });
const facts = (f: Partial<PhaseFacts>): PhaseFacts => ({ endpoint, startedAt: 0, headersAt: undefined, firstDataAt: undefined, lastDataAt: 0, waitingForClient: false, waitingSince: 0, streaming: true, ...f });
const t = DEFAULT_TIMEOUTS;

test('phase timeouts are decided from plain facts: which timeout passed, and whether it ends the request or one leg', () => {
  const cases: ReadonlyArray<{ name: string; f: PhaseFacts; now: number; deadlineMs?: number; firstByteAt?: number; code?: string; whole?: boolean; says?: RegExp }> = [
    { name: 'on time', f: facts({}), now: t.streamHeadersMs - 1 },
    { name: 'no stream headers', f: facts({}), now: t.streamHeadersMs, code: 'upstream_timeout', whole: false, says: /stream headers timeout/ },
    { name: 'no whole answer', f: facts({ streaming: false }), now: t.responseMs, code: 'upstream_timeout', whole: false, says: /response timeout/ },
    { name: 'silent mid-stream', f: facts({ headersAt: 1, firstDataAt: 2, lastDataAt: 2 }), now: 2 + t.streamIdleMs, code: 'upstream_timeout', whole: false, says: /stream idle timeout/ },
    { name: 'the request deadline ends the whole request', f: facts({ headersAt: 1 }), now: 500, deadlineMs: 500, code: 'upstream_timeout', whole: true, says: /request timeout of 500 ms/ },
    { name: 'a stalled client is the client\'s, and ends the whole request', f: facts({ headersAt: 1, firstDataAt: 2, lastDataAt: 2, waitingForClient: true, waitingSince: 10 }), now: 10 + t.clientStallMs, code: 'client_stalled', whole: true },
    { name: 'a slow client is no server\'s silence', f: facts({ headersAt: 1, firstDataAt: 2, lastDataAt: 2, waitingForClient: true, waitingSince: 10 }), now: 10 + t.clientStallMs - 1 },
    { name: 'the first-byte (KV handshake) deadline alone times a leg before its first byte', f: facts({ headersAt: 1 }), now: 100, firstByteAt: 100, code: 'kv_handshake_timeout', whole: false },
    { name: 'before it, not even the stream headers timeout', f: facts({}), now: t.streamHeadersMs + 5, firstByteAt: t.streamHeadersMs + 10 },
  ];
  for (const c of cases) {
    const verdict = phaseTimeout(c.f, {
      timeouts: t,
      deadline: c.deadlineMs === undefined ? undefined : requestDeadline({ ms: c.deadlineMs, setting: 'request timeout' }, 0),
      ...(c.firstByteAt === undefined ? {} : { firstByte: { at: c.firstByteAt, error: () => new GatewayError('kv_handshake_timeout', 'handshake') } }),
    }, c.now);
    assert.equal(verdict?.error.code, c.code, c.name);
    assert.equal(verdict?.whole, c.whole, c.name);
    if (c.says !== undefined) assert.match(verdict?.error.message ?? '', c.says, c.name);
  }
});
