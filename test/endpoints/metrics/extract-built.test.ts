import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DIALECTS, detectDialect, resolveDialect, type DialectSpec } from '../../../src/endpoints/metrics/dialects.js';
import { extractMetrics } from '../../../src/endpoints/metrics/extract.js';
import { numeric } from './fixtures.js';

// HAND-BUILT pages. No complete published sample exists for vLLM >= 0.9.2 names, vLLM with
// several DP engines, Triton before 25.03, trtllm-serve or sglang:cache_config_info
// (test/fixtures/metrics/README.md, "Missing and why"), so these pages are written from the
// names and labels the runtimes' metric sources define (vLLM loggers.py, SGLang collector.py, trtllm-serve). Values are made up; shapes follow the table.

const page = (...lines: string[]): string => `${lines.join('\n')}\n`;
const M = 'model_name="meta-llama/Llama-3.1-8B-Instruct"';

test('vLLM >= 0.9.2 names are preferred over the deprecated ones when both are present', () => {
  const text = page(
    '# TYPE vllm:num_requests_waiting gauge',
    `vllm:num_requests_waiting{engine="0",${M}} 3.0`,
    `vllm:num_requests_running{engine="0",${M}} 7.0`,
    '# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.',
    '# TYPE vllm:gpu_cache_usage_perc gauge',
    `vllm:gpu_cache_usage_perc{engine="0",${M}} 0.9`,
    '# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.',
    '# TYPE vllm:kv_cache_usage_perc gauge',
    `vllm:kv_cache_usage_perc{engine="0",${M}} 0.42`,
    '# TYPE vllm:prefix_cache_queries_total counter',
    `vllm:prefix_cache_queries_total{engine="0",${M}} 5000.0`,
    '# TYPE vllm:prefix_cache_hits_total counter',
    `vllm:prefix_cache_hits_total{engine="0",${M}} 1250.0`,
    '# TYPE vllm:gpu_prefix_cache_queries_total counter',
    `vllm:gpu_prefix_cache_queries_total{engine="0",${M}} 1.0`,
    '# TYPE vllm:gpu_prefix_cache_hits_total counter',
    `vllm:gpu_prefix_cache_hits_total{engine="0",${M}} 1.0`,
    '# TYPE vllm:num_preemptions_total counter',
    `vllm:num_preemptions_total{engine="0",${M}} 2.0`,
  );
  const r = extractMetrics(text, 'vllm');
  assert.deepEqual(numeric(r.metrics), {
    waitingRequests: 3,
    runningRequests: 7,
    kvCacheUsage: 0.42,
    prefixCacheHitsTokens: 1250,
    prefixCacheQueriesTokens: 5000,
    preemptionsTotal: 2,
  });
  assert.deepEqual(r.problems, []);
});

test('vLLM 0.8-0.9.1 counters under the old names are read when the new ones are absent', () => {
  const text = page(
    'vllm:num_requests_waiting 0',
    'vllm:num_requests_running 1',
    'vllm:gpu_cache_usage_perc 0.1',
    'vllm:gpu_prefix_cache_queries_total 64',
    'vllm:gpu_prefix_cache_hits_total 16',
  );
  const m = extractMetrics(text, 'vllm').metrics;
  assert.equal(m?.prefixCacheQueriesTokens, 64);
  assert.equal(m?.prefixCacheHitsTokens, 16);
  assert.equal(m?.kvCacheUsage, 0.1);
});

