import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startEnvoyStandin, type EnvoyStandin, type EnvoyStandinOptions, type StandinExchange } from './envoy-standin.js';

/**
 * A little of Envoy's routing in front of several EPP-backed pools, as Envoy Gateway configures it
 * for HTTPRoutes whose backends are InferencePools: each pool is its own cluster with its own
 * ext_proc filter (its EPP), routes match on headers, and a rule with several backends is Envoy's
 * `weighted_clusters`. Before route matching, the Body-Based Router (GIE's BBR, the ext_proc that
 * Envoy Gateway runs first) copies the body's `model` into `X-Gateway-Model-Name` and clears the
 * route cache, so a header match on the model name sees the body's choice, never the client's.
 *
 * The pools' data paths are `startEnvoyStandin` instances (one per cluster); this front listener
 * does the routing and hands the request to the chosen one over loopback: one process in Envoy,
 * an extra local hop here that changes nothing the EPP or the model server sees.
 */

/** BBR's header (GIE body-based routing, `body-field-to-header`). */
export const MODEL_NAME_HEADER = 'x-gateway-model-name';

/** One route, as Envoy's route config holds it after Envoy Gateway translated an HTTPRoute rule. */
export interface EnvoyRoute {
  /** Exact header matches, all required (`headers: [{name, string_match: {exact}}]`); names are case-insensitive. */
  readonly headers?: Readonly<Record<string, string>>;
  /** `weighted_clusters`: the clusters (pool names) and their weights; one entry is a plain `cluster`. */
  readonly clusters: ReadonlyArray<{ readonly cluster: string; readonly weight: number }>;
}

export interface EnvoyRouterOptions {
  /** Each cluster's ext_proc filter and data path (its EPP's target, body mode, …). */
  readonly clusters: Readonly<Record<string, EnvoyStandinOptions>>;
  /** Routes in match order (Envoy takes the first that matches; Envoy Gateway sorts them by Gateway API precedence). */
  readonly routes: readonly EnvoyRoute[];
  /** Runs BBR before route matching. Default true. */
  readonly bodyBasedRouting?: boolean;
  /** Uniform random in [0, 1) for the weighted pick (Envoy's own is random too). Default Math.random. */
  readonly random?: () => number;
}

export interface RoutedExchange extends StandinExchange {
  /** The cluster (pool) the route picked. */
  readonly cluster: string;
}

export interface EnvoyRouter {
  readonly url: string;
  /** The per-cluster stand-ins. */
  readonly standins: ReadonlyMap<string, EnvoyStandin>;
  /** Every exchange through any cluster, with its cluster (per cluster in arrival order). */
  exchanges(): RoutedExchange[];
  close(): Promise<void>;
}

/** The route for `headers` (lower-cased names), or undefined: Envoy answers 404 (`route_not_found`). */
export function matchRoute(routes: readonly EnvoyRoute[], headers: Readonly<Record<string, string | string[] | undefined>>): EnvoyRoute | undefined {
  return routes.find((r) => Object.entries(r.headers ?? {}).every(([name, value]) => headers[name.toLowerCase()] === value));
}

/** Envoy's weighted_clusters pick: a cluster with probability weight/total (total 0 ⇒ none). */
export function pickCluster(route: EnvoyRoute, random: () => number): string | undefined {
  const total = route.clusters.reduce((s, c) => s + c.weight, 0);
  if (total <= 0) return undefined;
  let x = random() * total;
  for (const c of route.clusters) {
    if (x < c.weight) return c.cluster;
    x -= c.weight;
  }
  return route.clusters.at(-1)?.cluster;
}

/**
 * BBR on a buffered request body: the `model` string, or undefined when the body has none. Invalid
 * JSON is BBR's 400; a body that is JSON without a string `model` passes with no header.
 */
export function bbrModel(body: Buffer): { model: string | undefined } | 'invalid' {
  if (body.length === 0) return { model: undefined };
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    const model = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>)['model'] : undefined;
    return { model: typeof model === 'string' ? model : undefined };
  } catch {
    return 'invalid';
  }
}

function reply(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

/** Starts one stand-in per cluster and the routing listener on 127.0.0.1 in front of them. */
export async function startEnvoyRouter(options: EnvoyRouterOptions): Promise<EnvoyRouter> {
  const random = options.random ?? Math.random;
  const standins = new Map<string, EnvoyStandin>();
  try {
    for (const [name, o] of Object.entries(options.clusters)) standins.set(name, await startEnvoyStandin(o));
  } catch (err) {
    await Promise.all([...standins.values()].map((s) => s.close()));
    throw err;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    const body = Buffer.concat(parts);
    const headers: Record<string, string | string[] | undefined> = { ...req.headers };
    if (options.bodyBasedRouting !== false) {
      const found = bbrModel(body);
      if (found === 'invalid') return reply(res, 400, 'bbr: request body is not JSON');
      if (found.model !== undefined) headers[MODEL_NAME_HEADER] = found.model;
    }
    const route = matchRoute(options.routes, headers);
    if (route === undefined) return reply(res, 404, 'route_not_found');
    const cluster = pickCluster(route, random);
    const standin = cluster === undefined ? undefined : standins.get(cluster);
    if (cluster === undefined || standin === undefined) return reply(res, 500, 'no cluster');
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    delete headers['connection'];
    const out = httpRequest({ host: '127.0.0.1', port: standin.port, method: req.method ?? 'GET', path: req.url ?? '/', headers: { ...headers, 'content-length': String(body.length) } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', () => (res.headersSent ? res.destroy() : reply(res, 503, 'upstream connect error')));
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    out.end(body);
  }

  const server: Server = createServer((req, res) => void handle(req, res).catch(() => res.destroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    standins,
    exchanges: () => [...standins.entries()].flatMap(([cluster, s]) => s.exchanges.map((e) => ({ ...e, cluster }))),
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await Promise.all([...standins.values()].map((s) => s.close()));
    },
  };
}
