import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { extractMetrics, type Dialect } from '../../src/endpoints/metrics/index.js';
import { createMetricsPage, pyFloat, type RunningSimServer, type SimRuntime } from '../../src/sim/index.js';
import { familiesOf } from '../endpoints/metrics/shape.js';
import { filler, post, scrape, tinyServer, until, type Completion } from './helpers.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/metrics/', import.meta.url));
const fixture = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'utf8');

const DIALECT: { readonly [R in SimRuntime]: Dialect } = { vllm: 'vllm', 'vllm-v0': 'vllm', sglang: 'sglang', trtllm: 'trt-llm' };

/**
 * Which published samples each runtime's page must match, family by family (same type, same label
 * keys). vLLM V1 pages carry `engine` besides `model_name` (the V1 docs sample predates it: see
 * test/fixtures/metrics/README.md), except on `lora_requests_info`. `vllm:gpu_cache_usage_perc`
 * is the V0 name of the KV signal; V1 ≥ 0.9.2 reports `vllm:kv_cache_usage_perc` instead.
 */
const SHAPES: ReadonlyArray<{ runtime: SimRuntime; file: string; skip?: readonly string[]; addEngine?: boolean }> = [
  { runtime: 'vllm', file: 'vllm-v1-docs.txt', addEngine: true },
  { runtime: 'vllm', file: 'vllm-v0-lines.txt', skip: ['vllm:gpu_cache_usage_perc'], addEngine: true },
  { runtime: 'vllm', file: 'vllm-lora-info.txt' },
  { runtime: 'vllm-v0', file: 'vllm-v0-lines.txt' },
  { runtime: 'vllm-v0', file: 'vllm-v1-docs.txt' },
  { runtime: 'vllm-v0', file: 'vllm-lora-info.txt' },
  { runtime: 'sglang', file: 'sglang-docs.txt' },
  { runtime: 'trtllm', file: 'triton-trtllm-docs.txt' },
];

/** A server with a little history, so that every family has samples. */
async function warmServer(runtime: SimRuntime): Promise<RunningSimServer> {
  const s = await tinyServer({ runtime, loras: ['ad-1'] });
  for (const model of ['mymodel', 'ad-1']) {
    const r = await post(s, '/v1/completions', { model, prompt: filler(40), max_tokens: 4 });
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  }
  return s;
}

describe('/metrics text', () => {
  for (const { runtime, file, skip = [], addEngine = false } of SHAPES) {
    test(`${runtime}: every family of ${file} has the same type and label keys`, async () => {
      const s = await warmServer(runtime);
      try {
        const page = familiesOf(await scrape(s));
        for (const [name, want] of familiesOf(fixture(file))) {
          if (skip.includes(name)) {
            assert.equal(page.has(name), false, `${name} is not a ${runtime} family`);
            continue;
          }
          const got = page.get(name);
          assert.ok(got !== undefined, `${runtime} page lacks ${name}`);
          if (want.type !== undefined) assert.equal(got.type, want.type, `${name} type`);
          const keys = new Set(want.labelKeys);
          if (addEngine && name !== 'vllm:lora_requests_info') keys.add('engine');
          assert.deepEqual([...got.labelKeys].sort(), [...keys].sort(), `${name} label keys`);
        }
      } finally {
        await s.close();
      }
    });
  }

  test('the ≥ 0.9.2 vLLM names on V1, the old ones on V0; SGLang and Triton extras (vLLM, SGLang and Triton metric names)', async () => {
    const families = async (runtime: SimRuntime): Promise<Map<string, { type: string | undefined; labelKeys: ReadonlySet<string> }>> => {
      const s = await warmServer(runtime);
      try {
        return familiesOf(await scrape(s));
      } finally {
        await s.close();
      }
    };
    const v1 = await families('vllm');
    for (const [name, type] of [
      ['vllm:kv_cache_usage_perc', 'gauge'],
      ['vllm:prefix_cache_queries_total', 'counter'],
      ['vllm:prefix_cache_hits_total', 'counter'],
      ['vllm:num_preemptions_total', 'counter'],
      ['vllm:inter_token_latency_seconds', 'histogram'],
      ['vllm:e2e_request_latency_seconds', 'histogram'],
      ['vllm:request_queue_time_seconds', 'histogram'],
      ['vllm:prompt_tokens_total', 'counter'],
      ['vllm:cache_config_info', 'gauge'],
    ] as const) {
      assert.equal(v1.get(name)?.type, type, name);
    }
    assert.ok(v1.get('vllm:cache_config_info')?.labelKeys.has('engine'));
    assert.equal(v1.has('vllm:gpu_cache_usage_perc'), false);
    assert.equal(v1.has('vllm:time_per_output_token_seconds'), false);

    const v0 = await families('vllm-v0');
    for (const name of ['vllm:gpu_cache_usage_perc', 'vllm:gpu_prefix_cache_hit_rate', 'vllm:time_per_output_token_seconds', 'vllm:num_preemptions_total']) {
      assert.ok(v0.has(name), name);
    }
    assert.equal(v0.has('vllm:kv_cache_usage_perc'), false);
    assert.equal(v0.get('vllm:num_requests_running')?.labelKeys.has('engine'), false);

    const sg = await families('sglang');
    for (const name of ['sglang:max_total_num_tokens', 'sglang:num_retracted_reqs', 'sglang:time_per_output_token_seconds', 'sglang:e2e_request_latency_seconds']) {
      assert.ok(sg.has(name), name);
    }
    assert.deepEqual([...(sg.get('sglang:cache_config_info')?.labelKeys ?? [])].sort(), ['num_pages', 'page_size']);

    const tr = await families('trtllm');
    for (const name of ['nv_inference_request_success', 'nv_inference_count', 'nv_inference_queue_duration_us', 'nv_trt_llm_general_metrics']) assert.ok(tr.has(name), name);
  });

  test('vLLM V1 prints lora_requests_info only with LoRA enabled; V0 always, max_lora="0" when off', async () => {
    const v1 = await tinyServer({ runtime: 'vllm' });
    const v0 = await tinyServer({ runtime: 'vllm-v0' });
    try {
      assert.equal(familiesOf(await scrape(v1)).has('vllm:lora_requests_info'), false);
      assert.match(await scrape(v0), /^vllm:lora_requests_info\{max_lora="0",running_lora_adapters="",waiting_lora_adapters=""\} \d\.\d+e\+09$/m);
    } finally {
      await v1.close();
      await v0.close();
    }
  });

  test('numbers are printed as prometheus_client prints them', () => {
    assert.equal(pyFloat(0), '0.0');
    assert.equal(pyFloat(8), '8.0');
    assert.equal(pyFloat(0.28), '0.28');
    assert.equal(pyFloat(27453), '27453.0');
    assert.equal(pyFloat(8128902), '8.128902e+06');
    assert.equal(pyFloat(1738217335.8407154), '1.7382173358407154e+09');
    assert.equal(pyFloat(10_000_000), '1e+07');
    assert.equal(pyFloat(Infinity), '+Inf');
  });
});

