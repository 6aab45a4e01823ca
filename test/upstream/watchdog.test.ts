import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Endpoint } from '../../src/core/endpoint.js';
import { GatewayError } from '../../src/core/errors.js';
import { DEFAULT_TIMEOUTS } from '../../src/gateway/index.js';
import { RequestScope } from '../../src/gateway/index.js';
import { UpstreamAttempt } from '../../src/upstream/attempt.js';
import { overdue, Watchdog, type Deadline } from '../../src/upstream/watchdog.js';

interface Case {
  readonly name: string;
  /** The attempt as the sweep sees it, times relative to its start (ms). */
  readonly streaming: boolean;
  readonly headersAt?: number;
  readonly lastDataAt?: number;
  readonly waitingForClient?: boolean;
  readonly waitingSince?: number;
  readonly ejected?: boolean;
  readonly unhealthy?: boolean;
  readonly deadline?: number;
  readonly now: number;
  /** Expected: no timeout, or the words the message names it by. */
  readonly fires: RegExp | undefined;
}

const CASES: readonly Case[] = [
  { name: 'stream headers on time', streaming: true, now: 29_999, fires: undefined },
  { name: 'stream headers late', streaming: true, now: 30_000, fires: /stream headers timeout/ },
  { name: 'non-streamed answer on time, headers or not', streaming: false, headersAt: 100_000, now: 299_999, fires: undefined },
  { name: 'non-streamed answer late', streaming: false, now: 300_000, fires: /response timeout/ },
  { name: 'non-streamed body late after its headers', streaming: false, headersAt: 250_000, lastDataAt: 299_000, now: 300_000, fires: /response timeout/ },
  { name: 'stream chunks on time', streaming: true, headersAt: 10, lastDataAt: 100_000, now: 159_999, fires: undefined },
  { name: 'stream silent too long', streaming: true, headersAt: 10, lastDataAt: 100_000, now: 160_000, fires: /stream idle timeout/ },
  { name: 'a slow client is not the server going idle', streaming: true, headersAt: 10, lastDataAt: 10, waitingForClient: true, waitingSince: 950_000, now: 1_000_000, fires: undefined },
  { name: 'a client that read nothing for the client stall timeout', streaming: true, headersAt: 10, lastDataAt: 10, waitingForClient: true, waitingSince: 940_000, now: 1_000_000, fires: /client stall timeout/ },
  { name: 'a non-streamed answer the client stopped reading', streaming: false, headersAt: 10, lastDataAt: 10, waitingForClient: true, waitingSince: 10, now: 60_010, fires: /client stall timeout/ },
  { name: 'the whole-request deadline wins', streaming: true, headersAt: 10, lastDataAt: 900, deadline: 1_000, now: 1_000, fires: /request timeout of 1000 ms \(BackendTrafficPolicy default\/t\)/ },
  { name: 'the deadline holds while the client is slow', streaming: true, headersAt: 10, waitingForClient: true, deadline: 1_000, now: 1_000, fires: /request timeout/ },
  { name: 'ejected endpoint, a stream without headers silent for the unavailable idle timeout', streaming: true, ejected: true, now: 5_000, fires: /unavailable idle timeout/ },
  { name: 'ejected endpoint, a stream without headers not silent long enough', streaming: true, ejected: true, now: 4_999, fires: undefined },
  // Silence is no evidence here: an ejected endpoint's stream may be queued or prefilling a long prompt, ...
  { name: 'ejected endpoint, silent 5 s mid-stream', streaming: true, headersAt: 10, lastDataAt: 1_000, ejected: true, now: 6_000, fires: undefined },
  // ... and a non-streamed answer sends nothing until it is whole.
  { name: 'ejected endpoint, a non-streamed answer silent for minutes', streaming: false, ejected: true, now: 200_000, fires: undefined },
  { name: 'failing scrapes, silent mid-stream', streaming: true, headersAt: 10, lastDataAt: 1_000, unhealthy: true, now: 6_000, fires: /unavailable idle timeout/ },
  { name: 'failing scrapes, silent before any header', streaming: false, unhealthy: true, now: 5_000, fires: /unavailable idle timeout/ },
  { name: 'healthy endpoint, silent 5 s mid-stream', streaming: true, headersAt: 10, lastDataAt: 1_000, now: 6_000, fires: undefined },
];

for (const c of CASES) {
  test(`overdue: ${c.name}`, () => {
    const endpoint = new Endpoint({ address: '127.0.0.1', port: 8000, name: 'e', podName: 'e', labels: {} });
    const scope = new RequestScope();
    // Whole numbers: the boundaries are exact (performance.now() fractions would round).
    const t0 = 1_000_000;
    const attempt = new UpstreamAttempt(endpoint, scope, c.streaming, t0);
    if (c.headersAt !== undefined) attempt.headersAt = t0 + c.headersAt;
    attempt.lastDataAt = t0 + (c.lastDataAt ?? c.headersAt ?? 0);
    attempt.waitingForClient = c.waitingForClient ?? false;
    attempt.waitingSince = t0 + (c.waitingSince ?? 0);
    if (c.ejected === true) endpoint.ejectedUntil = t0 + 1e9;
    if (c.unhealthy === true) endpoint.healthy = false;
    const deadline: Deadline | undefined = c.deadline === undefined ? undefined : { at: t0 + c.deadline, ms: c.deadline, setting: 'BackendTrafficPolicy default/t' };
    const err = overdue({ attempt, timeouts: DEFAULT_TIMEOUTS, deadline, scope }, t0 + c.now);
    if (c.fires === undefined) assert.equal(err, undefined, err?.message);
    else {
      assert.equal(err?.code, /client stall/.test(c.fires.source) ? 'client_stalled' : 'upstream_timeout');
      assert.match(err.message, c.fires);
    }
  });
}

