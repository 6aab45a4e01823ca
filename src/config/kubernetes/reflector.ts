import type { Readable } from 'node:stream';
import { Backoff } from './backoff.js';
import type { ApiConnection } from './connection.js';
import { maxWatchLineBytes, type KubernetesLimits } from './limits.js';
import { apiVersionOf, collectionPath, resourceName, type WatchedType } from './watched-kinds.js';

/*
 * List-then-watch of one kind (Kubernetes API concepts, "Efficient detection of changes"): list
 * (paged) to learn every object and the revision the list was read at, then watch from that
 * revision; follow BOOKMARK events so a reconnect resumes from the latest revision seen; on 410
 * Gone (the revision was compacted away) list again. A dropped watch resumes from the last
 * revision; a failing API server is retried with backoff, and what was known keeps serving.
 */

/** An object as the API server sent it (only `metadata.name` is known to be there). */
export type RawObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name: string; namespace?: string; resourceVersion?: string };
};

/** An object the API server holds that was refused (too large): the view keeps its last good version. */
export interface RefusedObject {
  readonly namespace: string | undefined;
  readonly name: string;
  readonly reason: string;
}

/** Where a reflector reports what it learns. */
export interface ReflectorSink {
  /** A complete list: every object of the kind (within the scope) now; `refused` exist but were not accepted. */
  replace(objects: readonly RawObject[], refused: readonly RefusedObject[]): void;
  upsert(object: RawObject): void;
  remove(object: RawObject): void;
  /** The API server does not serve the kind (404: its CRD is not installed); checked again later. */
  missing(): void;
  /** Something the API server sent was refused (oversized, malformed, over a cap). */
  problem(message: string): void;
  /** The API server could not be reached (stale) or was reached again (fresh). */
  health(stale: boolean, reason: string | undefined): void;
}

export interface ReflectorOptions {
  /** One namespace, or undefined for all (ignored for cluster-scoped kinds). */
  readonly namespace?: string;
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly limits: KubernetesLimits;
  /** Backoff after a failed request (default 250 ms doubling to 10 s). */
  readonly backoff?: Backoff;
  /** Backoff between checks of a kind the API server does not serve (default 1 s doubling to 30 s). */
  readonly missingBackoff?: Backoff;
  /**
   * Server-side watch timeout, seconds: the API server ends the watch after it and the reflector
   * resumes from the last revision (client-go draws 5–10 min; default the same).
   */
  readonly watchTimeoutSeconds?: () => number;
  /** Time until response headers (default 30 s). */
  readonly headersTimeoutMs?: number;
  /**
   * Longest one list page may take, headers to last byte (default 60 s, the API server's own
   * --request-timeout default: a real API server has ended the request by then). Bounds a server
   * that trickles a body a byte at a time, which the idle timeout between chunks never catches.
   */
  readonly listPageTimeoutMs?: number;
}

/** A request the API server answered with a failure status. */
class ApiStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The server's `Retry-After` (429 from API Priority and Fairness, 503), ms; 0 when it said none. */
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

/** The longest `Retry-After` honoured (ms): a hostile value must not park a kind for hours. */
const MAX_RETRY_AFTER_MS = 60_000;

/** `Retry-After` in seconds (RFC 9110 §10.2.3; the API server sends seconds), as ms within MAX_RETRY_AFTER_MS. */
function retryAfterMs(header: string | string[] | undefined): number {
  const text = Array.isArray(header) ? header[0] : header;
  if (text === undefined || !/^\s*\d{1,9}\s*$/.test(text)) return 0;
  return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
}

/** What the API server sent was refused outright (the view keeps what it had). */
class RefusedError extends Error {}

type WatchEnd = 'expired' | 'ended' | 'relist';

/** A watch that ends this soon without an event is not resumed at once (a server that closes at once must not spin us). */
const QUICK_END_MS = 1000;

export class Reflector {
  readonly type: WatchedType;
  /** Resolves once the first list was delivered (or the kind found not served), or on `stop`. */
  readonly synced: Promise<void>;
  readonly #conn: ApiConnection;
  readonly #sink: ReflectorSink;
  readonly #opts: ReflectorOptions;
  readonly #backoff: Backoff;
  readonly #missingBackoff: Backoff;
  readonly #abort = new AbortController();
  #markSynced: () => void = () => undefined;
  #stopped = false;
  #running: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #stale = false;

  constructor(conn: ApiConnection, type: WatchedType, sink: ReflectorSink, opts: ReflectorOptions) {
    this.type = type;
    this.#conn = conn;
    this.#sink = sink;
    this.#opts = opts;
    this.#backoff = opts.backoff ?? new Backoff(250, 10_000);
    this.#missingBackoff = opts.missingBackoff ?? new Backoff(1000, 30_000);
    this.synced = new Promise((resolve) => {
      this.#markSynced = resolve;
    });
  }

