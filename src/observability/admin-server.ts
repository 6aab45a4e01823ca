import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface AdminStatus {
  /** Alive: the process answers. Always true while the server runs. */
  readonly live: () => boolean;
  /** Ready: a config is loaded and every listener is bound. */
  readonly ready: () => { ready: boolean; reason?: string; version?: number };
}

/**
 * The admin port (default 9090): `/healthz` (liveness) and `/readyz` (readiness), answered by the
 * gateway itself and never routed. JSON bodies so a person with curl sees why it is not ready.
 */
export async function startAdminServer(address: string, port: number, status: AdminStatus): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    let code = 404;
    let body: unknown = { error: { message: `no admin route ${path}`, type: 'not_found_error', param: null, code: 'route_not_found' } };
    if (path === '/healthz') {
      code = 200;
      body = { status: 'ok' };
    } else if (path === '/readyz') {
      const r = status.ready();
      code = r.ready ? 200 : 503;
      body = { status: r.ready ? 'ready' : 'not ready', ...r };
    }
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
    res.end(text);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
