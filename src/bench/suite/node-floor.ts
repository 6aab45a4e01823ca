import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, type Dispatcher } from 'undici';

/**
 * The overhead scenario's Node floor: the least a proxy written on Node's `http` server and
 * undici can cost per request. It reads the request body, sends it to one engine with undici's
 * dispatch API, and writes the answer's status, headers and body straight back with backpressure
 * — no routing, parsing, metrics, logs or limits, nothing a gateway needs. What it costs is what
 * Node's HTTP stack costs, so the gap between it and nginx is the runtime's, and the gap between
 * it and the gateway is the gateway's own work. A benchmark baseline, never a proxy to deploy.
 */
export interface NodeFloorProxy {
  readonly port: number;
  close(): Promise<void>;
}

/** Response headers a proxy does not pass on (hop-by-hop, RFC 9110 §7.6.1, and the framing Node sets itself). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection']);

export async function startNodeFloorProxy(options: { readonly upstream: string; readonly host?: string; readonly port?: number }): Promise<NodeFloorProxy> {
  const agent = new Agent({ keepAliveTimeout: 60_000 });
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: IncomingHttpHeaders = { 'content-type': req.headers['content-type'] ?? 'application/json' };
      const handler: Dispatcher.DispatchHandler = {
        onConnect: () => undefined,
        onError: (err) => res.destroy(err),
        onHeaders: (status, raw, resume) => {
          const out: Record<string, string> = {};
          for (let i = 0; i < raw.length; i += 2) {
            const name = String(raw[i]);
            if (!HOP_BY_HOP.has(name.toLowerCase())) out[name] = String(raw[i + 1]);
          }
          res.writeHead(status, out);
          res.on('drain', resume);
          return true;
        },
        onData: (chunk) => res.write(chunk),
        onComplete: () => res.end(),
      };
      agent.dispatch({ origin: options.upstream, path: req.url ?? '/', method: req.method ?? 'GET', headers, body: chunks.length === 0 ? null : Buffer.concat(chunks) }, handler);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await agent.close();
    },
  };
}
