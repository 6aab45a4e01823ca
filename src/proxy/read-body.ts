import { BodyCollector, refuseDeclaredOver, decodeRequestBody, requestCodings, type BodyReservation, type UploadPolicy, type UploadTimeouts } from '../gateway/index.js';
import { isHttp2, type ClientRequest } from './client.js';
import type { StopSource } from '../upstream/scope.js';
import { readClientBody } from '../upstream/client-body.js';
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
 * `request_body_timeout`; one that goes away (an HTTP/2 stream reset with its body half sent
 * included: upstream/client-body.ts) is `client_gone`; the request's stop (`scope`) ends
 * the read with its reason. Returns undefined for a request without a body.
 */
export async function readBody(req: ClientRequest, limit: number, scope: StopSource, admitted: AdmittedBody, timeouts: UploadTimeouts): Promise<Buffer | undefined> {
  const declared = declaredLength(req);
  // HTTP/1.1 says up front whether a body follows; HTTP/2 says it with the stream's end.
  if (declared === undefined && !isHttp2(req) && req.headers['transfer-encoding'] === undefined) return undefined;
  const raw = await readClientBody(req, new BodyCollector(limit, admitted.reservation), scope, timeouts);
  if (raw.length === 0 && declared === undefined) return undefined;
  return decodeRequestBody(raw, admitted.codings, limit, admitted.reservation);
}
