import type { RequestOptions } from 'node:https';
import { Agent, request } from 'undici';

/**
 * The few Kubernetes API calls status reporting and the Lease need, as one small interface so a
 * test's in-memory API, the fake API server over HTTP, or a client built from
 * `@kubernetes/client-node`'s KubeConfig all fit. Paths are API paths
 * (`/apis/coordination.k8s.io/v1/namespaces/ns/leases/name`); bodies are JSON values.
 */
export interface KubeApi {
  get(path: string): Promise<KubeApiResponse>;
  put(path: string, body: unknown): Promise<KubeApiResponse>;
  post(path: string, body: unknown): Promise<KubeApiResponse>;
}

/**
 * An answer of the API server: its HTTP status and the parsed JSON body (a `Status` object for
 * errors; undefined when the body was empty or not JSON). A network failure rejects instead.
 */
export interface KubeApiResponse {
  readonly status: number;
  readonly body: unknown;
}

/** How to reach the API server: what a kubeconfig context or the in-cluster service account gives. */
export interface KubeConnection {
  /** `https://host:port` (or `http://` for a test server). */
  readonly server: string;
  /** PEM bundle trusted for the server's certificate (kubeconfig `certificate-authority-data`). */
  readonly ca?: string | Buffer;
  /** Client certificate and key (PEM), for certificate authentication. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /**
   * Bearer token, or a function read on every call: in-cluster tokens are rotated by the kubelet
   * (bound service-account tokens), so the file must be re-read, not cached for the process's life.
   */
  readonly token?: string | (() => string | undefined);
  /** The whole `Authorization` header, asked for on every call (wins over `token`): exec and OIDC credentials. */
  readonly authorization?: () => Promise<string | undefined>;
  /** kubeconfig `insecure-skip-tls-verify`. */
  readonly insecureSkipTlsVerify?: boolean;
  /** One call's deadline, in ms. Default 10,000 (client-go leader election's renew deadline). */
  readonly timeoutMs?: number;
}

/**
 * The largest answer read, in bytes: an object is at most about 1.5 MiB in etcd (the API server's
 * default request limit is 3 MiB), so 8 MiB bounds a hostile or broken server without refusing
 * any real object.
 */
export const MAX_KUBE_ANSWER_BYTES = 8 * 1024 * 1024;

/** A KubeApi over undici for one connection. `close()` ends its connections. */
export function httpKubeApi(conn: KubeConnection): KubeApi & { close(): Promise<void> } {
  const base = new URL(conn.server);
  const timeoutMs = conn.timeoutMs ?? 10_000;
  const dispatcher = new Agent({
    connect: {
      ...(conn.ca === undefined ? {} : { ca: conn.ca }),
      ...(conn.cert === undefined ? {} : { cert: conn.cert }),
      ...(conn.key === undefined ? {} : { key: conn.key }),
      rejectUnauthorized: conn.insecureSkipTlsVerify !== true,
    },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const call = async (method: 'GET' | 'PUT' | 'POST', path: string, body?: unknown): Promise<KubeApiResponse> => {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (conn.authorization !== undefined) {
      const value = await conn.authorization();
      if (value !== undefined && value !== '') headers['authorization'] = value;
    } else {
      const token = typeof conn.token === 'function' ? conn.token() : conn.token;
      if (token !== undefined && token !== '') headers['authorization'] = `Bearer ${token}`;
    }
    if (body !== undefined) headers['content-type'] = 'application/json';
    const url = new URL(path, base);
    const answer = await request(url, {
      method,
      headers,
      dispatcher,
      signal: AbortSignal.timeout(timeoutMs),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    let size = 0;
    const chunks: Buffer[] = [];
    for await (const chunk of answer.body) {
      const buf = chunk as Buffer;
      size += buf.length;
      if (size > MAX_KUBE_ANSWER_BYTES) {
        answer.body.destroy();
        throw new Error(`${method} ${path}: answer larger than ${MAX_KUBE_ANSWER_BYTES} bytes`);
      }
      chunks.push(buf);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: answer.statusCode, body: parsed };
  };
  return {
    get: (path) => call('GET', path),
    put: (path, body) => call('PUT', path, body),
    post: (path, body) => call('POST', path, body),
    close: () => dispatcher.close(),
  };
}

/**
 * What status reporting needs of `@kubernetes/client-node`'s KubeConfig (1.x), typed structurally
 * so this file does not load the library: the current cluster, and TLS material and credentials
 * applied to request options (fresh on every call, so rotating tokens and exec plugins work).
 */
export interface KubeConfigLike {
  getCurrentCluster(): { readonly server: string; readonly skipTLSVerify?: boolean } | null;
  applyToHTTPSOptions(opts: RequestOptions): Promise<void>;
}

/**
 * A KubeApi for a loaded KubeConfig (in-cluster, `--kubeconfig`, $KUBECONFIG): TLS material is
 * read once (certificate rotation needs a restart, as with client-go's transport cache), the
 * Authorization header on every call. Throws when the current context names no cluster.
 */
export async function kubeApiFromKubeConfig(kc: KubeConfigLike, timeoutMs?: number): Promise<KubeApi & { close(): Promise<void> }> {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error('the kubeconfig\'s current context names no cluster');
  const tls: RequestOptions = {};
  await kc.applyToHTTPSOptions(tls);
  const pem = (v: unknown): string | Buffer | undefined => (typeof v === 'string' || Buffer.isBuffer(v) ? v : undefined);
  const ca = pem(tls.ca);
  const cert = pem(tls.cert);
  const key = pem(tls.key);
  return httpKubeApi({
    server: cluster.server,
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    insecureSkipTlsVerify: cluster.skipTLSVerify === true || tls.rejectUnauthorized === false,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    authorization: async () => {
      const opts: RequestOptions = {};
      await kc.applyToHTTPSOptions(opts);
      const headers = opts.headers as Record<string, unknown> | undefined;
      const value = headers?.['Authorization'] ?? headers?.['authorization'];
      return typeof value === 'string' ? value : undefined;
    },
  });
}

/** The `message` of a Kubernetes `Status` answer, for logs; else the HTTP status. */
export function kubeErrorMessage(res: KubeApiResponse): string {
  const body = res.body;
  if (typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string') {
    return `${res.status}: ${(body as { message: string }).message.slice(0, 300)}`;
  }
  return `HTTP ${res.status}`;
}
