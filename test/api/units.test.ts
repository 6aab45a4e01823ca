import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDurationMs, parseDurationMs } from '../../src/api/duration.js';
import { formatBytes, parseQuantityBytes } from '../../src/api/quantity.js';

test('quantities: binary and decimal suffixes, exponents, plain numbers; junk is rejected', () => {
  const cases: Array<[string | number, number | undefined]> = [
    ['20Mi', 20 * 1024 * 1024],
    ['512Ki', 512 * 1024],
    ['1Gi', 1024 ** 3],
    ['1.5Gi', 1.5 * 1024 ** 3],
    ['1G', 1e9],
    ['100k', 100_000],
    ['1e6', 1_000_000],
    ['1048576', 1_048_576],
    [4096, 4096],
    ['0.5Ki', 512],
    ['20MB', undefined],
    ['Mi', undefined],
    ['-1Mi', undefined],
    ['', undefined],
    [-5, undefined],
  ];
  for (const [input, bytes] of cases) assert.equal(parseQuantityBytes(input), bytes, String(input));
  assert.equal(formatBytes(20 * 1024 * 1024), '20Mi');
  assert.equal(formatBytes(900), '900');
});

test('durations: Gateway API form, one to four parts, h/m/s/ms', () => {
  const cases: Array<[string, number | undefined]> = [
    ['24h', 86_400_000],
    ['30s', 30_000],
    ['1h30m', 5_400_000],
    ['500ms', 500],
    ['1m1s1ms', 61_001],
    ['0s', 0],
    ['1.5s', undefined],
    ['10', undefined],
    ['1d', undefined],
    ['123456s', undefined],
    ['1h1h1h1h1h', undefined],
  ];
  for (const [input, ms] of cases) assert.equal(parseDurationMs(input), ms, input);
  assert.equal(formatDurationMs(5_400_000), '1h30m');
  assert.equal(formatDurationMs(86_400_000), '24h');
});