test('vLLM v1 with two DP engines: queues and counters summed, KV max, blocks summed', () => {
  const cacheLabels = (engine: string, blocks: number): string =>
    // Label order differs between the two lines on purpose.
    engine === '0'
      ? `{block_size="16",cache_dtype="auto",engine="0",num_gpu_blocks="${blocks}"}`
      : `{num_gpu_blocks="${blocks}",engine="1",enable_prefix_caching="True",block_size="16"}`;
  const text = page(
    '# TYPE vllm:cache_config_info gauge',
    `vllm:cache_config_info${cacheLabels('0', 30000)} 1.0`,
    `vllm:cache_config_info${cacheLabels('1', 31000)} 1.0`,
    '# TYPE vllm:num_requests_waiting gauge',
    `vllm:num_requests_waiting{engine="0",${M}} 4.0`,
    `vllm:num_requests_waiting{${M},engine="1"} 1.0`,
    '# TYPE vllm:num_requests_running gauge',
    `vllm:num_requests_running{engine="0",${M}} 10.0`,
    `vllm:num_requests_running{engine="1",${M}} 12.0`,
    '# TYPE vllm:kv_cache_usage_perc gauge',
    `vllm:kv_cache_usage_perc{engine="0",${M}} 0.35`,
    `vllm:kv_cache_usage_perc{engine="1",${M}} 0.81`,
    '# TYPE vllm:prefix_cache_queries_total counter',
    `vllm:prefix_cache_queries_total{engine="0",${M}} 1000.0`,
    `vllm:prefix_cache_queries_total{engine="1",${M}} 3000.0`,
    '# TYPE vllm:prefix_cache_hits_total counter',
    `vllm:prefix_cache_hits_total{engine="0",${M}} 100.0`,
    `vllm:prefix_cache_hits_total{engine="1",${M}} 900.0`,
    '# TYPE vllm:num_preemptions_total counter',
    `vllm:num_preemptions_total{engine="0",${M}} 1.0`,
    `vllm:num_preemptions_total{engine="1",${M}} 2.0`,
    '# TYPE vllm:lora_requests_info gauge',
    'vllm:lora_requests_info{max_lora="4",running_lora_adapters="a",waiting_lora_adapters=""} 1.75e+09',
    'vllm:lora_requests_info{waiting_lora_adapters="c, d",max_lora="4",running_lora_adapters="a,b"} 1.750000001e+09',
  );
  const r = extractMetrics(text, 'vllm');
  assert.deepEqual(numeric(r.metrics), {
    waitingRequests: 5,
    runningRequests: 22,
    kvCacheUsage: 0.81,
    blockSize: 16,
    numGpuBlocks: 61000,
    lora: { maxLoras: 4, running: ['a', 'b'], waiting: ['c', 'd'] },
    prefixCacheHitsTokens: 1000,
    prefixCacheQueriesTokens: 4000,
    preemptionsTotal: 3,
  });
  assert.deepEqual(r.problems, []);
});

test('engines that disagree on block_size: a problem, no blockSize, blocks still summed', () => {
  const text = page(
    'vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="100"} 1.0',
    'vllm:cache_config_info{block_size="32",engine="1",num_gpu_blocks="50"} 1.0',
    'vllm:num_requests_waiting 0',
    'vllm:num_requests_running 0',
    'vllm:kv_cache_usage_perc 0',
  );
  const r = extractMetrics(text, 'vllm');
  assert.equal(r.metrics?.blockSize, undefined);
  assert.equal(r.metrics?.numGpuBlocks, 150);
  assert.deepEqual(r.problems, ['vllm:cache_config_info label block_size: series disagree (16, 32); ignored']);
});

test('unusable values: NaN queue fails the scrape, "None" labels and -1 hit rate are dropped', () => {
  const text = page(
    'vllm:cache_config_info{block_size="16",num_gpu_blocks="None"} 1.0',
    'vllm:num_requests_waiting NaN',
    'vllm:num_requests_running 2',
    'vllm:gpu_cache_usage_perc 0.5',
    'vllm:gpu_prefix_cache_hit_rate -1',
  );
  const r = extractMetrics(text, 'vllm');
  assert.equal(r.metrics, undefined);
  assert.deepEqual(numeric(r.found), { runningRequests: 2, kvCacheUsage: 0.5, blockSize: 16 });
  assert.deepEqual(r.problems, [
    'vllm:num_requests_waiting: value NaN ignored',
    'waitingRequests missing: no usable vllm:num_requests_waiting on the page',
    'vllm:cache_config_info label num_gpu_blocks: "None" is not a number; ignored',
  ]);
});

test('a KV value above 1 is clamped and reported', () => {
  const text = page('vllm:num_requests_waiting 0', 'vllm:num_requests_running 0', 'vllm:kv_cache_usage_perc 85');
  const r = extractMetrics(text, 'vllm');
  assert.equal(r.metrics?.kvCacheUsage, 1);
  assert.deepEqual(r.problems, ['kvCacheUsage: vllm:kv_cache_usage_perc is 85, above 1; clamped to 1']);
});

