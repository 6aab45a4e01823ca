import { parseAllDocuments } from 'yaml';
import { ApiConnection } from '../../src/config/kubernetes/connection.js';
import { connectionKubeApi, type KubeApi, type KubeApiResponse } from '../../src/config/kubernetes/kube-api.js';
import type { SourceLog } from '../../src/config/source.js';
import type { FakeApiServer } from './fake-apiserver.js';

/**
 * Test helpers for status reporting against the fake API server: a KubeApi per replica that
 * counts its status writes, can run a hook before a write (another controller writing in
 * between), and can "die" (every call fails, as when the process is gone or cut off).
 */
export class ReplicaApi implements KubeApi {
  /** PUTs to a `/status` subresource this replica sent, with the answer's status. */
  readonly statusPuts: Array<{ path: string; status: number }> = [];
  /** Every call fails from now on (no answer, as from a dead or partitioned replica). */
  dead = false;
  /** Runs before the next status PUT is sent (once). */
  beforeStatusPut: (() => void) | undefined;
  readonly #connection: ApiConnection;
  readonly #inner: KubeApi;

  constructor(server: FakeApiServer) {
    // The fake server takes any client: no credentials to apply.
    this.#connection = new ApiConnection({ getCurrentCluster: () => ({ server: server.url }), applyToHTTPSOptions: async () => undefined });
    this.#inner = connectionKubeApi(this.#connection, 5_000);
  }

  async get(path: string): Promise<KubeApiResponse> {
    this.#check();
    return this.#inner.get(path);
  }

  async put(path: string, body: unknown): Promise<KubeApiResponse> {
    this.#check();
    const isStatus = path.endsWith('/status');
    if (isStatus && this.beforeStatusPut !== undefined) {
      const hook = this.beforeStatusPut;
      this.beforeStatusPut = undefined;
      hook();
    }
    const res = await this.#inner.put(path, body);
    if (isStatus) this.statusPuts.push({ path, status: res.status });
    return res;
  }

  async post(path: string, body: unknown): Promise<KubeApiResponse> {
    this.#check();
    return this.#inner.post(path, body);
  }

  close(): Promise<void> {
    return this.#connection.close();
  }

  #check(): void {
    if (this.dead) throw new Error('connect ECONNREFUSED (replica cut off)');
  }
}

/** Applies every document of `yaml` to the fake API server, as `kubectl apply -f` would. */
export function applyYaml(server: FakeApiServer, yaml: string): void {
  for (const doc of parseAllDocuments(yaml)) {
    const obj = doc.toJSON() as Record<string, unknown> | null;
    if (obj !== null) server.apply(obj);
  }
}

/** A SourceLog collecting lines (message and fields). */
export function memoryLog(): SourceLog & { lines: Array<{ message: string; fields: Record<string, unknown> }> } {
  const lines: Array<{ message: string; fields: Record<string, unknown> }> = [];
  return {
    lines,
    info: (fields, message) => void lines.push({ message, fields }),
    warn: (fields, message) => void lines.push({ message, fields }),
  };
}