test('the watchdog stops the request of an overdue attempt and leaves the others running', () => {
  const endpoint = new Endpoint({ address: '127.0.0.1', port: 8000, name: 'e', podName: 'e', labels: {} });
  const watchdog = new Watchdog(60_000);
  const late = new RequestScope();
  const onTime = new RequestScope();
  const a = new UpstreamAttempt(endpoint, late, true, 1_000);
  const b = new UpstreamAttempt(endpoint, onTime, true, 1_000);
  watchdog.watch({ attempt: a, timeouts: DEFAULT_TIMEOUTS, deadline: undefined, scope: late });
  watchdog.watch({ attempt: b, timeouts: { ...DEFAULT_TIMEOUTS, streamHeadersMs: 60_000 }, deadline: undefined, scope: onTime });
  watchdog.sweep(a.startedAt + 30_000);
  assert.equal(late.stopped?.code, 'upstream_timeout');
  assert.equal(onTime.stopped, undefined);
  assert.equal(watchdog.size, 2);
  watchdog.close();
});

test('an attempt with its own stop gets the timeout, told whether it is the whole-request deadline', () => {
  const endpoint = new Endpoint({ address: '127.0.0.1', port: 8000, name: 'e', podName: 'e', labels: {} });
  const watchdog = new Watchdog(60_000);
  const seen: Array<{ code: string; whole: boolean }> = [];
  const legTimeout = new RequestScope();
  const leg = new UpstreamAttempt(endpoint, legTimeout, true, 1_000);
  watchdog.watch({ attempt: leg, timeouts: DEFAULT_TIMEOUTS, deadline: { at: 1_000_000, ms: 999_000, setting: 's' }, scope: legTimeout, stop: (e, whole) => seen.push({ code: e.code, whole }) });
  watchdog.sweep(leg.startedAt + 30_000);
  assert.deepEqual(seen, [{ code: 'upstream_timeout', whole: false }]);
  assert.equal(legTimeout.stopped, undefined, 'the callback decides what to stop');
  watchdog.sweep(1_000_000);
  assert.deepEqual(seen.at(-1), { code: 'upstream_timeout', whole: true });
  watchdog.close();
});

test('a leg with a first-byte deadline is timed by it alone until its first byte (a long prefill may outlast the stream idle timeout)', () => {
  const endpoint = new Endpoint({ address: '127.0.0.1', port: 8000, name: 'e', podName: 'e', labels: {} });
  const scope = new RequestScope();
  const t0 = 1_000_000;
  const attempt = new UpstreamAttempt(endpoint, scope, true, t0);
  attempt.headersAt = t0 + 10;
  attempt.lastDataAt = t0 + 10;
  const w = { attempt, timeouts: DEFAULT_TIMEOUTS, deadline: undefined, scope, firstByte: { at: t0 + 130_000, error: () => new GatewayError('kv_handshake_timeout', 'handshake') } };
  assert.equal(overdue(w, t0 + 100_000), undefined, 'silent for 100 s, past the 60 s stream idle timeout, before its first byte');
  assert.equal(overdue(w, t0 + 130_000)?.code, 'kv_handshake_timeout');
  attempt.firstDataAt = t0 + 120_000;
  attempt.lastDataAt = t0 + 120_000;
  assert.match(overdue(w, t0 + 180_000)?.message ?? '', /stream idle timeout/, 'after it, the phase timeouts apply again');
});

test('a stalled client ends the whole request, also of a leg with its own stop (a disaggregated decode leg)', () => {
  const endpoint = new Endpoint({ address: '127.0.0.1', port: 8000, name: 'e', podName: 'e', labels: {} });
  const watchdog = new Watchdog(60_000);
  const seen: Array<{ code: string; whole: boolean }> = [];
  const scope = new RequestScope();
  const leg = new UpstreamAttempt(endpoint, scope, true, 1_000);
  leg.headersAt = 1_010;
  leg.waitingForClient = true;
  leg.waitingSince = 2_000;
  watchdog.watch({ attempt: leg, timeouts: { ...DEFAULT_TIMEOUTS, clientStallMs: 500 }, deadline: undefined, scope, stop: (e, whole) => seen.push({ code: e.code, whole }) });
  watchdog.sweep(2_499);
  assert.deepEqual(seen, []);
  watchdog.sweep(2_500);
  assert.deepEqual(seen, [{ code: 'client_stalled', whole: true }]);
  watchdog.close();
});
