import type { HTTPRouteMatch, StringMatch } from '../api/types.js';
import type { RuleConfig } from './snapshot.js';

/** The parts of a request that route matching reads. Header names are lower-case. */
export interface RouteRequest {
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  /** Raw query string without `?`, or ''. */
  readonly query: string;
  /** Host header without port, lower-case. */
  readonly host: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** One (route, rule, match) triple attached to a listener, with everything precompiled. */
export interface RouteEntry {
  readonly rule: RuleConfig;
  /** Listener hostname (exact or `*.suffix`), if the listener restricts it. */
  readonly listenerHostname: string | undefined;
  /** HTTPRoute `spec.hostnames`; empty means any. */
  readonly routeHostnames: readonly string[];
  readonly match: HTTPRouteMatch;
  /** Route age order: creation timestamp, then namespace/name (Gateway API tie-breaks). */
  readonly routeOrder: { readonly created: string; readonly key: string; readonly fileOrder: number };
  readonly ruleIndex: number;
}

interface CompiledEntry {
  readonly entry: RouteEntry;
  /** `skip`: header names (lower-case) whose matches are not tested. */
  readonly test: (req: RouteRequest, skip?: ReadonlySet<string>) => boolean;
  /** Lower-case names of the headers the entry matches on. */
  readonly headerNames: readonly string[];
  readonly hostRank: number;
}

function hostnameMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return pattern === host;
}

/**
 * Whether a listener's hostname and a route's hostnames have a host in common (Gateway API: a
 * route whose hostnames all miss the listener's is not accepted there, NoMatchingListenerHostname).
 * Undefined or empty means any host.
 */
export function hostnamesIntersect(listener: string | undefined, route: readonly string[]): boolean {
  if (listener === undefined || route.length === 0) return true;
  return route.some((r) => {
    if (r === listener) return true;
    const lw = listener.startsWith('*.');
    const rw = r.startsWith('*.');
    if (lw && rw) return listener.endsWith(r.slice(1)) || r.endsWith(listener.slice(1));
    return lw ? hostnameMatches(listener, r) : rw ? hostnameMatches(r, listener) : false;
  });
}

/** Exact hostnames outrank wildcards, longer wildcards outrank shorter, any-host ranks last. */
function hostnameRank(patterns: readonly string[]): number {
  if (patterns.length === 0) return 0;
  let best = 0;
  for (const p of patterns) best = Math.max(best, p.startsWith('*.') ? p.length : 1000 + p.length);
  return best;
}

function anchored(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}

function pathTest(match: HTTPRouteMatch): (path: string) => boolean {
  const { type, value } = match.path;
  if (type === 'Exact') return (p) => p === value;
  if (type === 'RegularExpression') {
    const re = anchored(value);
    return (p) => re.test(p);
  }
  // PathPrefix matches whole path elements: "/v1" matches "/v1" and "/v1/x", never "/v1x".
  const prefix = value.length > 1 && value.endsWith('/') ? value.slice(0, -1) : value;
  if (prefix === '/') return () => true;
  return (p) => p === prefix || (p.startsWith(prefix) && p.charCodeAt(prefix.length) === 47 /* '/' */);
}

function valueTest(m: StringMatch): (v: string | undefined) => boolean {
  if (m.type === 'RegularExpression') {
    const re = anchored(m.value);
    return (v) => v !== undefined && re.test(v);
  }
  return (v) => v === m.value;
}

function headerValue(headers: RouteRequest['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function compileEntry(entry: RouteEntry): CompiledEntry {
  const m = entry.match;
  const path = pathTest(m);
  const headers = m.headers.map((h) => ({ name: h.name.toLowerCase(), test: valueTest(h) }));
  const query = m.queryParams.map((q) => ({ name: q.name, test: valueTest(q) }));
  const method = m.method;
  const listenerHost = entry.listenerHostname;
  const routeHosts = entry.routeHostnames;
  const test = (req: RouteRequest, skip?: ReadonlySet<string>): boolean => {
    if (listenerHost !== undefined && !hostnameMatches(listenerHost, req.host)) return false;
    if (routeHosts.length > 0 && !routeHosts.some((h) => hostnameMatches(h, req.host))) return false;
    if (method !== undefined && req.method !== method) return false;
    if (!path(req.path)) return false;
    for (const h of headers) if (skip?.has(h.name) !== true && !h.test(headerValue(req.headers, h.name))) return false;
    if (query.length > 0) {
      const params = new URLSearchParams(req.query);
      for (const q of query) if (!q.test(params.get(q.name) ?? undefined)) return false;
    }
    return true;
  };
  const hostRank = Math.max(hostnameRank(routeHosts), listenerHost === undefined ? 0 : hostnameRank([listenerHost]));
  return { entry, test, headerNames: headers.map((h) => h.name), hostRank };
}

const PATH_TYPE_RANK = { Exact: 2, RegularExpression: 1, PathPrefix: 0 } as const;

/**
 * Gateway API precedence: more specific hostname; Exact path over (implementation-defined)
 * RegularExpression over PathPrefix; longer path; method match; more header matches; more query
 * matches; then the older route (creation timestamp, else file order), then namespace/name; then
 * rule order and match order within a route.
 */
function compareEntries(a: CompiledEntry, b: CompiledEntry): number {
  const x = a.entry;
  const y = b.entry;
  return (
    b.hostRank - a.hostRank ||
    PATH_TYPE_RANK[y.match.path.type] - PATH_TYPE_RANK[x.match.path.type] ||
    y.match.path.value.length - x.match.path.value.length ||
    Number(y.match.method !== undefined) - Number(x.match.method !== undefined) ||
    y.match.headers.length - x.match.headers.length ||
    y.match.queryParams.length - x.match.queryParams.length ||
    compareCreated(x.routeOrder, y.routeOrder) ||
    (x.routeOrder.key < y.routeOrder.key ? -1 : x.routeOrder.key > y.routeOrder.key ? 1 : 0) ||
    x.ruleIndex - y.ruleIndex
  );
}

function compareCreated(a: RouteEntry['routeOrder'], b: RouteEntry['routeOrder']): number {
  if (a.created !== '' && b.created !== '' && a.created !== b.created) return a.created < b.created ? -1 : 1;
  return a.fileOrder - b.fileOrder;
}

/** The routes of one listening port, sorted once at compile time; `match` walks them in order. */
export class RouteTable {
  readonly #entries: readonly CompiledEntry[];

  constructor(entries: readonly RouteEntry[]) {
    // Array.prototype.sort is stable, so equal entries keep their match order within a rule.
    this.#entries = entries.map(compileEntry).sort(compareEntries);
  }

  get size(): number {
    return this.#entries.length;
  }

  match(req: RouteRequest): RuleConfig | undefined {
    for (const e of this.#entries) if (e.test(req)) return e.entry.rule;
    return undefined;
  }

  /**
   * The rule that would match if the headers `names` (lower-case) had the right values: the first
   * entry matching on one of them whose other conditions hold. For model-based routing, whose
   * headers the gateway fills from the body: a request no rule matches might have matched with a
   * readable body.
   */
  matchGiven(req: RouteRequest, names: ReadonlySet<string>): RuleConfig | undefined {
    for (const e of this.#entries) if (e.headerNames.some((n) => names.has(n)) && e.test(req, names)) return e.entry.rule;
    return undefined;
  }

  rules(): RuleConfig[] {
    return [...new Set(this.#entries.map((e) => e.entry.rule))];
  }
}