describe('/metrics → the gateway extractor', () => {
  /** Renders the runtime's page and reads the engine in the same tick, so both see one state. */
  function sameTick(s: RunningSimServer, runtime: SimRuntime, loraEnabled: boolean): { text: string; stats: ReturnType<RunningSimServer['engine']['stats']> } {
    const page = createMetricsPage(runtime, { engine: s.engine, modelName: 'mymodel', loraEnabled });
    return { text: page.render(), stats: s.engine.stats() };
  }

  for (const runtime of ['vllm', 'vllm-v0', 'sglang', 'trtllm'] as const) {
    test(`${runtime}: waiting, running, KV use and capacity read back exactly, under load and after`, async () => {
      // 20 ms steps at 5× real time: 20 requests of 128 tokens on 8 sequences keep a queue for about
      // a second, so requests that reach the server far apart on a busy machine still queue.
      const s = await tinyServer({ runtime, timeScale: 5, overrides: { decodeFloorMs: 20 } });
      try {
        const all = Array.from({ length: 20 }, (_, i) => post(s, '/v1/completions', { model: 'mymodel', prompt: filler(30, i + 1), max_tokens: 128, ignore_eos: true }));
        await until('a queue', () => (s.engine.stats().waiting > 0 && s.engine.stats().running > 0 ? true : undefined));
        const busy = sameTick(s, runtime, false);
        const m = extractMetrics(busy.text, DIALECT[runtime]);
        assert.deepEqual(m.problems, []);
        assert.ok(m.metrics !== undefined);
        const waiting = runtime === 'trtllm' ? busy.stats.waiting + busy.stats.arriving : busy.stats.waiting;
        assert.equal(m.metrics.waitingRequests, waiting);
        assert.ok(m.metrics.waitingRequests > 0);
        assert.equal(m.metrics.runningRequests, busy.stats.running);
        assert.ok(Math.abs(m.metrics.kvCacheUsage - busy.stats.kvUsage) < 1e-12);
        assert.ok(m.metrics.kvCacheUsage > 0);
        assert.equal(m.metrics.blockSize, 16);
        assert.equal(m.metrics.numGpuBlocks, 128);
        if (runtime !== 'trtllm') assert.deepEqual(m.metrics.servedModels, ['mymodel']);

        for (const r of await Promise.all(all)) assert.equal(r.status, 200);

        // The HTTP page says the same kind of thing while requests run: longer ones this time
        // (about 2 s of wall time at 5×), so a scrape delayed by a busy machine still lands in it.
        let done = false;
        const longer = Promise.all(Array.from({ length: 20 }, (_, i) => post(s, '/v1/completions', { model: 'mymodel', prompt: filler(30, i + 1), max_tokens: 160, ignore_eos: true }))).finally(() => {
          done = true;
        });
        let seenRunning = 0;
        while (!done && seenRunning === 0) seenRunning = extractMetrics(await scrape(s), DIALECT[runtime]).metrics?.runningRequests ?? 0;
        for (const r of await longer) assert.equal(r.status, 200);
        assert.ok(seenRunning > 0, 'the scraped page showed the running requests');
        const idle = extractMetrics(await scrape(s), DIALECT[runtime]).metrics;
        assert.equal(idle?.waitingRequests, 0);
        assert.equal(idle?.runningRequests, 0);
        assert.equal(idle?.kvCacheUsage, 0);
      } finally {
        await s.close();
      }
    });
  }

  test('KV cache through HTTP: a second request with the same long prefix has a lower TTFT and raises the prefix hits', async () => {
    const s = await tinyServer({ runtime: 'vllm' });
    try {
      const system = { role: 'system', content: filler(300, 7) };
      const ask = (q: string): Promise<Response> => post(s, '/v1/chat/completions', { model: 'mymodel', max_tokens: 4, messages: [system, { role: 'user', content: q }] });
      const first = await ask('first question about caching');
      const firstBody = (await first.json()) as Completion;
      const before = extractMetrics(await scrape(s), 'vllm').metrics;
      const second = await ask('a different second question');
      const secondBody = (await second.json()) as Completion;
      const after = extractMetrics(await scrape(s), 'vllm').metrics;

      const cached = secondBody.usage.prompt_tokens_details?.cached_tokens ?? 0;
      assert.equal(firstBody.usage.prompt_tokens_details?.cached_tokens, 0);
      assert.ok(cached >= 256 && cached % 16 === 0, `cached ${cached} of ${secondBody.usage.prompt_tokens}`);
      assert.equal(second.headers.get('x-sim-cached-tokens'), String(cached));
      assert.ok(Number(second.headers.get('x-sim-ttft-ms')) < Number(first.headers.get('x-sim-ttft-ms')) / 2, 'modelled TTFT falls');
      assert.equal((after?.prefixCacheHitsTokens ?? 0) - (before?.prefixCacheHitsTokens ?? 0), cached);
      assert.equal((after?.prefixCacheQueriesTokens ?? 0) - (before?.prefixCacheQueriesTokens ?? 0), secondBody.usage.prompt_tokens);
    } finally {
      await s.close();
    }
  });

  test('preemption: with a KV cache too small for the batch, num_preemptions rises and every request still completes', async () => {
    const s = await tinyServer({ runtime: 'vllm', overrides: { numGpuBlocks: 24, maxModelLen: 384 } });
    try {
      const results = await Promise.all(
        Array.from({ length: 6 }, async (_, i) => {
          const r = await post(s, '/v1/completions', { model: 'mymodel', prompt: filler(40, i + 3), max_tokens: 120, ignore_eos: true });
          return (await r.json()) as Completion;
        }),
      );
      assert.ok(results.every((r) => r.usage.completion_tokens === 120));
      const m = extractMetrics(await scrape(s), 'vllm').metrics;
      assert.ok((m?.preemptionsTotal ?? 0) > 0, `preemptions ${m?.preemptionsTotal}`);
      assert.equal(m?.numGpuBlocks, 24);
      assert.equal(m?.kvCacheUsage, 0);
    } finally {
      await s.close();
    }
  });

  test('LoRA slots: with max_loras 1 a second adapter waits, and lora_requests_info says so', async () => {
    const s = await tinyServer({ runtime: 'vllm', loras: ['ad-a', 'ad-b'], maxLoras: 1, timeScale: 4, overrides: { decodeFloorMs: 40 } });
    try {
      // ad-a decodes for about 10 s of real time (1,000 tokens × 40 ms / 4; the tiny profile's context
      // is 1,024 tokens): however busy the machine,
      // ad-b is still waiting when /metrics is read. Its client then leaves, which frees the slot.
      const leave = new AbortController();
      const a = post(s, '/v1/completions', { model: 'ad-a', prompt: 'one', max_tokens: 1_000, ignore_eos: true, stream: true }, {}, leave.signal);
      await until('ad-a running', () => (s.engine.stats().lora.running.includes('ad-a') ? true : undefined));
      const b = post(s, '/v1/completions', { model: 'ad-b', prompt: 'two', max_tokens: 4 });
      const lora = await until('ad-b waiting on /metrics', async () => {
        const l = extractMetrics(await scrape(s), 'vllm').metrics?.lora;
        return l !== undefined && l.waiting.includes('ad-b') ? l : undefined;
      });
      assert.deepEqual(lora, { maxLoras: 1, running: ['ad-a'], waiting: ['ad-b'] });
      assert.equal((await a).status, 200);
      leave.abort();
      assert.equal((await b).status, 200, 'ad-b runs once ad-a is gone');
      const idle = extractMetrics(await scrape(s), 'vllm');
      assert.deepEqual(idle.metrics?.lora, { maxLoras: 1, running: [], waiting: [] }, 'the newest series wins');
      assert.ok(((await scrape(s)).match(/^vllm:lora_requests_info\{/gm) ?? []).length >= 2, 'older label combinations stay on the page');
    } finally {
      await s.close();
    }
  });
});
