import { createServer, maxHeaderSize, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { GatewayError, toOpenAIError } from '../core/errors.js';
import { refuseConnect } from '../core/refuse-connect.js';
import { hostProblem, httpVersionProblem, InFlight, PREFILLER_HEADER, type Gateway } from '../gateway/index.js';
import type { Logger } from '../observability/logger.js';
import { answerClientErrors } from '../upstream/client-error.js';
import { sendError } from '../upstream/respond.js';
import { Watchdog } from '../upstream/watchdog.js';
import { localDecodeEndpoint } from './local-decode.js';
import { loopOf } from './loop.js';
import { passThrough } from './passthrough.js';
import { servePinned, type PinnedDeps } from './pinned.js';

export interface SidecarOptions {
  /** The core, started on the same configuration as the endpoint picker (the pool and its pods). */
  readonly gateway: Gateway;
  /** The decode pod's InferencePool, `namespace/name`. */
  readonly poolKey: string;
  /** The local decode server's origin (`--decode-url`). */
  readonly decodeUrl: URL;
  /** The name the local decode server has in log lines (default `local-decode`). */
  readonly decodeName?: string;
  readonly address: string;
  /** 0 = any free port. */
  readonly port: number;
  readonly logger: Logger;
}

export interface RunningSidecar {
  readonly port: number;
  /** Requests being served (pinned pairs and pass-through exchanges). */
  readonly inFlight: InFlight;
  /**
   * Stops accepting connections, lets requests in flight finish for up to `graceMs`, then stops
   * those left (a stream gets an SSE error event, `gateway_shutting_down`) and closes everything.
   */
  close(graceMs: number): Promise<void>;
}

/** Time the requests stopped at the end of the grace period get to write their last bytes. */
const STOP_FLUSH_MS = 1000;

/** Idle upstream connections are closed after this, below uvicorn's 5 s keep-alive (as the proxy does). */
const UPSTREAM_KEEP_ALIVE_MS = 4000;

/**
 * `infergate pd-sidecar`: an HTTP/1.1 server beside one decode server. Requests carrying
 * `x-prefiller-host-port` run as a pinned prefill/decode pair (pinned.ts); every other request
 * passes to the decode server unchanged (passthrough.ts). Throws when the port cannot be bound.
 */
export async function startSidecar(options: SidecarOptions): Promise<RunningSidecar> {
  const dispatcher = new Agent({ keepAliveTimeout: UPSTREAM_KEEP_ALIVE_MS, keepAliveMaxTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 });
  const watchdog = new Watchdog();
  const inFlight = new InFlight();
  const decode = localDecodeEndpoint(options.decodeUrl, options.decodeName ?? 'local-decode');
  const deps: PinnedDeps = { gateway: options.gateway, poolKey: options.poolKey, decode, dispatcher, watchdog, inFlight };
  const { logger } = options;
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    // An HTTP/1 version other than 1.x, an HTTP/1.1 request without Host or a Host that is no
    // host: refused as the gateway's listeners refuse them, in words (Node answers neither).
    const refused =
      httpVersionProblem(req.httpVersionMajor, req.httpVersionMinor) ?? hostProblem(req.rawHeaders, req.url ?? '/', req.httpVersionMajor === 1 && req.httpVersionMinor === 1) ?? loopOf(req.headers);
    if (refused !== undefined) {
      // Refused before a byte goes on (a loop ends here, whichever turn it is).
      sendError(res, refused, { requestId: typeof req.headers['x-request-id'] === 'string' ? req.headers['x-request-id'] : '', sse: false, close: true });
      req.resume();
      return;
    }
    const prefiller = req.headers[PREFILLER_HEADER];
    const served = prefiller === undefined ? passThrough(req, res, decode, dispatcher, inFlight) : servePinned(deps, req, res, prefiller);
    served.catch((err: unknown) => {
      logger.error({ err }, 'sidecar request failed unexpectedly');
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  };
  // A missing Host is refused by `handle` (400 invalid_host in words), not by Node's bare 400.
  const server: Server = createServer({ requireHostHeader: false }, handle);
  // CONNECT reaches no handler in Node (its 'connect' event): the sidecar is no tunnel.
  refuseConnect(server, { allow: 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH', body: () => JSON.stringify(toOpenAIError(new GatewayError('method_not_allowed', 'the sidecar does not serve CONNECT requests'))) });
  // Node's default keeps the first ~1000 header fields and silently drops the rest (a request the
  // picker sent here whole would reach the decode server without some of them).
  server.maxHeadersCount = 0;
  answerClientErrors(server, maxHeaderSize);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    port,
    inFlight,
    close: (graceMs) => {
      closed ??= (async () => {
        inFlight.drain();
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        if (!(await inFlight.settled(graceMs))) {
          logger.warn({ inFlight: inFlight.size }, 'shutdown grace period over: stopping the requests still in flight');
          inFlight.stopAll(new GatewayError('gateway_shutting_down', `the sidecar is shutting down: the request outlived the ${graceMs} ms grace period`));
          await inFlight.settled(STOP_FLUSH_MS);
        }
        server.closeAllConnections();
        await stopped;
        watchdog.close();
        await dispatcher.close();
      })();
      return closed;
    },
  };
}
