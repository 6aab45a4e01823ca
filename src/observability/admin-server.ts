import { createServer, type Server, type ServerResponse } from 'node:http';
import { refuseConnect } from '../core/refuse-connect.js';
import type { AddressInfo } from 'node:net';
import { GatewayError, toOpenAIError } from '../core/errors.js';

/** What `/metrics` answers from: a prom-client Registry, or the workers' metrics combined. */
export interface MetricsText {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** `/readyz`'s answer: 200 when `ready`, else 503; every field is shown as JSON. */
export interface Readiness {
  readonly ready: boolean;
  readonly reason?: string;
  readonly version?: number;
}

export interface AdminStatus {
  /** Alive: the process answers. Always true while the server runs. */
  readonly live: () => boolean;
  /**
   * Ready: a config is loaded, every listener is bound, and the gateway is not shutting down.
   * A promise when the answer is gathered (the primary of `serve --workers N` asks its workers).
   */
  readonly ready: () => Readiness | Promise<Readiness>;
  /** Prometheus registry for `/metrics`; undefined while the gateway starts. */
  readonly metrics?: () => MetricsText | undefined;
  /** The JSON for `/debug/endpoints`: every pool's endpoints as the gateway sees them now. */
  readonly endpoints?: () => unknown;
}

/** A running admin port. */
export interface AdminServer {
  readonly server: Server;
  readonly port: number;
  /** Stops accepting and closes every connection (probes hold none for long). */
  close(): Promise<void>;
}

function send(res: ServerResponse, code: number, contentType: string, text: string, headers: Readonly<Record<string, string>> = {}): void {
  res.writeHead(code, { ...headers, 'content-type': contentType, 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

/** The methods every admin path answers: it only reads (HEAD as GET without the body, RFC 9110 §9.3.2). */
export const ADMIN_METHODS = 'GET, HEAD';

/**
 * The admin port (default 9090, loopback): `/healthz` (liveness), `/readyz` (readiness),
 * `/metrics` (Prometheus) and `/debug/endpoints`, answered by the gateway itself and never
 * routed. JSON bodies so a person with curl sees why it is not ready. Every path only reads: GET
 * and HEAD are answered, any other method gets 405 `method_not_allowed` with `Allow: GET, HEAD`
 * (a `POST /readyz` is a client's mistake, never a probe that passed). Rejects with the listen
 * error (EADDRINUSE, …) when the port cannot be bound.
 */
export async function startAdminServer(address: string, port: number, status: AdminStatus): Promise<AdminServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      const err = new GatewayError('method_not_allowed', `the admin port answers ${ADMIN_METHODS} only, not ${req.method ?? '?'}`, { allow: ADMIN_METHODS });
      // Node does not read an unread request body by itself on a keep-alive connection: close it.
      return send(res, err.status, 'application/json', JSON.stringify(toOpenAIError(err)), { allow: ADMIN_METHODS, connection: 'close' });
    }
    if (path === '/healthz') return send(res, 200, 'application/json', JSON.stringify({ status: 'ok' }));
    if (path === '/readyz') {
      const answer = (r: Readiness): void => send(res, r.ready ? 200 : 503, 'application/json', JSON.stringify({ status: r.ready ? 'ready' : 'not ready', ...r }));
      const r = status.ready();
      if (!(r instanceof Promise)) return answer(r);
      void r.then(answer, (err: unknown) => answer({ ready: false, reason: String(err) }));
      return;
    }
    const registry = path === '/metrics' ? status.metrics?.() : undefined;
    if (registry !== undefined) {
      void registry.metrics().then(
        (text) => send(res, 200, registry.contentType, text),
        (err: unknown) => send(res, 500, 'text/plain', `metrics failed: ${String(err)}`),
      );
      return;
    }
    if (path === '/debug/endpoints' && status.endpoints !== undefined) {
      const view = status.endpoints();
      if (!(view instanceof Promise)) return send(res, 200, 'application/json', JSON.stringify(view, null, 2));
      void view.then(
        (v: unknown) => send(res, 200, 'application/json', JSON.stringify(v, null, 2)),
        (err: unknown) => send(res, 503, 'application/json', JSON.stringify({ error: { message: String(err), type: 'unavailable', param: null, code: 'debug_unavailable' } })),
      );
      return;
    }
    send(res, 404, 'application/json', JSON.stringify({ error: { message: `no admin route ${path}`, type: 'not_found_error', param: null, code: 'route_not_found' } }));
  });
  // CONNECT comes to no request handler (Node's 'connect' event): the same 405.
  refuseConnect(server, { allow: ADMIN_METHODS, body: (req) => JSON.stringify(toOpenAIError(new GatewayError('method_not_allowed', `the admin port answers ${ADMIN_METHODS} only, not ${req.method ?? 'CONNECT'}`, { allow: ADMIN_METHODS }))) });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
