/** `/metrics` pages per runtime. */
import type { SimRuntime } from '../runtimes.js';
import type { MetricsContext, MetricsPage } from './page.js';
import { SglangMetricsPage } from './sglang.js';
import { TritonMetricsPage } from './triton.js';
import { VllmMetricsPage } from './vllm.js';

export { METRICS_CONTENT_TYPE, NO_OBSERVER, statsUnder, type MetricsContext, type MetricsFault, type MetricsPage, type RequestObserver } from './page.js';
export { HttpRequestCounts, pythonProcessSeries } from './process.js';
export { cppFloat, pyFloat } from './format.js';
export { SGLANG_TPOT_BUCKETS_S, SGLANG_TTFT_BUCKETS_S } from './sglang.js';

/** The `/metrics` page of `runtime` for one engine. */
export function createMetricsPage(runtime: SimRuntime, ctx: MetricsContext): MetricsPage {
  switch (runtime) {
    case 'vllm':
      return new VllmMetricsPage(ctx, 'v1');
    case 'vllm-v0':
      return new VllmMetricsPage(ctx, 'v0');
    case 'sglang':
      return new SglangMetricsPage(ctx);
    case 'trtllm':
      return new TritonMetricsPage(ctx);
  }
}
