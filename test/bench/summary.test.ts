import assert from 'node:assert/strict';
import { test } from 'node:test';
import { metricsUrl, parsePrefixCacheCounters, parseSampleLine, prefixCacheDelta } from '../../src/bench/prefix-cache.js';
import { endpointShares, summarize, summarizeByStage } from '../../src/bench/summary.js';
import { formatSummaryText } from '../../src/bench/summary-text.js';
import { record } from './records.js';

test('summary math on synthetic records', () => {
  const records = [
    record({ seq: 0, startMs: 0, endMs: 1000, e2eMs: 1000, ttftMs: 100, itlMs: [10, 20], outputTokens: 100, endpoint: 'pod-a' }),
    record({ seq: 1, startMs: 500, endMs: 1500, e2eMs: 1000, ttftMs: 200, itlMs: [30], outputTokens: 50, endpoint: 'pod-b' }),
    record({ seq: 2, startMs: 1000, endMs: 2000, e2eMs: 1000, ttftMs: 300, itlMs: [], outputTokens: 150, endpoint: 'pod-a' }),
    record({ seq: 3, startMs: 1500, endMs: 1510, e2eMs: 10, ttftMs: undefined, ok: false, status: 429, errorKind: 'http', errorCode: 'queue_full', outputTokens: 0, endpoint: 'pod-b' }),
    record({ seq: 4, startMs: 1600, endMs: 1700, e2eMs: 100, ttftMs: undefined, ok: false, status: 0, errorKind: 'connection', outputTokens: 0, endpoint: undefined }),
    record({ seq: 5, startMs: 1700, endMs: 1800, e2eMs: 100, ttftMs: 50, ok: false, status: 200, errorKind: 'stream', outputTokens: 3, endpoint: undefined }),
  ];
  const s = summarize(records);
  assert.equal(s.requests, 6);
  assert.equal(s.ok, 3);
  assert.equal(s.failed, 3);
  assert.deepEqual(s.errorsByKind, { 'http 429': 1, connection: 1, stream: 1 });
  assert.equal(s.durationS, 2);
  assert.equal(s.requestsPerS, 1.5);
  assert.equal(s.outputTokens, 300, 'only successful requests count');
  assert.equal(s.outputTokensPerS, 150);
  assert.equal(s.promptTokens, 30);
  assert.deepEqual(s.ttftMs, { count: 3, mean: 200, min: 100, max: 300, p50: 200, p90: 280, p99: 298 });
  assert.equal(s.itlMs?.count, 3, 'inter-token gaps are pooled');
  assert.equal(s.itlMs?.p50, 20);
  assert.equal(s.e2eMs?.p99, 1000);
  // Shares over responses: 2 pod-a, 2 pod-b, 1 without the header; the connection error got no response.
  assert.deepEqual(s.endpoints, [
    { endpoint: '(none)', requests: 1, share: 0.2 },
    { endpoint: 'pod-a', requests: 2, share: 0.4 },
    { endpoint: 'pod-b', requests: 2, share: 0.4 },
  ]);
  assert.equal(summarize(records, { durationMs: 4000 }).outputTokensPerS, 75);
  const text = formatSummaryText('x', s);
  assert.match(text, /TTFT/);
  assert.match(text, /http 429: 1/);
});

test('empty runs and endpoint order', () => {
  const s = summarize([]);
  assert.equal(s.requests, 0);
  assert.equal(s.requestsPerS, 0);
  assert.equal(s.ttftMs, undefined);
  assert.deepEqual(s.endpoints, []);
  const shares = endpointShares([record({ seq: 0, endpoint: 'pod-10' }), record({ seq: 1, endpoint: 'pod-9' }), record({ seq: 2, endpoint: 'pod-9' })]);
  assert.deepEqual(shares.map((e) => e.endpoint), ['pod-9', 'pod-10']);
  assert.equal(shares.reduce((a, e) => a + e.share, 0), 1);
});

test('per-stage summaries', () => {
  const by = summarizeByStage([record({ seq: 0, stage: 1 }), record({ seq: 1, stage: 0 }), record({ seq: 2, stage: 1 })]);
  assert.deepEqual([...by.keys()], [0, 1]);
  assert.equal(by.get(1)?.requests, 2);
});

test('prefix-cache counters: newer names first, summed over labels, older names as fallback', () => {
  const v092 = [
    '# HELP vllm:prefix_cache_queries_total Prefix cache queries, in terms of number of queried tokens.',
    '# TYPE vllm:prefix_cache_queries_total counter',
    'vllm:prefix_cache_queries_total{engine="0",model_name="m"} 1000.0',
    'vllm:prefix_cache_queries_total{engine="1",model_name="m"} 500.0',
    'vllm:prefix_cache_hits_total{engine="0",model_name="m"} 600.0',
    'vllm:prefix_cache_hits_total{engine="1",model_name="m"} 150.0',
    'vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} 1000.0',
    'vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} 600.0',
    'vllm:prefix_cache_queries_created{engine="0",model_name="m"} 1.7e9',
  ].join('\n');
  assert.deepEqual(parsePrefixCacheCounters(v092), { hits: 750, queries: 1500, family: 'vllm:prefix_cache' });
  const v08 = 'vllm:gpu_prefix_cache_queries_total{model_name="m"} 40\nvllm:gpu_prefix_cache_hits_total{model_name="m"} 10\n';
  assert.deepEqual(parsePrefixCacheCounters(v08), { hits: 10, queries: 40, family: 'vllm:gpu_prefix_cache' });
  assert.equal(parsePrefixCacheCounters('sglang:cache_hit_rate{model_name="m"} 0.5\n'), undefined);
  assert.deepEqual(parseSampleLine('x{a="} b",c="q\\"}"} 3 1700000000'), { name: 'x', value: 3 });
  assert.deepEqual(parseSampleLine('y +Inf'), { name: 'y', value: Number.POSITIVE_INFINITY });
  assert.equal(parseSampleLine('# TYPE y counter'), undefined);
  assert.equal(metricsUrl('http://h:8000'), 'http://h:8000/metrics');
  assert.equal(metricsUrl('http://h:8000/prometheus/metrics'), 'http://h:8000/prometheus/metrics');
});

test('prefix-cache delta: per server after − before; failed servers skipped; restarts counted from zero', () => {
  const before = {
    hits: 0,
    queries: 0,
    servers: [
      { url: 'a', hits: 100, queries: 200, family: 'vllm:prefix_cache' },
      { url: 'b', hits: 50, queries: 100, family: 'vllm:prefix_cache' },
      { url: 'c', error: 'down' },
      { url: 'd', hits: 900, queries: 1000, family: 'vllm:prefix_cache' },
    ],
  };
  const after = {
    hits: 0,
    queries: 0,
    servers: [
      { url: 'a', hits: 400, queries: 600, family: 'vllm:prefix_cache' },
      { url: 'b', hits: 50, queries: 300, family: 'vllm:prefix_cache' },
      { url: 'c', hits: 1, queries: 1, family: 'vllm:prefix_cache' },
      { url: 'd', hits: 10, queries: 100, family: 'vllm:prefix_cache' },
    ],
  };
  assert.deepEqual(prefixCacheDelta(before, after), { hits: 310, queries: 700, hitRate: 310 / 700, servers: 3 });
  assert.equal(prefixCacheDelta({ hits: 0, queries: 0, servers: [] }, { hits: 0, queries: 0, servers: [] }).hitRate, undefined);
});
