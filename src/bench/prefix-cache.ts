import { Agent, request } from 'undici';
import type { PrefixCacheDelta } from './summary.js';

/*
 * The model servers' own prefix-cache counters, read before and after a run so the report can give
 * the hit rate the run caused. vLLM ≥ 0.9.2 exports `vllm:prefix_cache_{hits,queries}_total`,
 * 0.8.0–0.9.1 `vllm:gpu_prefix_cache_{hits,queries}_total` (both in tokens; vLLM vllm/engine/metrics.py, vllm/v1/metrics/loggers.py).
 * When a server exports both (the transition releases), only the newer pair is read, so nothing is
 * counted twice. Series are summed over their labels (model_name, engine = DP rank). A line-based
 * read is enough: these are plain counters, no histograms.
 */

const FAMILIES = [
  { hits: 'vllm:prefix_cache_hits_total', queries: 'vllm:prefix_cache_queries_total' },
  { hits: 'vllm:gpu_prefix_cache_hits_total', queries: 'vllm:gpu_prefix_cache_queries_total' },
] as const;

/** One server's counters, or why they could not be read. */
export type PrefixCacheCounters =
  | { readonly url: string; readonly hits: number; readonly queries: number; readonly family: string }
  | { readonly url: string; readonly error: string };

/** All servers' counters at one moment. */
export interface PrefixCacheScrape {
  readonly servers: readonly PrefixCacheCounters[];
  /** Sums over the servers that answered. */
  readonly hits: number;
  readonly queries: number;
}

/** `name` and value of a Prometheus text sample line; `undefined` for comments and junk. */
export function parseSampleLine(line: string): { name: string; value: number } | undefined {
  const text = line.trim();
  if (text === '' || text.startsWith('#')) return undefined;
  const brace = text.indexOf('{');
  const space = text.search(/\s/);
  let name: string;
  let rest: string;
  if (brace !== -1 && (space === -1 || brace < space)) {
    name = text.slice(0, brace);
    // The label block ends at the first `}` outside a quoted value (values may hold `}` or spaces).
    let i = brace + 1;
    let quoted = false;
    for (; i < text.length; i++) {
      const c = text[i];
      if (quoted && c === '\\') i++;
      else if (c === '"') quoted = !quoted;
      else if (c === '}' && !quoted) break;
    }
    rest = text.slice(i + 1);
  } else {
    if (space === -1) return undefined;
    name = text.slice(0, space);
    rest = text.slice(space);
  }
  const token = rest.trim().split(/\s+/)[0];
  if (token === undefined || token === '') return undefined;
  const value = Number(token === '+Inf' ? 'Infinity' : token === '-Inf' ? '-Infinity' : token);
  return Number.isNaN(value) && token !== 'NaN' ? undefined : { name, value };
}

/** Summed prefix-cache counters in a `/metrics` text; `undefined` when neither family is present. */
export function parsePrefixCacheCounters(text: string): { hits: number; queries: number; family: string } | undefined {
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sample = parseSampleLine(line);
    if (sample === undefined || !Number.isFinite(sample.value)) continue;
    sums.set(sample.name, (sums.get(sample.name) ?? 0) + sample.value);
  }
  for (const f of FAMILIES) {
    const queries = sums.get(f.queries);
    if (queries === undefined) continue;
    return { hits: sums.get(f.hits) ?? 0, queries, family: f.queries.replace(/_queries_total$/, '') };
  }
  return undefined;
}

/** `http://host:port` → `http://host:port/metrics`; a URL with a path is used as given. */
export function metricsUrl(url: string): string {
  const u = new URL(url);
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/metrics';
  return u.toString();
}

/**
 * Reads every server's `/metrics` once, concurrently, with a per-server timeout (default 10 s, the
 * gateway's scrape timeout). A server that fails or lacks the counters is reported, not thrown.
 */
export async function scrapePrefixCacheStats(urls: readonly string[], options: { timeoutMs?: number } = {}): Promise<PrefixCacheScrape> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const agent = new Agent({ connections: 1, keepAliveTimeout: 1000 });
  try {
    const servers = await Promise.all(
      urls.map(async (url): Promise<PrefixCacheCounters> => {
        try {
          const res = await request(metricsUrl(url), { dispatcher: agent, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) });
          const text = await res.body.text();
          if (res.statusCode !== 200) return { url, error: `HTTP ${res.statusCode}` };
          const counters = parsePrefixCacheCounters(text);
          return counters === undefined ? { url, error: 'no vllm:prefix_cache_* or vllm:gpu_prefix_cache_* counters' } : { url, ...counters };
        } catch (err) {
          return { url, error: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    let hits = 0;
    let queries = 0;
    for (const s of servers) {
      if ('error' in s) continue;
      hits += s.hits;
      queries += s.queries;
    }
    return { servers, hits, queries };
  } finally {
    await agent.close();
  }
}

/**
 * The run's prefix-cache activity: after − before per server (matched by URL), summed over servers
 * that answered both times. A counter that went down means the server restarted; its `after`
 * value is then the activity since the restart.
 */
export function prefixCacheDelta(before: PrefixCacheScrape, after: PrefixCacheScrape): PrefixCacheDelta {
  const earlier = new Map(before.servers.map((s) => [s.url, s]));
  let hits = 0;
  let queries = 0;
  let servers = 0;
  for (const a of after.servers) {
    const b = earlier.get(a.url);
    if (b === undefined || 'error' in a || 'error' in b) continue;
    const restarted = a.queries < b.queries || a.hits < b.hits;
    hits += restarted ? a.hits : a.hits - b.hits;
    queries += restarted ? a.queries : a.queries - b.queries;
    servers++;
  }
  return { hits, queries, hitRate: queries > 0 ? hits / queries : undefined, servers };
}