test('Triton before 25.03: waiting = active - scheduled, fraction = used / max (0 when max is 0)', () => {
  const triton = (requests: Record<string, number>, blocks: Record<string, number>): string =>
    page(
      '# TYPE nv_trt_llm_request_metrics gauge',
      ...Object.entries(requests).map(
        ([t, v]) => `nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="${t}",version="1"} ${v}`,
      ),
      '# TYPE nv_trt_llm_kv_cache_block_metrics gauge',
      ...Object.entries(blocks).map(
        ([t, v]) => `nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="${t}",model="tensorrt_llm",version="1"} ${v}`,
      ),
    );
  const cases = [
    {
      name: 'old backend',
      text: triton({ active: 9, scheduled: 6, max: 512, context: 1 }, { max: 400, used: 100, free: 300, tokens_per: 32 }),
      want: { waitingRequests: 3, runningRequests: 6, kvCacheUsage: 0.25, blockSize: 32, numGpuBlocks: 400 },
    },
    {
      name: 'old backend, no KV blocks yet',
      text: triton({ active: 0, scheduled: 0 }, { max: 0, used: 0, free: 0, tokens_per: 64 }),
      want: { waitingRequests: 0, runningRequests: 0, kvCacheUsage: 0, blockSize: 64, numGpuBlocks: 0 },
    },
    {
      name: 'new series win over the computed ones',
      text: triton({ active: 9, scheduled: 6, waiting: 2 }, { max: 400, used: 100, fraction: 0.3, tokens_per: 64 }),
      want: { waitingRequests: 2, runningRequests: 6, kvCacheUsage: 0.3, blockSize: 64, numGpuBlocks: 400 },
    },
  ];
  for (const c of cases) {
    const r = extractMetrics(c.text, 'trt-llm');
    assert.deepEqual(numeric(r.metrics), c.want, c.name);
    assert.deepEqual(r.problems, [], c.name);
  }
});

test('trtllm-serve page', () => {
  const L = 'engine_type="pytorch",model_name="Qwen/Qwen3-8B"';
  const text = page(
    '# HELP trtllm_num_requests_waiting Number of requests waiting.',
    '# TYPE trtllm_num_requests_waiting gauge',
    `trtllm_num_requests_waiting{${L}} 6.0`,
    '# TYPE trtllm_num_requests_running gauge',
    `trtllm_num_requests_running{${L}} 32.0`,
    '# TYPE trtllm_kv_cache_utilization gauge',
    `trtllm_kv_cache_utilization{${L}} 0.625`,
    '# TYPE trtllm_kv_cache_tokens_per_block gauge',
    `trtllm_kv_cache_tokens_per_block{${L}} 32.0`,
    '# TYPE trtllm_kv_cache_max_blocks gauge',
    `trtllm_kv_cache_max_blocks{${L}} 12000.0`,
    '# TYPE trtllm_kv_cache_hit_rate gauge',
    `trtllm_kv_cache_hit_rate{${L}} 0.5`,
    '# TYPE trtllm_time_to_first_token_seconds histogram',
    `trtllm_time_to_first_token_seconds_bucket{le="0.001",${L}} 0.0`,
    `trtllm_time_to_first_token_seconds_bucket{le="+Inf",${L}} 3.0`,
    `trtllm_time_to_first_token_seconds_count{${L}} 3.0`,
    `trtllm_time_to_first_token_seconds_sum{${L}} 0.3`,
  );
  const r = extractMetrics(text, 'trtllm-serve');
  assert.deepEqual(numeric(r.metrics), {
    waitingRequests: 6,
    runningRequests: 32,
    kvCacheUsage: 0.625,
    blockSize: 32,
    numGpuBlocks: 12000,
    prefixCacheHitRate: 0.5,
  });
  assert.equal(r.detected, 'trtllm-serve');
  assert.equal(detectDialect(text), 'trtllm-serve');
});

test('SGLang with cache_config_info; capacity and KV fallbacks', () => {
  const base = [
    'sglang:num_queue_reqs{model_name="m"} 0.0',
    'sglang:num_running_reqs{model_name="m"} 4.0',
  ];
  const cases = [
    {
      name: 'page_size and num_pages labels',
      lines: [...base, 'sglang:token_usage{model_name="m"} 0.5', 'sglang:cache_config_info{model_name="m",num_pages="5000",page_size="64"} 1.0'],
      want: { waitingRequests: 0, runningRequests: 4, kvCacheUsage: 0.5, blockSize: 64, numGpuBlocks: 5000 },
    },
    {
      name: 'page_size only: blocks from max_total_num_tokens',
      lines: [
        ...base,
        'sglang:token_usage{model_name="m"} 0.5',
        'sglang:cache_config_info{model_name="m",page_size="16"} 1.0',
        'sglang:max_total_num_tokens{model_name="m"} 320010.0',
      ],
      want: { waitingRequests: 0, runningRequests: 4, kvCacheUsage: 0.5, blockSize: 16, numGpuBlocks: 20000 },
    },
    {
      name: 'no token_usage: used / max tokens; no page size: no capacity',
      lines: [...base, 'sglang:num_used_tokens{model_name="m"} 1000.0', 'sglang:max_total_num_tokens{model_name="m"} 4000.0'],
      want: { waitingRequests: 0, runningRequests: 4, kvCacheUsage: 0.25 },
    },
  ];
  for (const c of cases) {
    const r = extractMetrics(page(...c.lines), 'sglang');
    assert.deepEqual(numeric(r.metrics), c.want, c.name);
    assert.deepEqual(r.problems, [], c.name);
  }
});

