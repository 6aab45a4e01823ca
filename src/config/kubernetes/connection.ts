import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import { Agent, request, type Dispatcher } from 'undici';

/*
 * How the gateway reaches the API server. @kubernetes/client-node's KubeConfig does what it is good
 * at: finding and reading the configuration (in-cluster service account, a kubeconfig file, exec
 * and token-file credentials that rotate) and turning it into TLS material and an Authorization
 * header. The requests themselves go through undici (already the proxy's HTTP client): client-node's
 * own fetch/watch machinery (node-fetch) reads watch lines and list bodies without any bound, and
 * every byte the API server sends is bounded here (limits.ts).
 */

/** The kubeconfig could not be found or read, or names nothing usable. */
export class KubeConfigError extends Error {
  override readonly name = 'KubeConfigError';
}

/** Where the in-cluster service account token is mounted (Kubernetes docs, "Accessing the API from a Pod"). */
const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * The client configuration, in the order the flags promise: `--kubeconfig PATH`; else the in-cluster
 * service account (when $KUBERNETES_SERVICE_HOST is set and the token is mounted); else
 * $KUBECONFIG, else ~/.kube/config. Throws KubeConfigError naming what was tried.
 */
export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): { config: KubeConfig; from: string } {
  const kc = new KubeConfig();
  let from = path === undefined ? 'default' : `--kubeconfig ${path}`;
  try {
    if (path !== undefined) {
      kc.loadFromFile(path);
    } else if (env['KUBERNETES_SERVICE_HOST'] !== undefined && env['KUBERNETES_SERVICE_HOST'] !== '' && existsSync(SERVICE_ACCOUNT_TOKEN)) {
      from = 'in-cluster service account';
      kc.loadFromCluster();
    } else {
      const file = env['KUBECONFIG'];
      if (file === undefined || file === '') {
        const home = env['HOME'] ?? env['USERPROFILE'];
        const def = home === undefined ? undefined : `${home}/.kube/config`;
        if (def === undefined || !existsSync(def)) throw new KubeConfigError('no Kubernetes client configuration: not in a pod, $KUBECONFIG is not set and ~/.kube/config does not exist (use --kubeconfig PATH)');
        from = def;
        kc.loadFromFile(def);
      } else {
        // $KUBECONFIG may list several files, merged as kubectl does.
        from = `$KUBECONFIG ${file}`;
        kc.loadFromDefault();
      }
    }
  } catch (err) {
    if (err instanceof KubeConfigError) throw err;
    throw new KubeConfigError(`cannot read the Kubernetes client configuration (${from}): ${err instanceof Error ? err.message : String(err)}`);
  }
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new KubeConfigError(`${from}: the current context names no cluster`);
  if (cluster.proxyUrl !== undefined && cluster.proxyUrl !== '') throw new KubeConfigError(`${from}: cluster ${cluster.name} uses proxy-url, which infergate does not support`);
  if (cluster.server.startsWith('http:') && cluster.skipTLSVerify !== true) {
    // client-node's own rule: plaintext only when the kubeconfig says TLS is not wanted.
    throw new KubeConfigError(`${from}: server ${cluster.server} is plain HTTP; set insecure-skip-tls-verify: true on the cluster to allow it`);
  }
  return { config: kc, from };
}

/**
 * What a connection needs of client-node's KubeConfig: the current cluster, and TLS material and
 * credentials applied to request options (asked for on every request, so rotating tokens and exec
 * plugins work). Structural, so a test can stand in for the credentials.
 */
export interface KubeConfigLike {
  getCurrentCluster(): { readonly server: string } | null;
  applyToHTTPSOptions(opts: RequestOptions): Promise<void>;
}

/** A response whose body the caller must consume or destroy. */
export type ApiResponse = Dispatcher.ResponseData;

/** Per-request timeouts (ms). */
export interface RequestTimeouts {
  /** Until the response headers. */
  readonly headersMs: number;
  /** Silence between two body chunks (a watch's bookmarks and the server-side timeout keep it busy). */
  readonly bodyMs: number;
}

