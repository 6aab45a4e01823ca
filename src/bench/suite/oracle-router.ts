import { createServer, request as httpRequest, Agent as HttpAgent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

/*
 * The benchmark's ORACLE: a placement that knows every pod's actual prefix cache. For each
 * request it asks every simulated pod (`POST /debug/prefix-match`, src/sim/prefix-match.ts, only
 * served with `infergate sim --debug-prefix-match`) how many of the request's prompt tokens it
 * would serve from its cache right now, and forwards the request to the pod with the most; ties
 * (no hit anywhere included) go to the least loaded pod (running + waiting requests as the pod
 * reports them, then the requests this router has in flight there, then the lowest index).
 *
 * It is the reference for the hit rate a router can reach by choosing pods, not a product: it
 * costs one extra round trip to EVERY pod per request, with the whole body, and each pod
 * tokenises the prompt once more to answer; no real model server offers such a query. It is the
 * best choice per request, not over a run (greedy, exact at decision time only): two requests of
 * a new prefix arriving together both see no hit and may land apart, and what a pod caches can
 * still be evicted before the request is admitted, so a router that weighs load as well can come
 * out slightly above it.
 */

/** Largest request body forwarded (the simulator's own limit). */
const MAX_BODY_BYTES = 32 * 1024 * 1024;
/** Per-pod deadline of a prefix-match query; a pod that misses it counts as no hit. */
const MATCH_TIMEOUT_MS = 10_000;

/** What one pod answered. */
interface PodMatch {
  readonly cachedTokens: number;
  readonly load: number;
}

/** The router's counters, `GET /oracle/stats`. */
export interface OracleStats {
  readonly requests: number;
  /** Prefix-match queries sent (requests × pods) and how many failed. */
  readonly queries: number;
  readonly failedQueries: number;
  /** Mean wall-clock ms from a request's body read to its pod chosen (all queries answered). */
  readonly meanDecisionMs: number;
  /** Requests forwarded to each pod. */
  readonly perPod: readonly number[];
}

export interface OracleRouter {
  readonly url: string;
  stats(): OracleStats;
  close(): Promise<void>;
}

/**
 * The index of the best pod: most cached tokens, then least reported load, then fewest of this
 * router's requests in flight, then the lowest index. Pure, for tests.
 */
export function bestPod(matches: readonly (PodMatch | undefined)[], inFlight: readonly number[]): number {
  let best = -1;
  for (let i = 0; i < matches.length; i++) {
    const m = matches[i];
    if (m === undefined) continue;
    if (best === -1) {
      best = i;
      continue;
    }
    const b = matches[best] as PodMatch;
    const better =
      m.cachedTokens !== b.cachedTokens
        ? m.cachedTokens > b.cachedTokens
        : m.load !== b.load
          ? m.load < b.load
          : (inFlight[i] ?? 0) < (inFlight[best] ?? 0);
    if (better) best = i;
  }
  // Every query failed: the least busy by this router's own count.
  if (best === -1) best = inFlight.reduce((bi, v, i) => (v < (inFlight[bi] ?? Infinity) ? i : bi), 0);
  return best;
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Starts the oracle in front of `pods` (`http://host:port` each) on `host:port` (0 = any free port). */
export async function startOracleRouter(options: { readonly pods: readonly string[]; readonly host?: string; readonly port?: number }): Promise<OracleRouter> {
  const pods = options.pods.map((p) => new URL(p));
  if (pods.length === 0) throw new Error('the oracle needs at least one pod');
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 256 });
  const inFlight = pods.map(() => 0);
  const perPod = pods.map(() => 0);
  let requests = 0;
  let queries = 0;
  let failedQueries = 0;
  let decisionMs = 0;

  const match = async (pod: URL, body: Buffer): Promise<PodMatch | undefined> => {
    queries++;
    try {
      const res = await fetch(new URL('/debug/prefix-match', pod), { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(MATCH_TIMEOUT_MS) });
      const answer = (await res.json()) as { cachedTokens?: unknown; running?: unknown; waiting?: unknown };
      if (res.status !== 200 || typeof answer.cachedTokens !== 'number') throw new Error(`HTTP ${res.status}`);
      return { cachedTokens: answer.cachedTokens, load: Number(answer.running ?? 0) + Number(answer.waiting ?? 0) };
    } catch {
      failedQueries++;
      return undefined;
    }
  };

  const forward = (req: IncomingMessage, res: ServerResponse, body: Buffer, index: number): void => {
    const pod = pods[index] as URL;
    inFlight[index] = (inFlight[index] ?? 0) + 1;
    perPod[index] = (perPod[index] ?? 0) + 1;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      inFlight[index] = (inFlight[index] ?? 1) - 1;
    };
    const headers = { ...req.headers, host: pod.host, 'content-length': String(body.length) };
    const upstream = httpRequest({ agent, host: pod.hostname, port: pod.port, method: req.method, path: req.url, headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
      up.on('end', release);
      up.on('error', () => {
        release();
        res.destroy();
      });
    });
    upstream.on('error', () => {
      release();
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' }).end('{"error":{"message":"oracle: upstream failed"}}');
      else res.destroy();
    });
    // The client left: stop the upstream request (the pod aborts it).
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
      release();
    });
    upstream.end(body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    if (req.method === 'GET' && path === '/oracle/stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(router.stats()));
      return;
    }
    if (req.method !== 'POST' || (path !== '/v1/chat/completions' && path !== '/v1/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found"}}');
      return;
    }
    const body = await readBody(req);
    if (body === undefined) {
      res.writeHead(413, { 'content-type': 'application/json' }).end('{"error":{"message":"body too large"}}');
      return;
    }
    requests++;
    const t0 = performance.now();
    const matches = await Promise.all(pods.map((p) => match(p, body)));
    const index = bestPod(matches, inFlight);
    decisionMs += performance.now() - t0;
    forward(req, res, body, index);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const router: OracleRouter = {
    url: `http://${addr.address}:${addr.port}`,
    stats: () => ({ requests, queries, failedQueries, meanDecisionMs: requests === 0 ? 0 : decisionMs / requests, perPod: [...perPod] }),
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
  return router;
}
