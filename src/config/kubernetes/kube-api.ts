import type { ApiConnection } from './connection.js';

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

/**
 * The largest answer read, in bytes: an object is at most about 1.5 MiB in etcd (the API server's
 * default request limit is 3 MiB), so 8 MiB bounds a hostile or broken server without refusing
 * any real object.
 */
export const MAX_KUBE_ANSWER_BYTES = 8 * 1024 * 1024;

/**
 * A KubeApi over the gateway's API connection (the one the watches use: same credentials, TLS and
 * connection pool). One call's deadline is `timeoutMs` (default 10,000: client-go leader
 * election's renew deadline); answers past MAX_KUBE_ANSWER_BYTES reject.
 */
export function connectionKubeApi(connection: ApiConnection, timeoutMs = 10_000): KubeApi {
  const timeouts = { headersMs: timeoutMs, bodyMs: timeoutMs };
  const call = async (method: 'GET' | 'PUT' | 'POST', path: string, body?: unknown): Promise<KubeApiResponse> => {
    const answer = await connection.send(method, path, { body, signal: AbortSignal.timeout(timeoutMs), timeouts });
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
  };
}

/** The `message` of a Kubernetes `Status` answer, for logs; else the HTTP status. */
export function kubeErrorMessage(res: KubeApiResponse): string {
  const body = res.body;
  if (typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string') {
    return `${res.status}: ${(body as { message: string }).message.slice(0, 300)}`;
  }
  return `HTTP ${res.status}`;
}
