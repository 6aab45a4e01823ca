/** The benchmark toolkit: a program beside the gateway that talks to it over HTTP only. */
export * from './arrivals.js';
export * from './client.js';
export * from './config.js';
export * from './prefix-cache.js';
export * from './progress.js';
export * from './report.js';
export * from './runner.js';
export * from './sse.js';
export * from './stats.js';
export * from './summary-text.js';
export { endpointShares, errorKey, summarize, summarizeByStage, type BenchSummary, type EndpointShare, type PrefixCacheDelta, type SummarizeOptions } from './summary.js';
export * from './svg.js';
export * from './workloads/index.js';
export { BENCH_HELP, runBenchCommand, type BenchIo } from './bench-command.js';
