import { GatewayError } from '../core/errors.js';
import { BodyCollector, clientGone, refuseDeclaredOver, decodeRequestBody, requestCodings, UploadClock, type BodyReservation, type UploadPolicy, type UploadTimeouts } from '../gateway/index.js';
import { isHttp2, type ClientRequest } from './client.js';
import type { StopSource } from '../upstream/scope.js';
import { canDecodeRequest } from '../core/content-coding.js';

/** The declared Content-Length, if any (a malformed one is refused by Node's parser). */
export function declaredLength(req: ClientRequest): number | undefined {
  const declared = req.headers['content-length'];
  return declared === undefined ? undefined : Number(declared);
}

/** A body admitted to be read: its content codings and its share of the body budget. */
export interface AdmittedBody {
  /** Content codings in the order applied (decoded in reverse); empty for identity. */
  readonly codings: readonly string[];
  /** Released by the caller when the request ends, on every path. */
  readonly reservation: BodyReservation;
}

/**
 * What is decided before a body's first byte is read (and before `100 Continue`): a declared
 * Content-Length over `limit` is 413 `body_too_large`; a coding the gateway does not decode is
 * 415 `unsupported_content_encoding`; a body the global budget cannot hold now (reserved against
 * its declared length) is 503 `body_budget_exhausted`.
 */
export function admitBody(req: ClientRequest, limit: number, uploads: UploadPolicy): AdmittedBody {
  const declared = declaredLength(req);
  refuseDeclaredOver(declared, limit);
  const codings = requestCodings(req.headers['content-encoding'], canDecodeRequest);
  return { codings, reservation: uploads.budget.reserve(declared ?? 0) };
}

/**
 * Reads an admitted request body up to `limit` bytes and decodes its content codings. A body
 * without a declared length (chunked, or HTTP/2 DATA frames) is refused as soon as it crosses
 * the limit, and grows its reservation as bytes arrive (503 once the budget cannot hold more).
 * A decoded body is held to the same limit: inflating stops as soon as it crosses it (413), and
 * data its coding does not describe is 400 `invalid_content_encoding`. A client silent for
 * `timeouts.idleMs` between two reads, or slower than `timeouts.totalMs` in all, gets 408
 * `request_body_timeout`; one that goes away is `client_gone`; the request's stop (`scope`) ends
 * the read with its reason. Returns undefined for a request without a body.
 */
export async function readBody(req: ClientRequest, limit: number, scope: StopSource, admitted: AdmittedBody, timeouts: UploadTimeouts): Promise<Buffer | undefined> {
  const declared = declaredLength(req);
  // HTTP/1.1 says up front whether a body follows; HTTP/2 says it with the stream's end.
  if (declared === undefined && !isHttp2(req) && req.headers['transfer-encoding'] === undefined) return undefined;
  const raw = await collect(req, limit, scope, admitted.reservation, timeouts);
  if (raw.length === 0 && declared === undefined) return undefined;
  let body = raw;
  return decodeRequestBody(body, admitted.codings, limit, admitted.reservation);
}

/** The raw body, bounded by `limit`, the budget and the upload timeouts. */
function collect(req: ClientRequest, limit: number, scope: StopSource, reservation: BodyReservation, timeouts: UploadTimeouts): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const body = new BodyCollector(limit, reservation);
    let settled = false;
    const finish = (err: GatewayError | undefined): void => {
      if (settled) return;
      settled = true;
      clock.stop();
      scope.offStop(onAbort);
      req.off('data', onData);
      req.off('end', onEnd);
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
    const onEnd = (): void => finish(undefined);
    const onGone = (err?: unknown): void => finish(clientGone('while sending the request body', err));
    const onClose = (): void => {
      if (!req.complete) onGone();
    };
    // The scope was stopped (the client left, shutdown): the upload is abandoned.
    const onAbort = (reason: Error): void => {
      req.destroy();
      onGone(reason);
    };
    // The core's upload timeouts: silence between reads, the whole body (408).
    const clock = new UploadClock(timeouts, finish);
    if (scope.reason !== undefined) return onAbort(scope.reason);
    scope.onStop(onAbort);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onGone);
    req.once('close', onClose);
  });
}

