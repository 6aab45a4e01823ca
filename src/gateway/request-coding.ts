import { requestDecoder } from '../core/content-coding.js';
import { GatewayError } from '../core/errors.js';
import { BodyCollector } from './body-collector.js';
import type { BodyReservation } from './body-budget.js';

/**
 * The request content codings the gateway decodes (RFC 9110 §8.4.1): gzip (and its old name
 * x-gzip), deflate (the zlib format, RFC 1950), br (RFC 7932), and zstd (RFC 8878) where the
 * data plane's runtime can decode it (Node.js ≥ 22.15). The gateway must read the body to route
 * it, and a model server must read the same bytes the gateway read, so a body is always decoded
 * and forwarded as identity, without `Content-Encoding`: a coding it cannot decode is refused
 * (415), never passed on unread.
 */
export const REQUEST_CODINGS: readonly string[] = ['gzip', 'x-gzip', 'deflate', 'br', 'zstd'];

/** At most this many codings applied one over another (`gzip, br`); more is refused (415). */
export const MAX_REQUEST_CODINGS = 3;

/**
 * The codings of a request's `Content-Encoding` header, in the order they were applied (decode in
 * reverse), without `identity`. `canDecode` says which of REQUEST_CODINGS the data plane decodes.
 * Throws 415 `unsupported_content_encoding` for any other coding, or for more than
 * MAX_REQUEST_CODINGS of them.
 */
export function requestCodings(header: string | readonly string[] | undefined, canDecode: (coding: string) => boolean): string[] {
  if (header === undefined) return [];
  const joined = typeof header === 'string' ? header : header.join(',');
  const applied = joined
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== '' && c !== 'identity');
  const unknown = applied.find((c) => !REQUEST_CODINGS.includes(c) || !canDecode(c));
  if (unknown !== undefined) {
    const accepted = REQUEST_CODINGS.filter(canDecode).join(', ');
    throw new GatewayError('unsupported_content_encoding', `request Content-Encoding "${unknown.slice(0, 40)}" is not supported; send the body uncompressed or with one of: ${accepted}`);
  }
  if (applied.length > MAX_REQUEST_CODINGS) {
    throw new GatewayError('unsupported_content_encoding', `request Content-Encoding applies ${applied.length} codings; at most ${MAX_REQUEST_CODINGS} are decoded`);
  }
  return applied;
}

/** The refusal of a body its `Content-Encoding` does not describe (corrupt, truncated, or plain). */
export function undecodableBody(coding: string, detail: string): GatewayError {
  return new GatewayError('invalid_content_encoding', `request body is not valid ${coding} data, as its Content-Encoding says: ${detail}`);
}

/**
 * A request's `Transfer-Encoding` names a coding other than `chunked` (`gzip, chunked`): HTTP/1.1
 * servers answer 501 to a transfer coding they do not understand (RFC 9112 §6.1), and reading
 * the body as if it were not there would make the gateway and the model server read different
 * bytes. Undefined when the header is absent or only `chunked`.
 */
export function transferCodingProblem(header: string | readonly string[] | undefined): GatewayError | undefined {
  if (header === undefined) return undefined;
  const joined = typeof header === 'string' ? header : header.join(',');
  const other = joined
    .split(',')
    .map((c) => c.trim().toLowerCase())
    .find((c) => c !== 'chunked');
  if (other === undefined) return undefined;
  return new GatewayError('unsupported_transfer_encoding', `the transfer coding "${other.slice(0, 32)}" is not supported; send the body chunked or with a Content-Length (a compressed body goes in Content-Encoding)`);
}

/**
 * A request body with its content codings undone (`codings` as `requestCodings` gave them: the
 * last applied is undone first), bounded as the raw body was: decoded output past `limit` stops
 * the decoder at once (413 `body_too_large`), every decoded byte is reserved in the body budget on
 * top of the input still held, and data its coding does not describe is 400
 * `invalid_content_encoding`. Every data plane decodes with this, so a model server reads what the
 * gateway read whichever plane carried the request.
 */
export async function decodeRequestBody(raw: Buffer, codings: readonly string[], limit: number, reservation: BodyReservation, limitName?: string): Promise<Buffer> {
  let body = raw;
  for (const coding of [...codings].reverse()) {
    body = await inflate(body, coding, limit, reservation, limitName);
    reservation.shrinkTo(body.length);
  }
  return body;
}

/**
 * Undoes one content coding of `input`, bounded: output past `limit` stops the decoder at once
 * (413), and every decoded byte is reserved in the budget on top of the input still held.
 */
function inflate(input: Buffer, coding: string, limit: number, reservation: BodyReservation, limitName?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const decoder = requestDecoder(coding);
    if (decoder === undefined) return reject(undecodableBody(coding, 'no decoder'));
    const output = new BodyCollector(limit, reservation, { alsoHeld: input.length, note: `once decoded (${coding})`, ...(limitName === undefined ? {} : { what: limitName }) });
    let settled = false;
    const fail = (err: GatewayError): void => {
      if (settled) return;
      settled = true;
      decoder.destroy();
      reject(err);
    };
    decoder.on('data', (chunk: Buffer) => {
      if (settled) return;
      try {
        output.push(chunk);
      } catch (err) {
        return fail(err as GatewayError);
      }
    });
    decoder.on('error', (err: Error) => fail(undecodableBody(coding, err.message)));
    decoder.on('end', () => {
      if (settled) return;
      settled = true;
      resolve(output.finish());
    });
    decoder.end(input);
  });
}
