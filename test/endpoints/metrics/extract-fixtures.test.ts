import assert from 'node:assert/strict';
import { test } from 'node:test';
import { detectDialect } from '../../../src/endpoints/metrics/dialects.js';
import { extractMetrics } from '../../../src/endpoints/metrics/extract.js';
import { numeric, readFixture } from './fixtures.js';

// The published samples (test/fixtures/metrics/README.md). Several are excerpts that lack a
// required signal, so they also show what a failed scrape looks like: `metrics` undefined, the
// problem naming the series tried, and everything that was found still in `found`.

test('vLLM v1 docs sample: running read; waiting and KV are not in the excerpt', () => {
  const r = extractMetrics(readFixture('vllm-v1-docs.txt'), 'vllm');
  assert.equal(r.metrics, undefined);
  assert.deepEqual(numeric(r.found), { runningRequests: 8 });
  assert.deepEqual(r.problems, [
    'waitingRequests missing: no usable vllm:num_requests_waiting on the page',
    'kvCacheUsage missing: no usable vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc on the page',
  ]);
  assert.equal(r.detected, 'vllm');
  assert.equal(r.malformedLines, 0);
});

test('vLLM v0 lines: gpu_cache_usage_perc fallback, cache_config_info, LoRA off', () => {
  const r = extractMetrics(readFixture('vllm-v0-lines.txt'), 'vllm');
  assert.deepEqual(numeric(r.found), {
    waitingRequests: 0,
    kvCacheUsage: 0,
    blockSize: 16,
    numGpuBlocks: 81767,
    lora: { maxLoras: 0, running: [], waiting: [] },
  });
  // The capture has no vllm:num_requests_running line.
  assert.equal(r.metrics, undefined);
  assert.deepEqual(r.problems, ['runningRequests missing: no usable vllm:num_requests_running on the page']);
});

test('vLLM lora_requests_info: the series with the newest timestamp wins', () => {
  const r = extractMetrics(readFixture('vllm-lora-info.txt'), 'vllm');
  assert.deepEqual(r.found.lora, { maxLoras: 1, running: ['lora4', 'lora3'], waiting: [] });
  // Reversing the line order must not change the answer.
  const reversed = readFixture('vllm-lora-info.txt').trim().split('\n').reverse().join('\n');
  assert.deepEqual(extractMetrics(reversed, 'vllm').found.lora, r.found.lora);
});

test('SGLang docs sample: queue, running, token_usage, hit-rate gauge', () => {
  const r = extractMetrics(readFixture('sglang-docs.txt'), 'sglang');
  assert.deepEqual(numeric(r.metrics), {
    waitingRequests: 2826,
    runningRequests: 162,
    kvCacheUsage: 0.28,
    prefixCacheHitRate: 0.007507552643049313,
  });
  assert.deepEqual(r.problems, []);
  assert.equal(r.detected, 'sglang');
});

test('Triton TensorRT-LLM README sample: waiting, scheduled, fraction, tokens_per, max', () => {
  const r = extractMetrics(readFixture('triton-trtllm-docs.txt'), 'trt-llm');
  assert.deepEqual(numeric(r.metrics), {
    waitingRequests: 1,
    runningRequests: 1,
    kvCacheUsage: 0.4875,
    blockSize: 64,
    numGpuBlocks: 6239,
  });
  assert.deepEqual(r.problems, []);
  assert.equal(r.detected, 'trt-llm');
});

test('each fixture is detected as its runtime', () => {
  const cases = [
    ['vllm-v1-docs.txt', 'vllm'],
    ['vllm-v0-lines.txt', 'vllm'],
    ['vllm-lora-info.txt', 'vllm'],
    ['sglang-docs.txt', 'sglang'],
    ['triton-trtllm-docs.txt', 'trt-llm'],
  ] as const;
  for (const [file, dialect] of cases) assert.equal(detectDialect(readFixture(file)), dialect, file);
});

test('a page that contradicts the configured dialect is reported', () => {
  const r = extractMetrics(readFixture('sglang-docs.txt'), 'vllm');
  assert.equal(r.detected, 'sglang');
  assert.equal(r.metrics, undefined);
  assert.equal(r.problems[0], 'the page has sglang metrics, but the endpoint is configured as vllm');
  assert.equal(r.problems.length, 4); // the contradiction + waiting, running, KV missing
});

test('served model names come from the model_name label: base models need no LoRA slot', () => {
  assert.deepEqual(extractMetrics(readFixture('vllm-v1-docs.txt'), 'vllm').found.servedModels, ['meta-llama/Llama-3.1-8B-Instruct']);
  assert.deepEqual(extractMetrics(readFixture('sglang-docs.txt'), 'sglang').found.servedModels, ['meta-llama/Llama-3.1-8B-Instruct']);
  assert.equal(extractMetrics(readFixture('triton-trtllm-docs.txt'), 'trt-llm').found.servedModels, undefined, 'Triton labels by model="tensorrt_llm", not model_name');
});
