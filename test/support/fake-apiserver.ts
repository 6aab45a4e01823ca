import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { randomUUID } from 'node:crypto';

/*
 * An in-process Kubernetes API server for tests: the REST list/watch protocol as the real one speaks
 * it (Kubernetes API concepts, "Efficient detection of changes"), over plain HTTP on 127.0.0.1.
 *
 * - One global, monotonically increasing resourceVersion for every write, as etcd's revision is.
 * - GET on a collection (per namespace or cluster-wide) returns a `<Kind>List` whose
 *   `metadata.resourceVersion` is the revision the list was read at; `limit`/`continue` page it.
 * - `?watch=1&resourceVersion=N` streams newline-separated JSON events after N: ADDED, MODIFIED,
 *   DELETED, BOOKMARK (when `allowWatchBookmarks=true`) and ERROR. A watch from a revision older than
 *   the compaction point gets one ERROR event carrying a 410 Expired Status and ends, as the watch
 *   cache answers "too old resource version". Without a resourceVersion (or "0") a watch first sends
 *   every current object as ADDED.
 * - `labelSelector` (=, ==, !=, in, notin, exists, !exists) and `fieldSelector` (metadata.name,
 *   metadata.namespace) filter lists and watches; an object that stops matching is a DELETED event
 *   to that watch and one that starts matching is ADDED, as the watch cache does.
 * - GET/PUT/PATCH/DELETE of one object and GET/PUT/PATCH of its `/status` subresource, with
 *   optimistic concurrency: a write carrying a stale `metadata.resourceVersion` is a 409 Conflict.
 *   A PUT of the object keeps its status and a PUT of /status keeps everything but the status (the
 *   status subresource contract); `metadata.generation` moves when anything but status/metadata changes.
 * - POST creates (409 AlreadyExists when the name is taken).
 * - A kind not installed (its CRD missing) is 404 NotFound on every path, as an unknown resource is.
 *
 * Generic over kinds: TYPES maps group/version/plural to kind; Leases (coordination.k8s.io/v1) are
 * just one more row.
 */

/** One served resource type: `/api/v1/...` when group is "", else `/apis/<group>/<version>/...`. */
export interface ResourceType {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

/** A Kubernetes object as JSON. */
export type KubeObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: KubeMetadata;
};

export type KubeMetadata = Record<string, unknown> & {
  name: string;
  namespace?: string;
  resourceVersion?: string;
  uid?: string;
  generation?: number;
  labels?: Record<string, string>;
  deletionTimestamp?: string;
};

function t(group: string, version: string, plural: string, kind: string, namespaced = true): ResourceType {
  return { group, version, plural, kind, namespaced };
}

/** The types served unless `start({ types })` says otherwise: every kind Infergate reads or writes. */
export const TYPES: readonly ResourceType[] = [
  t('', 'v1', 'pods', 'Pod'),
  t('', 'v1', 'services', 'Service'),
  t('', 'v1', 'configmaps', 'ConfigMap'),
  t('', 'v1', 'events', 'Event'),
  t('', 'v1', 'namespaces', 'Namespace', false),
  t('discovery.k8s.io', 'v1', 'endpointslices', 'EndpointSlice'),
  t('coordination.k8s.io', 'v1', 'leases', 'Lease'),
  t('gateway.networking.k8s.io', 'v1', 'gatewayclasses', 'GatewayClass', false),
  t('gateway.networking.k8s.io', 'v1', 'gateways', 'Gateway'),
  t('gateway.networking.k8s.io', 'v1', 'httproutes', 'HTTPRoute'),
  t('inference.networking.k8s.io', 'v1', 'inferencepools', 'InferencePool'),
  t('inference.networking.x-k8s.io', 'v1alpha2', 'inferencepools', 'InferencePool'),
  t('inference.networking.x-k8s.io', 'v1alpha2', 'inferencemodels', 'InferenceModel'),
  t('inference.networking.x-k8s.io', 'v1alpha2', 'inferenceobjectives', 'InferenceObjective'),
  t('inference.networking.x-k8s.io', 'v1alpha2', 'inferencemodelrewrites', 'InferenceModelRewrite'),
  t('llm-d.ai', 'v1alpha2', 'inferencemodelrewrites', 'InferenceModelRewrite'),
  t('llm-d.ai', 'v1alpha2', 'inferenceobjectives', 'InferenceObjective'),
  t('inferenceextension.alibabacloud.com', 'v1alpha1', 'inferencetrafficpolicies', 'InferenceTrafficPolicy'),
  t('gateway.envoyproxy.io', 'v1alpha1', 'clienttrafficpolicies', 'ClientTrafficPolicy'),
  t('gateway.envoyproxy.io', 'v1alpha1', 'backendtrafficpolicies', 'BackendTrafficPolicy'),
];

