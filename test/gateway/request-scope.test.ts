import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../src/core/errors.js';
import { RequestScope, Stopped } from '../../src/gateway/request-scope.js';

test('request scope: the first stop wins; listeners hear it once, in order; the signal, made before or after, carries the same reason', () => {
  const scope = new RequestScope();
  const heard: string[] = [];
  const first = (r: Stopped): void => void heard.push(`first:${r.error.code}`);
  const removed = (): void => void heard.push('removed');
  scope.onStop(first);
  scope.onStop(removed);
  scope.onStop((r) => heard.push(`last:${r.error.code}`));
  scope.offStop(removed);
  const early = scope.signal;
  assert.equal(early.aborted, false);
  const stopped = (): GatewayError | undefined => scope.stopped;
  assert.equal(stopped(), undefined);
  scope.stop(new GatewayError('client_gone', 'gone'));
  scope.stop(new GatewayError('upstream_timeout', 'late'));
  assert.deepEqual(heard, ['first:client_gone', 'last:client_gone']);
  assert.equal(stopped()?.code, 'client_gone');
  assert.ok(scope.clientGone);
  assert.equal(early.aborted, true);
  assert.equal(early.reason, scope.reason);

  const late = new RequestScope();
  late.stop(new GatewayError('gateway_shutting_down', 'bye'));
  const signal = late.signal;
  assert.equal(signal.aborted, true, 'a signal made after the stop is aborted already');
  assert.ok(signal.reason instanceof Stopped);
  assert.equal((signal.reason as Stopped).error.code, 'gateway_shutting_down');
});