  /** `pods` in `default`, for logs. */
  get description(): string {
    const scope = !this.type.namespaced ? '' : this.#opts.namespace === undefined ? ' in all namespaces' : ` in ${this.#opts.namespace}`;
    const sel = this.#opts.labelSelector === undefined ? '' : ` (${this.#opts.labelSelector})`;
    return `${resourceName(this.type)}${scope}${sel}`;
  }

  start(): void {
    this.#running ??= this.#run();
  }

  /** Stops; `synced` resolves too (a source stopped while starting must not wait for a list that will never come). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    this.#wake?.();
    this.#markSynced();
    await this.#running;
  }

  async #run(): Promise<void> {
    let rv: string | undefined;
    while (!this.#stopped) {
      try {
        if (rv === undefined) {
          const listed = await this.#list();
          if (listed === 'missing') {
            this.#sink.missing();
            this.#healthy();
            this.#markSynced();
            await this.#sleep(this.#missingBackoff.next());
            continue;
          }
          this.#missingBackoff.reset();
          this.#sink.replace(listed.items, listed.refused);
          rv = listed.rv;
          this.#healthy();
          this.#backoff.reset();
          this.#markSynced();
        }
        const started = Date.now();
        let events = 0;
        const end = await this.#watch(rv, (next) => {
          rv = next;
          events++;
        });
        const elapsed = Date.now() - started;
        if (end === 'expired' || end === 'relist') rv = undefined;
        // A 410 on a watch that ran is the normal way to a fresh list, at once; a watch refused as
        // soon as it opened (a server answering every watch with 410 or 404) waits like any failure,
        // or list-watch-410 would spin as fast as the network allows. A watch that did bring events
        // but ended within QUICK_END_MS (a server closing after every event) is resumed no sooner
        // than QUICK_END_MS after it began: at most one watch a second per kind.
        if (end === 'relist' || (events === 0 && elapsed < QUICK_END_MS)) await this.#sleep(this.#backoff.next());
        else if (elapsed < QUICK_END_MS) await this.#sleep(QUICK_END_MS - elapsed);
      } catch (err) {
        if (this.#stopped) break;
        if (err instanceof RefusedError) {
          this.#sink.problem(err.message);
        } else {
          this.#setStale(true, err instanceof ApiStatusError ? err.message : `${resourceName(this.type)}: ${describeError(err)}`);
        }
        // A throttled request (429, 503) waits at least as long as the server asked.
        await this.#sleep(Math.max(this.#backoff.next(), err instanceof ApiStatusError ? err.retryAfterMs : 0));
      }
    }
  }

  #healthy(): void {
    this.#setStale(false, undefined);
  }

  #setStale(stale: boolean, reason: string | undefined): void {
    if (stale === this.#stale && !stale) return;
    this.#stale = stale;
    this.#sink.health(stale, reason);
  }

  #query(extra: Record<string, string>): Record<string, string> {
    const q: Record<string, string> = { ...extra };
    if (this.#opts.labelSelector !== undefined && this.#opts.labelSelector !== '') q['labelSelector'] = this.#opts.labelSelector;
    if (this.#opts.fieldSelector !== undefined && this.#opts.fieldSelector !== '') q['fieldSelector'] = this.#opts.fieldSelector;
    return q;
  }

  get #path(): string {
    return collectionPath(this.type, this.#opts.namespace);
  }

  /** Every object, page by page, at one revision; 'missing' when the kind is not served. */
  async #list(): Promise<{ items: RawObject[]; refused: RefusedObject[]; rv: string } | 'missing'> {
    const { limits } = this.#opts;
    let items: RawObject[] = [];
    let refused: RefusedObject[] = [];
    let cont: string | undefined;
    let rv = '';
    // A real API server fills every page but the last (it reads on until `limit` objects match),
    // so a complete list takes ceil(maxObjectsPerKind / listPageSize) pages; twice that, and a
    // continue token handed back unchanged, are a server looping, not a large list.
    const maxPages = Math.max(16, 2 * Math.ceil(limits.maxObjectsPerKind / limits.listPageSize));
    const tokens = new Set<string>();
    for (let pageNo = 1; ; pageNo++) {
      if (pageNo > maxPages) throw new RefusedError(`list ${this.description}: more than ${maxPages} pages of ${limits.listPageSize} without the end of the list; the last view of this kind keeps serving`);
      const q = this.#query({ limit: String(limits.listPageSize), ...(cont === undefined ? {} : { continue: cont }) });
      const deadline = this.#opts.listPageTimeoutMs ?? 60_000;
      const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(deadline)]);
      const res = await this.#conn.get(this.#path, q, signal, { headersMs: this.#opts.headersTimeoutMs ?? 30_000, bodyMs: 60_000 });
      if (res.statusCode === 404) {
        await drain(res.body);
        return 'missing';
      }
      if (res.statusCode === 410 && cont !== undefined) {
        // The continue token outlived its revision: start the list again.
        await drain(res.body);
        items = [];
        refused = [];
        cont = undefined;
        tokens.clear();
        continue;
      }
      if (res.statusCode < 200 || res.statusCode > 299) throw await statusError(res.statusCode, res.body, `list ${this.description}`, res.headers['retry-after']);
      const bytes = await readBounded(res.body, limits.maxPageBytes);
      if (bytes === undefined) throw new RefusedError(`list ${this.description}: a page of ${limits.listPageSize} objects is over ${limits.maxPageBytes} bytes; the last view of this kind keeps serving`);
      const page = parseJson(bytes);
      const pageItems = isRecord(page) && Array.isArray(page['items']) ? (page['items'] as unknown[]) : undefined;
      const meta = isRecord(page) && isRecord(page['metadata']) ? page['metadata'] : undefined;
      if (pageItems === undefined || meta === undefined || typeof meta['resourceVersion'] !== 'string') {
        throw new RefusedError(`list ${this.description}: the answer is not a List with items and metadata.resourceVersion`);
      }
      // An item can only be too large when the whole page is.
      const checkSizes = bytes.length > limits.maxObjectBytes;
      for (const item of pageItems) {
        const obj = this.#asObject(item);
        if (obj === undefined) continue;
        if (checkSizes) {
          const size = Buffer.byteLength(JSON.stringify(item));
          if (size > limits.maxObjectBytes) {
            refused.push({ namespace: obj.metadata.namespace, name: obj.metadata.name, reason: `the object is ${size} bytes, over the ${limits.maxObjectBytes}-byte limit` });
            continue;
          }
        }
        items.push(obj);
      }
      if (items.length + refused.length > limits.maxObjectsPerKind) {
        throw new RefusedError(`list ${this.description}: more than ${limits.maxObjectsPerKind} objects; the last view of this kind keeps serving`);
      }
      rv = meta['resourceVersion'];
      cont = typeof meta['continue'] === 'string' && meta['continue'] !== '' ? meta['continue'] : undefined;
      if (cont === undefined) return { items, refused, rv };
      if (tokens.has(cont)) throw new RefusedError(`list ${this.description}: the API server handed back a continue token already followed (a list that never ends); the last view of this kind keeps serving`);
      tokens.add(cont);
    }
  }

  /** Watches from `rv`, reporting each revision seen; how the watch ended says what to do next. */
  async #watch(rv: string, seen: (rv: string) => void): Promise<WatchEnd> {
    const timeout = this.#opts.watchTimeoutSeconds?.() ?? Math.round(300 + Math.random() * 300);
    const q = this.#query({ watch: '1', resourceVersion: rv, allowWatchBookmarks: 'true', timeoutSeconds: String(timeout) });
    // A silent connection longer than the server-side timeout (plus a margin) is a dead one, and so
    // is one the server keeps open (trickling) past it: the watch is resumed from the last revision.
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout((timeout + 60) * 1000)]);
    const res = await this.#conn.get(this.#path, q, signal, { headersMs: this.#opts.headersTimeoutMs ?? 30_000, bodyMs: (timeout + 60) * 1000 });
    if (res.statusCode === 410) {
      await drain(res.body);
      return 'expired';
    }
    if (res.statusCode === 404) {
      await drain(res.body);
      return 'expired';
    }
    if (res.statusCode < 200 || res.statusCode > 299) throw await statusError(res.statusCode, res.body, `watch ${this.description}`, res.headers['retry-after']);
    this.#healthy();
    const maxLine = maxWatchLineBytes(this.#opts.limits);
    let buf: Buffer[] = [];
    let buffered = 0;
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        let data = chunk;
        for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10)) {
          const line = buffered === 0 ? data.subarray(0, nl) : Buffer.concat([...buf, data.subarray(0, nl)]);
          buf = [];
          buffered = 0;
          data = data.subarray(nl + 1);
          if (line.length > maxLine) {
            this.#sink.problem(`watch ${this.description}: an event of ${line.length} bytes is over the ${maxLine}-byte limit; listing again`);
            res.body.destroy();
            return 'relist';
          }
          const end = this.#event(line, seen);
          if (end !== undefined) {
            res.body.destroy();
            return end;
          }
        }
        if (data.length > 0) {
          buf.push(data);
          buffered += data.length;
          if (buffered > maxLine) {
            this.#sink.problem(`watch ${this.description}: an event over the ${maxLine}-byte limit; listing again`);
            res.body.destroy();
            return 'relist';
          }
        }
      }
    } catch (err) {
      if (this.#stopped) return 'ended';
      // The stream broke (API server restarted, connection reset): resume from the last revision.
      if (!(err instanceof Error)) throw err;
    }
    return 'ended';
  }

  /** One watch event line; undefined to go on watching. */
  #event(line: Buffer, seen: (rv: string) => void): WatchEnd | undefined {
    if (line.length === 0 || (line.length === 1 && line[0] === 13)) return undefined;
    const ev = parseJson(line);
    const type = isRecord(ev) ? ev['type'] : undefined;
    const object = isRecord(ev) ? ev['object'] : undefined;
    if (typeof type !== 'string' || !isRecord(object)) {
      this.#sink.problem(`watch ${this.description}: an event that is not {type, object}; listing again`);
      return 'relist';
    }
    if (type === 'ERROR') {
      const code = object['code'];
      if (code === 410) return 'expired';
      throw new ApiStatusError(typeof code === 'number' ? code : 500, `watch ${this.description}: ${typeof object['message'] === 'string' ? object['message'].slice(0, 500) : 'error event'}`);
    }
    const meta = object['metadata'];
    const rv = isRecord(meta) ? meta['resourceVersion'] : undefined;
    if (typeof rv !== 'string' || rv === '') {
      this.#sink.problem(`watch ${this.description}: a ${type} event without metadata.resourceVersion; listing again`);
      return 'relist';
    }
    if (type === 'BOOKMARK') {
      seen(rv);
      return undefined;
    }
    const obj = this.#asObject(object);
    if (obj === undefined) return 'relist';
    if (type === 'ADDED' || type === 'MODIFIED') this.#sink.upsert(obj);
    else if (type === 'DELETED') this.#sink.remove(obj);
    else {
      this.#sink.problem(`watch ${this.description}: unknown event type ${type.slice(0, 40)}; listing again`);
      return 'relist';
    }
    seen(rv);
    return undefined;
  }

  /** An item with its apiVersion and kind set (list items of core kinds come without them); undefined (reported) when it has no name. */
  #asObject(item: unknown): RawObject | undefined {
    const meta = isRecord(item) ? item['metadata'] : undefined;
    if (!isRecord(item) || !isRecord(meta) || typeof meta['name'] !== 'string' || meta['name'] === '') {
      this.#sink.problem(`${this.description}: an object without metadata.name was skipped`);
      return undefined;
    }
    if (meta['namespace'] !== undefined && typeof meta['namespace'] !== 'string') {
      this.#sink.problem(`${this.description}: ${meta['name'].slice(0, 253)}: metadata.namespace is not a string; skipped`);
      return undefined;
    }
    // Only what was asked for: an object of another namespace (or a namespaced kind without one,
    // or a cluster-scoped kind with one) would be served as if it were in scope, or keyed apart
    // from the resource the loader makes of it (which defaults a missing namespace).
    const ns = meta['namespace'] as string | undefined;
    const want = this.#opts.namespace;
    const misplaced = this.type.namespaced ? ns === undefined || ns === '' || (want !== undefined && ns !== want) : ns !== undefined && ns !== '';
    if (misplaced) {
      const where = ns === undefined || ns === '' ? 'no namespace' : `namespace ${ns.slice(0, 63)}`;
      this.#sink.problem(`${this.description}: ${meta['name'].slice(0, 253)} came with ${where}, outside what was asked for; skipped`);
      return undefined;
    }
    item['apiVersion'] = apiVersionOf(this.type);
    item['kind'] = this.type.kind;
    return item as RawObject;
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  const cause = (err as { cause?: unknown }).cause;
  const inner = cause instanceof Error ? `: ${cause.message}` : '';
  return `${typeof code === 'string' ? `${code} ` : ''}${err.message}${inner}`;
}

/** The body, or undefined (and the body destroyed) once it passes `max` bytes. */
async function readBounded(body: Readable, max: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      body.destroy();
      return undefined;
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

async function drain(body: Readable): Promise<void> {
  await readBounded(body, 64 * 1024).catch(() => undefined);
}

/** A failure status with the Status message the API server sent (its first 500 characters). */
async function statusError(status: number, body: Readable, what: string, retryAfter?: string | string[]): Promise<ApiStatusError> {
  const bytes = await readBounded(body, 64 * 1024).catch(() => undefined);
  const parsed = bytes === undefined ? undefined : parseJson(bytes);
  const message = isRecord(parsed) && typeof parsed['message'] === 'string' ? parsed['message'].slice(0, 500) : '';
  const hint = status === 401 ? ' (the credentials were refused)' : status === 403 ? ' (RBAC: the service account may not do this)' : '';
  return new ApiStatusError(status, `${what}: HTTP ${status}${hint}${message === '' ? '' : `: ${message}`}`, retryAfterMs(retryAfter));
}