/**
 * One API server: its base URL, a connection pool, and the credentials applied per request (so a
 * rotated token or client certificate is picked up without a restart).
 */
export class ApiConnection {
  readonly server: string;
  readonly #kc: KubeConfigLike;
  #agent: Agent | undefined;
  #tlsKey = '';

  constructor(kc: KubeConfigLike) {
    const cluster = kc.getCurrentCluster();
    if (cluster === null) throw new KubeConfigError('the current context names no cluster');
    this.#kc = kc;
    this.server = cluster.server.replace(/\/+$/, '');
  }

  /** GET `path` (with `query`); resolves once the headers arrived. */
  get(path: string, query: Readonly<Record<string, string>>, signal: AbortSignal, timeouts: RequestTimeouts): Promise<ApiResponse> {
    return this.send('GET', path, { query, signal, timeouts });
  }

  /**
   * One request with the current credentials: `body` is sent as JSON. Resolves once the headers
   * arrived; the caller reads (bounded) or destroys the body.
   */
  async send(method: 'GET' | 'PUT' | 'POST', path: string, options: { readonly query?: Readonly<Record<string, string>>; readonly body?: unknown; readonly signal: AbortSignal; readonly timeouts: RequestTimeouts }): Promise<ApiResponse> {
    const opts: RequestOptions = {};
    // applyToHTTPSOptions also builds an https.Agent we do not use: the TLS material is what we take.
    // It may run the kubeconfig's exec plugin, which client-node waits on without a deadline (one
    // waiting for an interactive login would hang start-up without a word): it gets the headers
    // timeout, and the request's abort signal.
    await withDeadline(this.#kc.applyToHTTPSOptions(opts), options.timeouts.headersMs, options.signal);
    const headers: Record<string, string> = { accept: 'application/json' };
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (typeof v === 'string' || typeof v === 'number') headers[k.toLowerCase()] = String(v);
    if (opts.auth !== undefined && opts.auth !== null) headers['authorization'] = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const qs = options.query === undefined ? '' : new URLSearchParams(options.query).toString();
    return request(`${this.server}${path}${qs === '' ? '' : `?${qs}`}`, {
      method,
      headers,
      signal: options.signal,
      dispatcher: this.#dispatcher(opts),
      headersTimeout: options.timeouts.headersMs,
      bodyTimeout: options.timeouts.bodyMs,
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    });
  }

  async close(): Promise<void> {
    const a = this.#agent;
    this.#agent = undefined;
    await a?.close().catch(() => undefined);
  }

  /** The pool for the current TLS material; a new one when it changed (certificate rotation). */
  #dispatcher(opts: RequestOptions): Agent {
    const material = [opts.ca, opts.cert, opts.key, String(opts.rejectUnauthorized), opts.servername].map((v) => (v === undefined ? '' : Buffer.isBuffer(v) ? v.toString('base64') : String(v)));
    const key = createHash('sha256').update(material.join('|')).digest('hex');
    if (this.#agent !== undefined && key === this.#tlsKey) return this.#agent;
    const old = this.#agent;
    this.#tlsKey = key;
    const connect: Record<string, unknown> = {};
    if (opts.ca !== undefined) connect['ca'] = opts.ca;
    if (opts.cert !== undefined) connect['cert'] = opts.cert;
    if (opts.key !== undefined) connect['key'] = opts.key;
    if (opts.rejectUnauthorized === false) connect['rejectUnauthorized'] = false;
    if (opts.servername !== undefined) connect['servername'] = opts.servername;
    this.#agent = new Agent({ connect, keepAliveTimeout: 30_000 });
    // Requests already on the old pool finish there.
    void old?.close().catch(() => undefined);
    return this.#agent;
  }
}

/** `work`, or a KubeConfigError once `ms` pass (or the signal's reason once it aborts). */
async function withDeadline(work: Promise<void>, ms: number, signal: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const bounded = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new KubeConfigError(`the kubeconfig's credentials did not come within ${ms} ms (an exec plugin waiting for a login?)`)), ms);
    onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([work, bounded]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal.removeEventListener('abort', onAbort);
  }
}
