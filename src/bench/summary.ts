import type { RequestRecord } from './runner.js';
import { distribution, type Distribution } from './stats.js';

/*
 * The numbers a benchmark table shows, computed from the records alone so they can be recomputed
 * from a results file. Latency distributions cover successful requests only: a refused request's
 * 2 ms "latency" would flatter the system that refuses. Inter-token latencies are pooled over all
 * gaps of all successful requests (each gap is one sample), as vLLM's benchmark does.
 */

/** One endpoint's part of the responses. */
export interface EndpointShare {
  /** The endpoint header's value; `(none)` for responses without it. */
  readonly endpoint: string;
  readonly requests: number;
  /** requests / all responses; the shares sum to 1. */
  readonly share: number;
}

/** Prefix-cache activity during a run, in tokens (from model servers' counters). */
export interface PrefixCacheDelta {
  readonly hits: number;
  readonly queries: number;
  /** hits / queries; `undefined` when there were no queries. */
  readonly hitRate: number | undefined;
  /** Metrics URLs that answered both before and after. */
  readonly servers: number;
}

/** The summary of one run. */
export interface BenchSummary {
  /** Requests sent. */
  readonly requests: number;
  readonly ok: number;
  readonly failed: number;
  /** Failures by kind: `http 429`, `http 503`, `connection`, `timeout`, `stream`, `aborted`. */
  readonly errorsByKind: Readonly<Record<string, number>>;
  /** The measured window: first send to last completion (or as given). */
  readonly durationS: number;
  /** Successful requests per second over the window. */
  readonly requestsPerS: number;
  /** Output tokens of successful requests per second over the window. */
  readonly outputTokensPerS: number;
  readonly outputTokens: number;
  /** Sum of `usage.prompt_tokens` of successful requests (0 when no server reported usage). */
  readonly promptTokens: number;
  readonly ttftMs: Distribution | undefined;
  readonly itlMs: Distribution | undefined;
  readonly e2eMs: Distribution | undefined;
  /** Per endpoint, by name. */
  readonly endpoints: readonly EndpointShare[];
  /** Present when metrics URLs were scraped before and after. */
  readonly prefixCache?: PrefixCacheDelta;
}

/** The error-count key of a failed record: `http <status>` or the kind. */
export function errorKey(record: Pick<RequestRecord, 'errorKind' | 'status'>): string {
  return record.errorKind === 'http' ? `http ${record.status}` : (record.errorKind ?? 'unknown');
}

const byName = new Intl.Collator('en', { numeric: true });

/**
 * Per-endpoint request share over every record that received an HTTP response (failures included:
 * a 503 from an endpoint is still traffic it was sent), keyed by the endpoint header's value.
 */
export function endpointShares(records: readonly RequestRecord[]): EndpointShare[] {
  const counts = new Map<string, number>();
  let total = 0;
  for (const r of records) {
    if (r.status === 0) continue;
    const key = r.endpoint ?? '(none)';
    counts.set(key, (counts.get(key) ?? 0) + 1);
    total++;
  }
  return [...counts.entries()]
    .sort(([a], [b]) => byName.compare(a, b))
    .map(([endpoint, requests]) => ({ endpoint, requests, share: requests / total }));
}

/** Options of {@link summarize}. */
export interface SummarizeOptions {
  /** The measured window; default first send to last completion. */
  readonly durationMs?: number;
  readonly prefixCache?: PrefixCacheDelta;
}

/** Summarises a run's records. */
export function summarize(records: readonly RequestRecord[], options: SummarizeOptions = {}): BenchSummary {
  const ok = records.filter((r) => r.ok);
  const errorsByKind: Record<string, number> = {};
  for (const r of records) {
    if (r.ok) continue;
    const key = errorKey(r);
    errorsByKind[key] = (errorsByKind[key] ?? 0) + 1;
  }
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  for (const r of records) {
    first = Math.min(first, r.startMs);
    last = Math.max(last, r.endMs);
  }
  const durationMs = options.durationMs ?? (records.length > 0 ? last - first : 0);
  const durationS = durationMs / 1000;
  const outputTokens = ok.reduce((sum, r) => sum + r.outputTokens, 0);
  const promptTokens = ok.reduce((sum, r) => sum + (r.promptTokens ?? 0), 0);
  const perS = (n: number): number => (durationS > 0 ? n / durationS : 0);
  return {
    requests: records.length,
    ok: ok.length,
    failed: records.length - ok.length,
    errorsByKind,
    durationS,
    requestsPerS: perS(ok.length),
    outputTokensPerS: perS(outputTokens),
    outputTokens,
    promptTokens,
    ttftMs: distribution(ok.flatMap((r) => (r.ttftMs === undefined ? [] : [r.ttftMs]))),
    itlMs: distribution(ok.flatMap((r) => r.itlMs)),
    e2eMs: distribution(ok.map((r) => r.e2eMs)),
    endpoints: endpointShares(records),
    ...(options.prefixCache === undefined ? {} : { prefixCache: options.prefixCache }),
  };
}

/** Summaries per sweep stage (stage index → summary), each over its own window. */
export function summarizeByStage(records: readonly RequestRecord[]): Map<number, BenchSummary> {
  const stages = new Map<number, RequestRecord[]>();
  for (const r of records) {
    const list = stages.get(r.stage) ?? [];
    list.push(r);
    stages.set(r.stage, list);
  }
  return new Map([...stages.entries()].sort(([a], [b]) => a - b).map(([stage, list]) => [stage, summarize(list)]));
}

export {
  metricsUrl,
  parsePrefixCacheCounters,
  prefixCacheDelta,
  scrapePrefixCacheStats,
  type PrefixCacheCounters,
  type PrefixCacheScrape,
} from './prefix-cache.js';
