import type { IncomingMessage } from 'node:http';
import { Http2ServerRequest } from 'node:http2';
import type { GatewayError } from '../core/errors.js';
import { clientGone, UploadClock, type BodyCollector, type UploadTimeouts } from '../gateway/index.js';
import type { StopSource } from './scope.js';

/**
 * A client's request as either listener protocol delivers it: HTTP/1.1 (`node:http`) or HTTP/2
 * cleartext (`node:http2`'s compatibility API, which mirrors it).
 */
export type ClientRequest = IncomingMessage | Http2ServerRequest;

/**
 * True when the client abandoned its request: an HTTP/2 stream it reset (RST_STREAM, whatever the
 * code) or whose connection dropped (with or without GOAWAY); an HTTP/1.1 request whose
 * connection closed before its body ended.
 */
export function requestAbandoned(req: ClientRequest): boolean {
  if (req instanceof Http2ServerRequest) return req.aborted || req.stream.closed || req.stream.destroyed;
  return req.aborted || !req.complete;
}

/**
 * Reads a client's request body into `body` (which bounds it: 413, the body budget's 503), under
 * the core's upload timeouts (408 `request_body_timeout`); the request's stop (`scope`) abandons
 * the read with its reason. Resolves only with a body the client finished sending: one the client
 * abandoned is `client_gone` (logged 499), never a short body handed on to be parsed.
 *
 * What 'end' says on HTTP/2: the client ended its stream (END_STREAM). A reset that comes with
 * it in the same read is reported before the body is judged ('aborted', 'close', or the response's
 * close stopping `scope`). Node's own client is different: `stream.close(code)` mid-upload sends
 * END_STREAM, then RST_STREAM in a later write, so the half body is complete as far as the
 * protocol goes and nothing at 'end' tells it from a finished one; a refusal of such a body waits
 * briefly for the reset (`abandonedSoon`) rather than the body read waiting on every request.
 */
export function readClientBody(req: ClientRequest, body: BodyCollector, scope: StopSource, timeouts: UploadTimeouts): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: GatewayError | undefined): void => {
      if (settled) return;
      settled = true;
      clock.stop();
      scope.offStop(onStop);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('aborted', onGone);
      req.off('error', onGone);
      req.off('close', onClose);
      if (err === undefined) resolve(body.finish());
      else reject(err);
    };
    const onData = (chunk: Buffer): void => {
      try {
        body.push(chunk);
      } catch (err) {
        return finish(err as GatewayError);
      }
      clock.touch();
    };
    const gone = (err?: unknown): GatewayError => clientGone('while sending the request body', err);
    const onEnd = (): void => finish(requestAbandoned(req) ? gone() : undefined);
    const onGone = (err?: unknown): void => finish(gone(err));
    const onClose = (): void => {
      if (requestAbandoned(req)) onGone();
    };
    // The scope was stopped (the client left, shutdown): the upload is abandoned.
    const onStop = (reason: Error): void => {
      req.destroy();
      onGone(reason);
    };
    // The core's upload timeouts: silence between reads, the whole body (408).
    const clock = new UploadClock(timeouts, finish);
    if (scope.reason !== undefined) return onStop(scope.reason);
    scope.onStop(onStop);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('aborted', onGone);
    req.once('error', onGone);
    req.once('close', onClose);
  });
}

/**
 * How long an HTTP/2 refusal of a body waits for the client's reset before it is sent: Node's own
 * client (`stream.close(code)` mid-upload) ends the stream (END_STREAM) and sends its RST_STREAM
 * in a later write, which the gateway reads a moment after it judged the half body. Only refusals
 * wait (a body served never does); past this the refusal goes out as it is.
 */
export const RESET_AFTER_END_GRACE_MS = 50;

/**
 * Resolves true as soon as an HTTP/2 client resets the request's stream or drops its connection,
 * false after `graceMs` without that (an HTTP/1.1 request: at once, whether it was abandoned).
 * For a refusal of a body the client may have sent only to leave: then it is a client gone (499),
 * not a client error nobody reads.
 */
export function abandonedSoon(req: ClientRequest, graceMs = RESET_AFTER_END_GRACE_MS): Promise<boolean> {
  if (!(req instanceof Http2ServerRequest) || requestAbandoned(req)) return Promise.resolve(requestAbandoned(req));
  const stream = req.stream;
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      stream.off('aborted', done);
      stream.off('close', done);
      resolve(requestAbandoned(req));
    };
    const timer = setTimeout(done, graceMs);
    stream.once('aborted', done);
    stream.once('close', done);
  });
}
