import assert from 'node:assert/strict';
import { test } from 'node:test';
import { extractMetrics } from '../../../src/endpoints/metrics/extract.js';
import { numeric } from './fixtures.js';
import { scanMetrics } from '../../../src/endpoints/metrics/prometheus-text.js';

// A realistic-size vLLM v1 page (two DP engines, every histogram with its full v1 bucket list
// from vLLM's vllm/v1/metrics/loggers.py), built here because no published page is complete. This checks that a
// page of the size the gateway scrapes every 50 ms parses and yields the right numbers; speed
// belongs in bench/, not in a timed test.

const TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];
const ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const LATENCY = [0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20, 30, 40, 50, 60, 120, 240, 480, 960, 1920, 7680];
const TOKENS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

function bigVllmPage(): string {
  const out: string[] = [];
  const engines = ['0', '1'];
  const labels = (e: string): string => `engine="${e}",model_name="meta-llama/Llama-3.1-8B-Instruct"`;
  const family = (name: string, type: string, help: string, line: (e: string, i: number) => string): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    engines.forEach((e, i) => out.push(line(e, i)));
  };
  const gauge = (name: string, values: [number, number]): void =>
    family(name, 'gauge', `Gauge ${name}.`, (e, i) => `${name}{${labels(e)}} ${values[i]}`);
  const counter = (name: string, values: [number, number]): void =>
    family(name, 'counter', `Counter ${name}.`, (e, i) => `${name}{${labels(e)}} ${values[i]}`);
  const histogram = (name: string, buckets: number[]): void => {
    out.push(`# HELP ${name} Histogram of ${name}.`, `# TYPE ${name} histogram`);
    for (const e of engines) {
      let cumulative = 0;
      for (const le of buckets) {
        cumulative += 3;
        out.push(`${name}_bucket{${labels(e)},le="${le.toFixed(le < 1 ? 3 : 1)}"} ${cumulative}.0`);
      }
      out.push(`${name}_bucket{${labels(e)},le="+Inf"} ${cumulative}.0`);
      out.push(`${name}_count{${labels(e)}} ${cumulative}.0`);
      out.push(`${name}_sum{${labels(e)}} 1.2345678901234e+03`);
    }
  };
  out.push('# HELP python_gc_objects_collected_total Objects collected during gc', '# TYPE python_gc_objects_collected_total counter');
  for (const g of ['0', '1', '2']) out.push(`python_gc_objects_collected_total{generation="${g}"} 12345.0`);
  out.push('# TYPE vllm:cache_config_info gauge');
  for (const e of engines) {
    out.push(`vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",engine="${e}",gpu_memory_utilization="0.9",num_cpu_blocks="0",num_gpu_blocks="27000"} 1.0`);
  }
  gauge('vllm:num_requests_running', [11, 13]);
  gauge('vllm:num_requests_waiting', [2, 0]);
  gauge('vllm:kv_cache_usage_perc', [0.61, 0.57]);
  counter('vllm:prefix_cache_queries_total', [90000, 110000]);
  counter('vllm:prefix_cache_hits_total', [40000, 60000]);
  counter('vllm:num_preemptions_total', [0, 1]);
  counter('vllm:prompt_tokens_total', [1.2e6, 1.3e6]);
  counter('vllm:generation_tokens_total', [3.4e5, 3.5e5]);
  histogram('vllm:time_to_first_token_seconds', TTFT);
  histogram('vllm:inter_token_latency_seconds', ITL);
  histogram('vllm:time_per_output_token_seconds', ITL);
  for (const h of ['e2e_request_latency', 'request_queue_time', 'request_prefill_time', 'request_decode_time', 'request_inference_time']) {
    histogram(`vllm:${h}_seconds`, LATENCY);
  }
  for (const h of ['request_prompt_tokens', 'request_generation_tokens', 'iteration_tokens_total', 'request_params_max_tokens']) {
    histogram(`vllm:${h}`, TOKENS);
  }
  return `${out.join('\n')}\n`;
}

test('a 60 KB vLLM page with full histograms parses and yields its signals', () => {
  const text = bigVllmPage();
  assert.ok(text.length > 60_000, `page is ${text.length} chars`);
  const r = extractMetrics(text, 'vllm');
  assert.equal(r.malformedLines, 0);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(numeric(r.metrics), {
    waitingRequests: 2,
    runningRequests: 24,
    kvCacheUsage: 0.61,
    blockSize: 16,
    numGpuBlocks: 54000,
    prefixCacheHitsTokens: 100000,
    prefixCacheQueriesTokens: 200000,
    preemptionsTotal: 1,
  });
  const all = scanMetrics(text, 'all');
  assert.equal(all.malformedLines, 0);
  assert.equal(all.families.size, 22);
  assert.equal(all.families.get('vllm:time_to_first_token_seconds')?.length, 2 * (TTFT.length + 3));
});