test('a missing required signal fails the scrape and names every metric tried', () => {
  const empty = '# nothing scraped yet\n';
  const want: Record<string, string[]> = {
    vllm: [
      'waitingRequests missing: no usable vllm:num_requests_waiting on the page',
      'runningRequests missing: no usable vllm:num_requests_running on the page',
      'kvCacheUsage missing: no usable vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc on the page',
    ],
    sglang: [
      'waitingRequests missing: no usable sglang:num_queue_reqs on the page',
      'runningRequests missing: no usable sglang:num_running_reqs on the page',
      'kvCacheUsage missing: no usable sglang:token_usage or (sglang:num_used_tokens / sglang:max_total_num_tokens) on the page',
    ],
    'trt-llm': [
      'waitingRequests missing: no usable nv_trt_llm_request_metrics{request_type="waiting"} or (nv_trt_llm_request_metrics{request_type="active"} - nv_trt_llm_request_metrics{request_type="scheduled"}) on the page',
      'runningRequests missing: no usable nv_trt_llm_request_metrics{request_type="scheduled"} on the page',
      'kvCacheUsage missing: no usable nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"} or (nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="used"} / nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max"}) on the page',
    ],
    'trtllm-serve': [
      'waitingRequests missing: no usable trtllm_num_requests_waiting on the page',
      'runningRequests missing: no usable trtllm_num_requests_running on the page',
      'kvCacheUsage missing: no usable trtllm_kv_cache_utilization or (trtllm_kv_cache_used_blocks / trtllm_kv_cache_max_blocks) on the page',
    ],
  };
  for (const spec of Object.values(DIALECTS)) {
    const r = extractMetrics(empty, spec.name);
    assert.equal(r.metrics, undefined, spec.name);
    assert.deepEqual(numeric(r.found), {}, spec.name);
    assert.deepEqual(r.problems, want[spec.name], spec.name);
    assert.equal(r.detected, undefined);
  }
  // Optional signals are simply absent: not problems.
  const minimal = page('vllm:num_requests_waiting 0', 'vllm:num_requests_running 0', 'vllm:kv_cache_usage_perc 0');
  const r = extractMetrics(minimal, 'vllm');
  assert.deepEqual(numeric(r.metrics), { waitingRequests: 0, runningRequests: 0, kvCacheUsage: 0 });
  assert.deepEqual(r.problems, []);
});

test('detection from metric-name prefixes', () => {
  const cases: [string, string | undefined][] = [
    ['vllm:num_requests_waiting 0\n', 'vllm'],
    ['# HELP x\nprocess_cpu_seconds_total 1\nsglang:num_queue_reqs 0\n', 'sglang'],
    ['nv_trt_llm_request_metrics{request_type="waiting"} 0\n', 'trt-llm'],
    ['trtllm_num_requests_waiting 0\n', 'trtllm-serve'],
    ['process_cpu_seconds_total 1\n', undefined],
    ['# TYPE vllm:num_requests_waiting gauge\n', undefined], // names in comments only do not count
    ['', undefined],
  ];
  for (const [text, want] of cases) assert.equal(detectDialect(text), want, JSON.stringify(text));
});

test('runtime names from config and pod labels', () => {
  const cases: [string | undefined, string | undefined][] = [
    [undefined, 'vllm'],
    ['', 'vllm'],
    ['vllm', 'vllm'],
    ['sglang', 'sglang'],
    ['trt-llm', 'trt-llm'],
    ['triton-tensorrt-llm', 'trt-llm'],
    ['trtllm-serve', 'trtllm-serve'],
    [' SGLang ', 'sglang'],
    ['tgi', undefined],
    ['constructor', undefined],
  ];
  for (const [input, want] of cases) assert.equal(resolveDialect(input), want, String(input));
});

test('a new runtime is a new spec, not new code', () => {
  const toy: DialectSpec = {
    name: 'vllm', // reuses a name only because Dialect is a closed union; the spec is what counts
    prefixes: ['toy_'],
    signals: {
      waitingRequests: [{ family: 'toy_queue', where: { state: 'waiting' } }],
      runningRequests: [{ family: 'toy_queue', where: { state: 'running' } }],
      kvCacheUsage: [{ derive: 'ratio', of: [{ family: 'toy_kv_used' }, { family: 'toy_kv_total' }] }],
    },
  };
  const text = page('toy_queue{state="waiting"} 2', 'toy_queue{state="running"} 3', 'toy_kv_used 1', 'toy_kv_total 4');
  assert.deepEqual(numeric(extractMetrics(text, toy).metrics), { waitingRequests: 2, runningRequests: 3, kvCacheUsage: 0.25 });
});
