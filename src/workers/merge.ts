import type { Readiness } from '../observability/admin-server.js';

/**
 * How the primary of `infergate serve --workers N` turns its workers' answers into the one answer
 * the admin port gives for the whole gateway. Pure functions over what the workers sent.
 */

/** One worker's answer to a question, or why there is none (not running, did not answer). */
export interface WorkerAnswer<T> {
  readonly worker: number;
  readonly pid: number | undefined;
  readonly body: T | undefined;
  /** Set when there is no body: `not running`, `did not answer within 2000 ms`, … */
  readonly missing?: string;
}

/** `/readyz` of the gateway: ready when every worker is; the first one that is not says why. */
export function mergeReadiness(answers: readonly WorkerAnswer<Readiness & Record<string, unknown>>[]): Readiness & { workers: unknown[] } {
  const workers = answers.map((a) => ({ worker: a.worker, pid: a.pid, ...(a.body ?? { ready: false, reason: a.missing ?? 'no answer' }) }));
  const notReady = workers.find((w) => w.ready !== true);
  const first = answers[0]?.body;
  return {
    ready: notReady === undefined && answers.length > 0,
    ...(notReady === undefined ? {} : { reason: `worker ${notReady.worker}: ${String(notReady.reason ?? 'not ready')}` }),
    ...(first?.version === undefined ? {} : { version: first.version }),
    workers,
  };
}

/** The parts of `/debug/endpoints` (gateway/debug-endpoints.ts) that the merge reads. */
interface DebugView {
  pools?: Array<{
    pool?: string;
    queued?: Record<string, number>;
    endpoints?: Array<{ address?: string; inFlight?: number; inFlightTokens?: number; pendingPrefillTokens?: number; inFlightByModel?: Record<string, number> }>;
  }>;
  prefixIndex?: unknown;
  version?: unknown;
}

/**
 * `/debug/endpoints` of the gateway: the first answering worker's view, with what the workers
 * hold apart added up (each endpoint's in-flight requests, tokens and pending prefill, each
 * pool's queue), and a `workers` list with each worker's own snapshot version, prefix index and
 * requests in flight. Everything else (scraped metrics, health, estimates) is that one worker's
 * view: every worker scrapes and judges the same servers.
 */
export function mergeDebug(answers: readonly WorkerAnswer<unknown>[]): unknown {
  const views = answers.filter((a) => a.body !== undefined && a.body !== null) as Array<WorkerAnswer<DebugView> & { body: DebugView }>;
  const base = views[0]?.body;
  const workers = answers.map((a) => {
    const v = a.body as DebugView | undefined | null;
    if (v === undefined || v === null) return { worker: a.worker, pid: a.pid, missing: a.missing ?? 'no answer' };
    let inFlight = 0;
    for (const p of v.pools ?? []) for (const e of p.endpoints ?? []) inFlight += e.inFlight ?? 0;
    return { worker: a.worker, pid: a.pid, version: v.version, prefixIndex: v.prefixIndex, inFlight };
  });
  if (base === undefined) return { pools: [], workers };
  for (const other of views.slice(1)) {
    for (const pool of other.body.pools ?? []) {
      const into = base.pools?.find((p) => p.pool === pool.pool);
      if (into === undefined) continue;
      if (into.queued !== undefined) for (const [band, n] of Object.entries(pool.queued ?? {})) into.queued[band] = (into.queued[band] ?? 0) + n;
      for (const e of pool.endpoints ?? []) {
        const target = into.endpoints?.find((t) => t.address === e.address);
        if (target === undefined) continue;
        target.inFlight = (target.inFlight ?? 0) + (e.inFlight ?? 0);
        target.inFlightTokens = (target.inFlightTokens ?? 0) + (e.inFlightTokens ?? 0);
        target.pendingPrefillTokens = (target.pendingPrefillTokens ?? 0) + (e.pendingPrefillTokens ?? 0);
        const byModel = (target.inFlightByModel ??= {});
        for (const [m, n] of Object.entries(e.inFlightByModel ?? {})) byModel[m] = (byModel[m] ?? 0) + n;
      }
    }
  }
  return { ...base, workers };
}
