import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFixture } from './fixtures.js';
import { familiesOf } from './shape.js';

const keys = (set: ReadonlySet<string> | undefined): string[] => [...(set ?? [])].sort();

test('familiesOf: names, declared types and label keys of the fixtures', () => {
  const v1 = familiesOf(readFixture('vllm-v1-docs.txt'));
  assert.deepEqual([...v1.keys()], [
    'vllm:num_requests_running',
    'vllm:generation_tokens_total',
    'vllm:request_success_total',
    'vllm:time_to_first_token_seconds',
  ]);
  assert.equal(v1.get('vllm:time_to_first_token_seconds')?.type, 'histogram');
  assert.deepEqual(keys(v1.get('vllm:time_to_first_token_seconds')?.labelKeys), ['le', 'model_name']);
  assert.deepEqual(keys(v1.get('vllm:request_success_total')?.labelKeys), ['finished_reason', 'model_name']);

  const v0 = familiesOf(readFixture('vllm-v0-lines.txt'));
  assert.equal(v0.get('vllm:cache_config_info')?.type, 'gauge');
  assert.ok(v0.get('vllm:cache_config_info')?.labelKeys.has('num_gpu_blocks'));

  const lora = familiesOf(readFixture('vllm-lora-info.txt'));
  assert.deepEqual(lora.get('vllm:lora_requests_info'), {
    type: undefined,
    labelKeys: new Set(['max_lora', 'running_lora_adapters', 'waiting_lora_adapters']),
  });

  const triton = familiesOf(readFixture('triton-trtllm-docs.txt'));
  assert.deepEqual(keys(triton.get('nv_trt_llm_kv_cache_block_metrics')?.labelKeys), ['kv_cache_block_type', 'model', 'version']);
  assert.equal(triton.size, 3);
});

test('familiesOf keeps declared families without samples and refuses broken pages', () => {
  assert.deepEqual(familiesOf('# TYPE a counter\n'), new Map([['a', { type: 'counter', labelKeys: new Set() }]]));
  assert.throws(() => familiesOf('ok 1\nbroken{\n'), /1 malformed line\(s\), first at line 2/);
});
