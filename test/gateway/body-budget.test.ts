import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError } from '../../src/core/errors.js';
import { BodyBudget, defaultBodyBudgetBytes } from '../../src/gateway/body-budget.js';
import { hostProblem } from '../../src/gateway/host-header.js';
import { requestCodings } from '../../src/gateway/request-coding.js';

const refusedWith = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;

describe('BodyBudget', () => {
  test('reservations past the budget are refused with 503 and Retry-After; releasing makes room again', () => {
    const budget = new BodyBudget(100);
    const a = budget.reserve(60);
    const b = budget.reserve(40);
    assert.throws(() => budget.reserve(1), (err) => refusedWith('body_budget_exhausted')(err) && (err as GatewayError).status === 503 && (err as GatewayError).retryAfterSeconds === 1);
    a.release();
    a.release();
    assert.equal(budget.reservedBytes, 40);
    const c = budget.reserve(60);
    b.release();
    c.release();
    assert.equal(budget.reservedBytes, 0);
  });

  test('a body without a declared length grows its reservation as it arrives, and is refused once it does not fit', () => {
    const budget = new BodyBudget(100);
    const other = budget.reserve(50);
    const r = budget.reserve(0);
    r.cover(30);
    r.cover(20);
    assert.equal(r.bytes, 30);
    assert.throws(() => r.cover(51), refusedWith('body_budget_exhausted'));
    assert.equal(budget.reservedBytes, 80, 'a refused growth takes nothing');
    r.shrinkTo(10);
    assert.equal(budget.reservedBytes, 60);
    r.release();
    other.release();
    assert.equal(budget.reservedBytes, 0);
  });

  test('a body larger than the whole budget passes alone, never beside others', () => {
    const budget = new BodyBudget(100);
    const big = budget.reserve(500);
    assert.throws(() => budget.reserve(1), refusedWith('body_budget_exhausted'));
    big.release();
    const small = budget.reserve(1);
    assert.throws(() => budget.reserve(500), refusedWith('body_budget_exhausted'));
    small.release();
  });

  test('the default is 1/16 of the V8 heap limit', () => {
    assert.equal(defaultBodyBudgetBytes(4 * 1024 ** 3), 256 * 1024 ** 2);
    assert.ok(new BodyBudget().limitBytes > 0);
  });
});

describe('request content codings', () => {
  const all = (): boolean => true;
  test('listed in the order applied, identity dropped, case and spaces ignored', () => {
    assert.deepEqual(requestCodings(undefined, all), []);
    assert.deepEqual(requestCodings('identity', all), []);
    assert.deepEqual(requestCodings(' GZIP , br ', all), ['gzip', 'br']);
    assert.deepEqual(requestCodings(['gzip', 'deflate'], all), ['gzip', 'deflate']);
  });

  test('unknown, undecodable here, or too many: 415', () => {
    assert.throws(() => requestCodings('compress', all), refusedWith('unsupported_content_encoding'));
    assert.throws(() => requestCodings('zstd', (c) => c !== 'zstd'), refusedWith('unsupported_content_encoding'));
    assert.throws(() => requestCodings('gzip, gzip, gzip, gzip', all), refusedWith('unsupported_content_encoding'));
  });
});

describe('hostProblem', () => {
  test('one Host, or none, is fine; two, or one contradicting the target or :authority, is 400 invalid_host', () => {
    assert.equal(hostProblem(['Host', 'a'], '/v1'), undefined);
    assert.equal(hostProblem([], '/v1'), undefined);
    assert.equal(hostProblem(['Host', 'A:80'], 'http://a:80/v1'), undefined);
    assert.equal(hostProblem([':authority', 'a', 'host', 'a'], '/v1'), undefined);
    for (const [raw, target] of [
      [['Host', 'a', 'Host', 'b'], '/v1'],
      [['Host', 'a', 'host', 'a'], '/v1'],
      [['Host', 'a'], 'http://b/v1'],
      [['Host', 'a'], 'http://user@b/v1'],
      [[':authority', 'a', 'host', 'b'], '/v1'],
    ] as const) {
      assert.equal(hostProblem(raw, target)?.code, 'invalid_host', JSON.stringify([raw, target]));
    }
  });
});