export function apiVersionOf(type: ResourceType): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`;
}

/** One request as the server saw it, for assertions. */
export interface RecordedRequest {
  readonly method: string;
  /** The path without the query. */
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly watch: boolean;
  readonly status: number;
  readonly authorization: string | undefined;
  readonly contentType: string | undefined;
  readonly body: unknown;
}

/** Names one object: `Kind/namespace/name` (`Kind/name` when cluster-scoped), or the parts. */
export type ObjectRef = string | { apiVersion?: string; kind: string; namespace?: string; name: string };

export interface FakeApiServerOptions {
  /** Types served (default TYPES); `uninstall`/`install` change them later. */
  types?: readonly ResourceType[];
  /** How often an open watch that asked for bookmarks gets one (ms; 0 = only on `bookmark()`). Default 1000. */
  bookmarkIntervalMs?: number;
  /** When set, every request must carry `Authorization: Bearer <token>` or get 401. */
  token?: string;
  /** The first resourceVersion handed out (default 1000). */
  firstResourceVersion?: number;
}

interface Stored {
  type: ResourceType;
  obj: KubeObject;
}

interface HistoryEvent {
  rv: number;
  type: ResourceType;
  kind: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** The object after the change (for DELETED, its last state at the deletion's revision). */
  obj: KubeObject;
  /** The object before the change (undefined for ADDED). */
  prev: KubeObject | undefined;
}

interface Watch {
  type: ResourceType;
  namespace: string | undefined;
  matches: (o: KubeObject) => boolean;
  bookmarks: boolean;
  res: ServerResponse;
  timer: NodeJS.Timeout | undefined;
}

interface Failure {
  method: string | undefined;
  pathIncludes: string | undefined;
  status: number;
  remaining: number;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function keyOf(type: ResourceType, namespace: string | undefined, name: string): string {
  return `${apiVersionOf(type)}|${type.plural}|${namespace ?? ''}|${name}`;
}

/** The in-process API server. Create with `FakeApiServer.start()`; `close()` when done. */
export class FakeApiServer {
  readonly requests: RecordedRequest[] = [];
  #types: ResourceType[];
  #server: Server | undefined;
  #port = 0;
  #rv: number;
  #compactedBefore = 0;
  readonly #objects = new Map<string, Stored>();
  #history: HistoryEvent[] = [];
  readonly #watches = new Set<Watch>();
  readonly #sockets = new Set<Socket>();
  readonly #failures: Failure[] = [];
  readonly #opts: FakeApiServerOptions;

  private constructor(opts: FakeApiServerOptions) {
    this.#opts = opts;
    this.#types = [...(opts.types ?? TYPES)];
    this.#rv = opts.firstResourceVersion ?? 1000;
  }

  /** Starts listening on 127.0.0.1 (a free port) and resolves when it does. */
  static async start(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const s = new FakeApiServer(opts);
    await s.#listen(0);
    return s;
  }

  /** `http://127.0.0.1:<port>`: the kubeconfig's `server`. */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): number {
    return this.#rv;
  }

  /** Open watch streams, optionally of one kind. */
  watchCount(kind?: string): number {
    let n = 0;
    for (const w of this.#watches) if (kind === undefined || w.type.kind === kind) n++;
    return n;
  }

  /** Whether the server is listening (false between `stop()` and `restart()`). */
  get listening(): boolean {
    return this.#server !== undefined;
  }

  // ---- test-driven state changes -------------------------------------------------------------

  /**
   * Creates or replaces `obj` as `kubectl apply` would leave it: the object as given, with uid and
   * creationTimestamp kept; when `obj` has no `status` the stored status is kept. Namespaced kinds
   * default to namespace "default". Returns the stored object (with its new resourceVersion).
   * Works while stopped too (the store outlives the server, as etcd does).
   */
  apply(obj: Record<string, unknown>): KubeObject {
    const o = clone(obj) as KubeObject;
    const type = this.#typeFor(o.apiVersion, o.kind);
    const meta = o.metadata;
    if (meta === undefined || typeof meta.name !== 'string') throw new Error('apply: metadata.name is required');
    if (type.namespaced) meta.namespace ??= 'default';
    else delete meta.namespace;
    const key = keyOf(type, meta.namespace, meta.name);
    const prev = this.#objects.get(key);
    if (prev === undefined) return this.#create(type, o);
    if (o['status'] === undefined && prev.obj['status'] !== undefined) o['status'] = clone(prev.obj['status']);
    return this.#update(prev, o);
  }

  /** Deletes one object (a DELETED event). Returns false when there was none. */
  delete(ref: ObjectRef): boolean {
    const found = this.#find(ref);
    if (found === undefined) return false;
    this.#remove(found);
    return true;
  }

  /** Replaces one object's status (a MODIFIED event). Throws when there is no such object. */
  setStatus(ref: ObjectRef, status: unknown): KubeObject {
    const found = this.#mustFind(ref);
    const next = clone(found.obj);
    next['status'] = clone(status);
    return this.#update(found, next);
  }

  /**
   * Marks one object as being deleted gracefully (sets `metadata.deletionTimestamp`, as the API
   * server does for a Pod in its grace period): a MODIFIED event; `delete` removes it later.
   */
  markTerminating(ref: ObjectRef, gracePeriodSeconds = 30): KubeObject {
    const found = this.#mustFind(ref);
    const next = clone(found.obj);
    next.metadata.deletionTimestamp = new Date(Date.now() + gracePeriodSeconds * 1000).toISOString();
    next.metadata['deletionGracePeriodSeconds'] = gracePeriodSeconds;
    return this.#update(found, next);
  }

  /** The stored object (a copy), or undefined. */
  get(ref: ObjectRef): KubeObject | undefined {
    const found = this.#find(ref);
    return found === undefined ? undefined : clone(found.obj);
  }

  /** Every stored object of `kind` (copies), optionally of one apiVersion. */
  list(kind: string, apiVersion?: string): KubeObject[] {
    const out: KubeObject[] = [];
    for (const s of this.#objects.values()) {
      if (s.type.kind === kind && (apiVersion === undefined || apiVersionOf(s.type) === apiVersion)) out.push(clone(s.obj));
    }
    return out;
  }

  /**
   * Forgets history before `rv` (default: the current revision, i.e. everything): a watch or a list
   * continuation from an older revision is 410 Gone, and open watches that began before it are
   * sent the 410 ERROR event and ended, as after an etcd compaction the watch cache can no longer
   * serve them.
   */
  compactBefore(rv: number = this.#rv): void {
    this.#compactedBefore = Math.max(this.#compactedBefore, rv);
    this.#history = this.#history.filter((e) => e.rv >= rv);
    for (const w of [...this.#watches]) this.#expire(w);
  }

  /** Ends every open watch: abruptly (socket destroyed, the default) or cleanly (stream ended, as on a server-side timeout). */
  cutWatches(opts: { abrupt?: boolean } = {}): void {
    for (const w of [...this.#watches]) this.#endWatch(w, opts.abrupt ?? true);
  }

  /** Sends a BOOKMARK at the current revision to every open watch that asked for them. */
  bookmark(): void {
    for (const w of this.#watches) if (w.bookmarks) this.#sendBookmark(w);
  }

  /** Serves 404 for this type from now on, as a cluster without its CRD does (open watches on it end). */
  uninstall(apiVersion: string, kind: string): void {
    const type = this.#typeFor(apiVersion, kind);
    this.#types = this.#types.filter((x) => x !== type);
    for (const w of [...this.#watches]) if (w.type === type) this.#endWatch(w, false);
  }

  /** Serves `type` (again). */
  install(type: ResourceType): void {
    if (!this.#types.some((x) => apiVersionOf(x) === apiVersionOf(type) && x.plural === type.plural)) this.#types.push(type);
  }

  /**
   * The next `count` requests matching (method and a substring of the path, either optional) are
   * answered with `status` and a Status body instead of being served.
   */
  failNext(match: { method?: string; pathIncludes?: string }, status: number, count = 1): void {
    this.#failures.push({ method: match.method, pathIncludes: match.pathIncludes, status, remaining: count });
  }

  /** Requests (recorded) matching a predicate. */
  requestsWhere(pred: (r: RecordedRequest) => boolean): RecordedRequest[] {
    return this.requests.filter(pred);
  }

  /** Stops listening and drops every connection (watches end abruptly); the store is kept. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    for (const w of [...this.#watches]) this.#endWatch(w, true);
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again on the same port after `stop()`. */
  async restart(): Promise<void> {
    if (this.#server !== undefined) return;
    await this.#listen(this.#port);
  }

  /** Stops for good. */
  async close(): Promise<void> {
    await this.stop();
  }

  // ---- store ------------------------------------------------------------------------------------

  #next(): number {
    return ++this.#rv;
  }

  #create(type: ResourceType, o: KubeObject): KubeObject {
    const meta = o.metadata;
    meta.uid ??= randomUUID();
    meta.creationTimestamp ??= new Date().toISOString();
    meta.generation = 1;
    meta.resourceVersion = String(this.#next());
    const key = keyOf(type, meta.namespace, meta.name);
    const stored: Stored = { type, obj: o };
    this.#objects.set(key, stored);
    this.#record({ rv: this.#rv, type, kind: 'ADDED', obj: o, prev: undefined });
    return clone(o);
  }

  #update(prev: Stored, next: KubeObject): KubeObject {
    const old = prev.obj;
    next.metadata.uid = old.metadata.uid;
    next.metadata['creationTimestamp'] = old.metadata['creationTimestamp'];
    const gen = old.metadata.generation ?? 1;
    next.metadata.generation = specOf(old) === specOf(next) ? gen : gen + 1;
    next.metadata.resourceVersion = String(this.#next());
    prev.obj = next;
    this.#record({ rv: this.#rv, type: prev.type, kind: 'MODIFIED', obj: next, prev: old });
    return clone(next);
  }

  #remove(found: Stored): void {
    const o = clone(found.obj);
    o.metadata.resourceVersion = String(this.#next());
    this.#objects.delete(keyOf(found.type, o.metadata.namespace, o.metadata.name));
    this.#record({ rv: this.#rv, type: found.type, kind: 'DELETED', obj: o, prev: found.obj });
  }

  #record(e: HistoryEvent): void {
    this.#history.push(e);
    for (const w of this.#watches) if (w.type === e.type) this.#deliver(w, e);
  }

  #typeFor(apiVersion: string, kind: string): ResourceType {
    const type = this.#types.find((x) => apiVersionOf(x) === apiVersion && x.kind === kind) ?? TYPES.find((x) => apiVersionOf(x) === apiVersion && x.kind === kind);
    if (type === undefined) throw new Error(`fake API server: no type ${apiVersion} ${kind}`);
    return type;
  }

  #find(ref: ObjectRef): Stored | undefined {
    const r = typeof ref === 'string' ? parseRef(ref) : ref;
    const hits: Stored[] = [];
    for (const s of this.#objects.values()) {
      if (s.type.kind !== r.kind || s.obj.metadata.name !== r.name) continue;
      if (r.apiVersion !== undefined && apiVersionOf(s.type) !== r.apiVersion) continue;
      if (s.type.namespaced && (s.obj.metadata.namespace ?? 'default') !== (r.namespace ?? 'default')) continue;
      hits.push(s);
    }
    if (hits.length > 1) throw new Error(`fake API server: ${typeof ref === 'string' ? ref : r.name} is ambiguous across apiVersions; name one`);
    return hits[0];
  }

  #mustFind(ref: ObjectRef): Stored {
    const found = this.#find(ref);
    if (found === undefined) throw new Error(`fake API server: no object ${typeof ref === 'string' ? ref : JSON.stringify(ref)}`);
    return found;
  }

  // ---- HTTP -------------------------------------------------------------------------------------

  async #listen(port: number): Promise<void> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
    });
    // A restart may find the port in TIME_WAIT or briefly still bound: retry for a while.
    for (let attempt = 0; ; attempt++) {
      try {
        server.listen(port, '127.0.0.1');
        await once(server, 'listening');
        break;
      } catch (err) {
        if (attempt > 50 || port === 0) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const addr = server.address();
    this.#port = typeof addr === 'object' && addr !== null ? addr.port : port;
    this.#server = server;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    const watch = query['watch'] === '1' || query['watch'] === 'true';
    let body: unknown;
    const record = (status: number): void => {
      this.requests.push({
        method: req.method ?? 'GET',
        path: url.pathname,
        query,
        watch,
        status,
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        body,
      });
    };
    try {
      const raw = await readBody(req);
      if (raw.length > 0) {
        try {
          body = JSON.parse(raw);
        } catch {
          throw new HttpError(400, 'BadRequest', 'request body is not JSON');
        }
      }
      if (this.#opts.token !== undefined && req.headers.authorization !== `Bearer ${this.#opts.token}`) throw new HttpError(401, 'Unauthorized', 'Unauthorized');
      const failure = this.#failures.find((f) => f.remaining > 0 && (f.method === undefined || f.method === req.method) && (f.pathIncludes === undefined || url.pathname.includes(f.pathIncludes)));
      if (failure !== undefined) {
        failure.remaining--;
        throw new HttpError(failure.status, failure.status === 500 ? 'InternalError' : 'ServiceUnavailable', 'injected failure');
      }
      const status = this.#route(req.method ?? 'GET', url.pathname, query, body, req.headers['content-type'] ?? '', res);
      record(status);
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, 'InternalError', String(err));
      record(e.code);
      if (!res.headersSent) sendJson(res, e.code, statusBody(e.code, e.reason, e.message));
      else res.destroy();
    }
  }

  /** Serves one request; returns the status sent (watches: 200, sent before the stream). */
  #route(method: string, path: string, query: Record<string, string>, body: unknown, contentType: string, res: ServerResponse): number {
    if (path === '/version') return sendJson(res, 200, { major: '1', minor: '31', gitVersion: 'v1.31.0-fake' });
    const p = parsePath(path);
    if (p === undefined) throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    const type = this.#types.find((x) => x.group === p.group && x.version === p.version && x.plural === p.plural);
    if (type === undefined) throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    if (p.namespace !== undefined && !type.namespaced) throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');

    if (p.name === undefined) {
      if (method === 'GET' && query['watch'] !== undefined && query['watch'] !== 'false' && query['watch'] !== '0') return this.#watch(type, p.namespace, query, res);
      if (method === 'GET') return sendJson(res, 200, this.#list(type, p.namespace, query));
      if (method === 'POST') return sendJson(res, 201, this.#post(type, p.namespace, body));
      throw new HttpError(405, 'MethodNotAllowed', `${method} is not allowed on a collection`);
    }
    if (type.namespaced && p.namespace === undefined) throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    const key = keyOf(type, p.namespace, p.name);
    const found = this.#objects.get(key);
    const notFound = (): HttpError => new HttpError(404, 'NotFound', `${type.plural}.${type.group} "${p.name}" not found`);
    if (p.subresource !== undefined && p.subresource !== 'status') throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    const status = p.subresource === 'status';
    switch (method) {
      case 'GET':
        if (found === undefined) throw notFound();
        return sendJson(res, 200, found.obj);
      case 'PUT': {
        if (found === undefined) {
          if (status) throw notFound();
          return sendJson(res, 201, this.#post(type, p.namespace, body, p.name));
        }
        const incoming = asObject(body, type, p.namespace, p.name);
        checkPrecondition(found.obj, incoming.metadata.resourceVersion);
        return sendJson(res, 200, this.#update(found, mergeWrite(found.obj, incoming, status)));
      }
      case 'PATCH': {
        if (found === undefined) throw notFound();
        const patched = applyPatch(found.obj, body, contentType);
        checkPrecondition(found.obj, patched.metadata.resourceVersion === found.obj.metadata.resourceVersion ? undefined : patched.metadata.resourceVersion);
        patched.metadata.name = found.obj.metadata.name;
        if (type.namespaced) patched.metadata.namespace = found.obj.metadata.namespace;
        return sendJson(res, 200, this.#update(found, mergeWrite(found.obj, patched, status)));
      }
      case 'DELETE': {
        if (found === undefined || status) throw notFound();
        const pre = (body as { preconditions?: { resourceVersion?: string } } | undefined)?.preconditions?.resourceVersion;
        checkPrecondition(found.obj, pre);
        this.#remove(found);
        return sendJson(res, 200, statusBody(200, '', '', 'Success'));
      }
      default:
        throw new HttpError(405, 'MethodNotAllowed', `${method} is not allowed`);
    }
  }

  #post(type: ResourceType, namespace: string | undefined, body: unknown, name?: string): KubeObject {
    const o = asObject(body, type, namespace, name);
    if (typeof o.metadata.name !== 'string' || o.metadata.name === '') {
      const prefix = o.metadata['generateName'];
      if (typeof prefix !== 'string') throw new HttpError(422, 'Invalid', 'metadata.name: Required value: name or generateName is required');
      o.metadata.name = prefix + randomUUID().slice(0, 5);
    }
    if (this.#objects.has(keyOf(type, o.metadata.namespace, o.metadata.name))) {
      throw new HttpError(409, 'AlreadyExists', `${type.plural}.${type.group} "${o.metadata.name}" already exists`);
    }
    delete o.metadata.resourceVersion;
    return this.#create(type, o);
  }

  #list(type: ResourceType, namespace: string | undefined, query: Record<string, string>): unknown {
    const matches = selectorOf(query);
    let items = [...this.#objects.values()]
      .filter((s) => s.type === type && (namespace === undefined || s.obj.metadata.namespace === namespace) && matches(s.obj))
      .map((s) => s.obj)
      .sort((a, b) => `${a.metadata.namespace ?? ''}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ''}/${b.metadata.name}`));
    let listRv = this.#rv;
    let offset = 0;
    const cont = query['continue'];
    if (cont !== undefined && cont !== '') {
      const token = parseContinue(cont);
      if (token.rv < this.#compactedBefore) throw new HttpError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      listRv = token.rv;
      offset = token.offset;
    } else {
      const rv = query['resourceVersion'];
      if (rv !== undefined && rv !== '' && rv !== '0' && Number(rv) < this.#compactedBefore && query['resourceVersionMatch'] === 'Exact') {
        throw new HttpError(410, 'Expired', `too old resource version: ${rv} (${this.#compactedBefore})`);
      }
    }
    const limit = Number(query['limit'] ?? '0');
    let next: string | undefined;
    items = items.slice(offset);
    if (limit > 0 && items.length > limit) {
      items = items.slice(0, limit);
      next = Buffer.from(JSON.stringify({ rv: listRv, offset: offset + limit })).toString('base64url');
    }
    return {
      apiVersion: apiVersionOf(type),
      kind: `${type.kind}List`,
      metadata: { resourceVersion: String(listRv), ...(next === undefined ? {} : { continue: next }) },
      items,
    };
  }

  #watch(type: ResourceType, namespace: string | undefined, query: Record<string, string>, res: ServerResponse): number {
    const w: Watch = {
      type,
      namespace,
      matches: selectorOf(query),
      bookmarks: query['allowWatchBookmarks'] === 'true' || query['allowWatchBookmarks'] === '1',
      res,
      timer: undefined,
    };
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'cache-control': 'no-cache' });
    res.flushHeaders();
    const rvText = query['resourceVersion'];
    const from = rvText === undefined || rvText === '' ? undefined : Number(rvText);
    if (from !== undefined && from !== 0 && (!Number.isFinite(from) || from < this.#compactedBefore)) {
      writeEvent(res, { type: 'ERROR', object: statusBody(410, 'Expired', `too old resource version: ${rvText} (${this.#compactedBefore})`) });
      res.end();
      return 200;
    }
    this.#watches.add(w);
    res.on('close', () => this.#dropWatch(w));
    if (from === undefined || from === 0) {
      // "Get state and start at most recent": every current object as ADDED first.
      for (const s of this.#objects.values()) {
        if (s.type === type && (namespace === undefined || s.obj.metadata.namespace === namespace) && w.matches(s.obj)) writeEvent(res, { type: 'ADDED', object: s.obj });
      }
    } else {
      for (const e of this.#history) if (e.type === type && e.rv > from) this.#deliver(w, e);
    }
    const interval = this.#opts.bookmarkIntervalMs ?? 1000;
    if (w.bookmarks && interval > 0) w.timer = setInterval(() => this.#sendBookmark(w), interval);
    const timeout = Number(query['timeoutSeconds'] ?? '0');
    if (timeout > 0) setTimeout(() => this.#endWatch(w, false), timeout * 1000).unref();
    return 200;
  }

  #deliver(w: Watch, e: HistoryEvent): void {
    if (w.namespace !== undefined && e.obj.metadata.namespace !== w.namespace) return;
    const now = e.kind !== 'DELETED' && w.matches(e.obj);
    const before = e.prev !== undefined && w.matches(e.prev);
    let kind: string | undefined;
    if (e.kind === 'ADDED') kind = now ? 'ADDED' : undefined;
    else if (e.kind === 'DELETED') kind = before ? 'DELETED' : undefined;
    else if (now) kind = before ? 'MODIFIED' : 'ADDED';
    else if (before) kind = 'DELETED';
    if (kind !== undefined) writeEvent(w.res, { type: kind, object: e.obj });
  }

  #sendBookmark(w: Watch): void {
    writeEvent(w.res, { type: 'BOOKMARK', object: { apiVersion: apiVersionOf(w.type), kind: w.type.kind, metadata: { resourceVersion: String(this.#rv) } } });
  }

  #expire(w: Watch): void {
    writeEvent(w.res, { type: 'ERROR', object: statusBody(410, 'Expired', 'too old resource version') });
    this.#endWatch(w, false);
  }

  #endWatch(w: Watch, abrupt: boolean): void {
    this.#dropWatch(w);
    if (abrupt) w.res.destroy();
    else w.res.end();
  }

  #dropWatch(w: Watch): void {
    if (w.timer !== undefined) clearInterval(w.timer);
    this.#watches.delete(w);
  }
}

// ---- helpers --------------------------------------------------------------------------------------

function parseRef(ref: string): { apiVersion?: string; kind: string; namespace?: string; name: string } {
  const parts = ref.split('/');
  if (parts.length === 2) return { kind: parts[0]!, name: parts[1]! };
  if (parts.length === 3) return { kind: parts[0]!, namespace: parts[1]!, name: parts[2]! };
  throw new Error(`fake API server: a reference is Kind/namespace/name or Kind/name, not ${ref}`);
}

interface ParsedPath {
  group: string;
  version: string;
  namespace: string | undefined;
  plural: string;
  name: string | undefined;
  subresource: string | undefined;
}

/** /api/v1/[namespaces/NS/]PLURAL[/NAME[/SUB]] and /apis/G/V/[namespaces/NS/]PLURAL[/NAME[/SUB]]. */
function parsePath(path: string): ParsedPath | undefined {
  const seg = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (seg[0] === 'api' && seg.length >= 3) {
    group = '';
    version = seg[1]!;
    rest = seg.slice(2);
  } else if (seg[0] === 'apis' && seg.length >= 4) {
    group = seg[1]!;
    version = seg[2]!;
    rest = seg.slice(3);
  } else return undefined;
  let namespace: string | undefined;
  // "namespaces/NS/plural..." is a namespaced path; "namespaces" or "namespaces/NAME" is the Namespace kind itself.
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length === 0 || rest.length > 3) return undefined;
  return { group, version, namespace, plural: rest[0]!, name: rest[1], subresource: rest[2] };
}

function specOf(o: KubeObject): string {
  const { metadata: _m, status: _s, ...rest } = o;
  return JSON.stringify(rest);
}

function asObject(body: unknown, type: ResourceType, namespace: string | undefined, name: string | undefined): KubeObject {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'BadRequest', 'the body must be an object');
  const o = clone(body) as KubeObject;
  o.apiVersion = apiVersionOf(type);
  o.kind = type.kind;
  const meta = (typeof o.metadata === 'object' && o.metadata !== null ? o.metadata : {}) as KubeMetadata;
  o.metadata = meta;
  if (name !== undefined) {
    if (meta.name !== undefined && meta.name !== name) throw new HttpError(400, 'BadRequest', `the name of the object (${meta.name}) does not match the name on the URL (${name})`);
    meta.name = name;
  }
  if (type.namespaced) {
    if (meta.namespace !== undefined && namespace !== undefined && meta.namespace !== namespace) {
      throw new HttpError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
    }
    meta.namespace = namespace ?? meta.namespace ?? 'default';
  }
  return o;
}

/** A stale resourceVersion precondition is a 409 Conflict (Kubernetes API conventions, concurrency control). */
function checkPrecondition(current: KubeObject, rv: string | undefined): void {
  if (rv === undefined || rv === '') return;
  if (rv !== current.metadata.resourceVersion) {
    throw new HttpError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${current.kind} "${current.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
    );
  }
}

/** The status subresource contract: a write to /status changes only status; a write to the object keeps status. */
function mergeWrite(current: KubeObject, incoming: KubeObject, statusOnly: boolean): KubeObject {
  if (statusOnly) {
    const next = clone(current);
    next['status'] = clone(incoming['status']);
    return next;
  }
  const next = clone(incoming);
  // Kinds without a status subresource (Lease, ConfigMap) have none to keep; for those that do, a
  // write to the object does not change it.
  if (current['status'] !== undefined) next['status'] = clone(current['status']);
  else delete next['status'];
  return next;
}

function applyPatch(current: KubeObject, patch: unknown, contentType: string): KubeObject {
  const ct = contentType.split(';')[0]!.trim();
  if (ct === 'application/json-patch+json') {
    if (!Array.isArray(patch)) throw new HttpError(400, 'BadRequest', 'a JSON patch is an array of operations');
    return jsonPatch(clone(current), patch) as KubeObject;
  }
  if (ct === 'application/merge-patch+json' || ct === 'application/strategic-merge-patch+json' || ct === 'application/apply-patch+yaml') {
    return mergePatch(clone(current), patch) as KubeObject;
  }
  throw new HttpError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`);
}

/** RFC 7386 JSON merge patch (strategic merge and apply are treated as it: enough for these tests). */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? (target as Record<string, unknown>) : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** RFC 6902 JSON patch: add, remove, replace, test. */
function jsonPatch(doc: unknown, ops: unknown[]): unknown {
  for (const raw of ops) {
    const op = raw as { op?: string; path?: string; value?: unknown };
    if (typeof op.path !== 'string') throw new HttpError(422, 'Invalid', 'a JSON patch operation needs a path');
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop();
    let parent: unknown = doc;
    for (const p of parts) {
      parent = (parent as Record<string, unknown> | undefined)?.[p];
      if (typeof parent !== 'object' || parent === null) throw new HttpError(422, 'Invalid', `path ${op.path} does not exist`);
    }
    const container = parent as Record<string, unknown>;
    if (last === undefined) throw new HttpError(422, 'Invalid', 'a JSON patch cannot replace the whole document');
    switch (op.op) {
      case 'add':
        if (Array.isArray(container)) (container as unknown[]).splice(last === '-' ? container.length : Number(last), 0, clone(op.value));
        else container[last] = clone(op.value);
        break;
      case 'replace':
        if (!(last in container)) throw new HttpError(422, 'Invalid', `path ${op.path} does not exist`);
        container[last] = clone(op.value);
        break;
      case 'remove':
        if (!(last in container)) throw new HttpError(422, 'Invalid', `path ${op.path} does not exist`);
        if (Array.isArray(container)) (container as unknown[]).splice(Number(last), 1);
        else delete container[last];
        break;
      case 'test':
        if (JSON.stringify(container[last]) !== JSON.stringify(op.value)) throw new HttpError(422, 'Invalid', `test failed at ${op.path}`);
        break;
      default:
        throw new HttpError(422, 'Invalid', `unsupported JSON patch op ${String(op.op)}`);
    }
  }
  return doc;
}

type Matcher = (o: KubeObject) => boolean;

/** labelSelector and fieldSelector of a query, as one predicate. */
function selectorOf(query: Record<string, string>): Matcher {
  const label = parseLabelSelector(query['labelSelector'] ?? '');
  const field = parseFieldSelector(query['fieldSelector'] ?? '');
  return (o) => label(o.metadata.labels ?? {}) && field(o);
}

/** Kubernetes label selector syntax (k8s.io/apimachinery/pkg/labels): =, ==, !=, in, notin, key, !key. */
export function parseLabelSelector(text: string): (labels: Record<string, string>) => boolean {
  const reqs: ((l: Record<string, string>) => boolean)[] = [];
  for (const term of splitTerms(text)) {
    let m: RegExpMatchArray | null;
    if ((m = term.match(/^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/)) !== null) {
      const key = m[1]!;
      const values = new Set(m[3]!.split(',').map((v) => v.trim()));
      const isIn = m[2] === 'in';
      reqs.push((l) => (isIn ? l[key] !== undefined && values.has(l[key]) : l[key] === undefined || !values.has(l[key])));
    } else if ((m = term.match(/^([^\s!=]+)\s*!=\s*(\S*)$/)) !== null) {
      const [key, value] = [m[1]!, m[2]!];
      reqs.push((l) => l[key] !== value);
    } else if ((m = term.match(/^([^\s!=]+)\s*==?\s*(\S*)$/)) !== null) {
      const [key, value] = [m[1]!, m[2]!];
      reqs.push((l) => l[key] === value);
    } else if ((m = term.match(/^!\s*(\S+)$/)) !== null) {
      const key = m[1]!;
      reqs.push((l) => l[key] === undefined);
    } else if ((m = term.match(/^(\S+)$/)) !== null) {
      const key = m[1]!;
      reqs.push((l) => l[key] !== undefined);
    } else throw new HttpError(400, 'BadRequest', `unable to parse requirement: ${term}`);
  }
  return (l) => reqs.every((r) => r(l));
}

function parseFieldSelector(text: string): Matcher {
  const reqs: Matcher[] = [];
  for (const term of splitTerms(text)) {
    const m = term.match(/^([^!=]+)(!=|==|=)(.*)$/);
    if (m === null) throw new HttpError(400, 'BadRequest', `invalid field selector: ${term}`);
    const [field, op, value] = [m[1]!.trim(), m[2]!, m[3]!.trim()];
    const get = (o: KubeObject): string | undefined =>
      field === 'metadata.name' ? o.metadata.name : field === 'metadata.namespace' ? o.metadata.namespace : undefined;
    if (field !== 'metadata.name' && field !== 'metadata.namespace') throw new HttpError(400, 'BadRequest', `field label not supported: ${field}`);
    reqs.push(op === '!=' ? (o) => get(o) !== value : (o) => get(o) === value);
  }
  return (o) => reqs.every((r) => r(o));
}

/** Splits on commas outside parentheses. */
function splitTerms(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((s) => s.trim()).filter((s) => s !== '');
}

function parseContinue(token: string): { rv: number; offset: number } {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { rv?: unknown; offset?: unknown };
    if (typeof v.rv === 'number' && typeof v.offset === 'number') return { rv: v.rv, offset: v.offset };
  } catch {
    // fall through
  }
  throw new HttpError(400, 'BadRequest', 'continue key is not valid');
}

/** A metav1.Status body (Kubernetes API conventions). */
export function statusBody(code: number, reason: string, message: string, status: 'Success' | 'Failure' = 'Failure'): Record<string, unknown> {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status, message, reason, code };
}

function writeEvent(res: ServerResponse, event: { type: string; object: unknown }): void {
  if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify(event) + '\n');
}

function sendJson(res: ServerResponse, code: number, body: unknown): number {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
  return code;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
