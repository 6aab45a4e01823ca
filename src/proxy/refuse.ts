import type { Writable } from 'node:stream';
import type { GatewayError } from '../core/errors.js';
import { isHttp2, type ClientRequest, type ClientResponse } from './client.js';
import { errorAnswer, sendError } from '../upstream/respond.js';

/**
 * How much of a refused upload the gateway still reads and discards before closing, so the
 * refusal reaches the client (nginx's lingering close; its `lingering_time` and
 * `lingering_timeout` are the same 30 s and 5 s).
 */
export interface LingerLimits {
  /** The longest the rest of an upload is read. Default 30 000 ms. */
  readonly totalMs: number;
  /** Reading stops when the client sends nothing for this long. Default 5 000 ms. */
  readonly idleMs: number;
  /** Reading stops after this many bytes discarded. Default 256 MiB. */
  readonly maxBytes: number;
}

export const DEFAULT_LINGER: LingerLimits = { totalMs: 30_000, idleMs: 5_000, maxBytes: 256 * 1024 * 1024 };

/**
 * Refuses a request whose body may still be arriving (over the body limit, no room in the body
 * budget, an unsupported coding, the gateway is shutting down). A request whose body is all here
 * gets an ordinary answer (`Connection: close` only if `draining`; `Retry-After` and `Allow` if
 * the error has them). Otherwise the answer is written whole (with `Connection: close` on
 * HTTP/1.1) but not ended, and the rest of the upload is read and thrown away until the client
 * has sent it all or gives up, or a `limits` bound is reached; only then does the response end
 * and the connection close. Closing at once would leave unread upload bytes in the socket, the
 * kernel would answer them with a TCP reset, and a reset destroys the answer before a client
 * that is still uploading reads it.
 */
export function refuseUpload(req: ClientRequest, res: ClientResponse, err: GatewayError, opts: { requestId: string; draining: boolean }, limits: LingerLimits = DEFAULT_LINGER): void {
  const h1 = !isHttp2(req);
  if (req.complete || res.headersSent) {
    sendError(res, err, { requestId: opts.requestId, sse: false, close: h1 && opts.draining });
    return;
  }
  const { body, headers } = errorAnswer(err, opts.requestId, h1);
  res.writeHead(err.status, headers);
  // Both response kinds are Writables; the union's overloads are not callable as one.
  const out: Writable = res;
  out.write(body);
  let discarded = 0;
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearTimeout(total);
    clearTimeout(idle);
    req.off('data', onData);
    req.off('end', finish);
    req.off('error', finish);
    req.off('close', finish);
    // HTTP/2 has no connection to close: once the answer is out, reset the stream (NO_ERROR) if
    // the client is still sending, so it stops.
    res.end(() => {
      if (isHttp2(req) && !req.complete) req.stream.close();
    });
  };
  const onData = (chunk: Buffer): void => {
    discarded += chunk.length;
    if (discarded > limits.maxBytes) finish();
    else idle.refresh();
  };
  const total = setTimeout(finish, limits.totalMs);
  const idle = setTimeout(finish, limits.idleMs);
  total.unref();
  idle.unref();
  req.on('data', onData);
  req.once('end', finish);
  req.once('error', finish);
  req.once('close', finish);
  req.resume();
}
