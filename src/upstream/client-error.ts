import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import { GatewayError, toOpenAIError } from '../core/errors.js';

/**
 * Answers what Node's HTTP/1.1 parser refuses before any handler runs (its 'clientError' event,
 * `err.code` `HPE_*`), and an `Expect` other than `100-continue`, with the status Node would send
 * but the gateway's OpenAI-style body and `connection: close` (the bytes after a refused request
 * cannot be framed). Headers over the bound are 431 `request_headers_too_large`; a request that
 * did not arrive in time 408 `request_timeout`; chunk extensions over Node's bound 413; a version
 * other than HTTP/1.x 505; everything else the parser refuses 400 `malformed_request`, saying
 * what it found. A refusal is written only when the connection is writable and no response of
 * it has begun (Node's docs: a parse error can come on a keep-alive connection mid-response,
 * where a second status line would corrupt the first answer); the connection then closes.
 */
export function answerClientErrors(server: Server, maxHeaderBytes: number): void {
  server.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket) => {
    if (socket.writable && !responseBegun(socket)) {
      const refusal = parserRefusal(err, maxHeaderBytes);
      socket.write(refusalBytes(refusal));
    }
    socket.destroy(err);
  });
  // Without a listener Node answers a bare 417 and keeps the connection open.
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const refusal = new GatewayError('expectation_failed', `the request expects ${JSON.stringify(String(req.headers.expect ?? '').slice(0, 64))}; only "100-continue" is understood (RFC 9110 §10.1.1)`);
    const body = JSON.stringify(toOpenAIError(refusal));
    req.resume();
    res.writeHead(refusal.status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), connection: 'close' });
    res.end(body);
  });
}

/** Whether a response of this connection has started writing (Node keeps the current one on the socket). */
function responseBegun(socket: Socket): boolean {
  const current = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  return current !== undefined && current !== null && current.headersSent;
}

function refusalBytes(refusal: GatewayError): string {
  const body = JSON.stringify(toOpenAIError(refusal));
  return `HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** What the parser says, by Node's code (llhttp's `HPE_*` names), in words a client can act on. */
const PARSER_REASONS: Readonly<Record<string, string>> = {
  HPE_INVALID_HEADER_TOKEN: 'a header line is malformed: a character a header name or value may not hold, or a line folded onto the next (obs-fold, RFC 9112 §5.2)',
  HPE_INVALID_VERSION: 'the request line is not `METHOD target HTTP/1.x` ended by CRLF (RFC 9112 §2.2, §3: lines end with CRLF, not a bare LF)',
  HPE_LF_EXPECTED: 'a line does not end with CRLF (RFC 9112 §2.2)',
  HPE_CR_EXPECTED: 'a line does not end with CRLF (RFC 9112 §2.2)',
  HPE_STRICT: 'a line does not end with CRLF (RFC 9112 §2.2)',
  HPE_INVALID_CONTENT_LENGTH: 'Content-Length must be one decimal number of bytes, not negative and at most 2^53 (RFC 9110 §8.6)',
  HPE_UNEXPECTED_CONTENT_LENGTH: 'the request has both Content-Length and Transfer-Encoding (RFC 9112 §6.3)',
  HPE_INVALID_TRANSFER_ENCODING: 'Transfer-Encoding must end in chunked and come without Content-Length (RFC 9112 §6.1, §6.3)',
  HPE_INVALID_CHUNK_SIZE: 'a chunk size is not a hexadecimal number of bytes (RFC 9112 §7.1)',
  HPE_INVALID_METHOD: 'the method is not a token (RFC 9110 §9.1)',
  HPE_INVALID_URL: 'the request target is malformed (RFC 9112 §3.2)',
  HPE_INVALID_CONSTANT: 'the request is not HTTP/1.x',
  HPE_INVALID_EOF_STATE: 'the connection ended inside a request',
};

/** The refusal of what the parser refused (`err.code`), worded by PARSER_REASONS. */
function parserRefusal(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, maxHeaderBytes: number): GatewayError {
  const code = err.code ?? '';
  // Node counts the request target and every header name and value against the bound.
  if (code === 'HPE_HEADER_OVERFLOW') return new GatewayError('request_headers_too_large', `the request has more bytes of header names and values (its target included) than the ${maxHeaderBytes} accepted`);
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return new GatewayError('request_timeout', 'the request did not arrive in time; the connection is closed');
  if (code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW') return new GatewayError('body_too_large', 'the request\'s chunk extensions are longer than the parser accepts');
  // llhttp takes one digit each side of the dot; a well-formed line of another version is a 505, not a malformed one.
  const version = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP\/(\d+)\.(\d+)\r\n/.exec(err.rawPacket?.toString('latin1', 0, 8192) ?? '');
  if (code === 'HPE_INVALID_VERSION' && version !== null && !(version[1] === '1' && (version[2] === '0' || version[2] === '1'))) {
    return new GatewayError('http_version_not_supported', `HTTP/${version[1]}.${version[2]} is not supported on an HTTP/1 connection; send HTTP/1.1`);
  }
  return new GatewayError('malformed_request', `the request is not well-formed HTTP/1.1: ${PARSER_REASONS[code] ?? 'the parser refused it'} (${code.slice(0, 40) || 'parse error'})`);
}

/**
 * HTTP/2 requests whose header list (RFC 9113 §6.5.2: each name and value, plus 32 bytes per
 * field) is over `maxHeaderBytes`: answered 431 with the gateway's body, as HTTP/1.1 is. Node
 * enforces its own `maxHeaderListSize` setting in its native code, before any handler and
 * loosely (a little over the setting still passes); past it the stream is reset with
 * ENHANCE_YOUR_CALM and nothing reaches JavaScript. So the listener advertises a larger setting
 * (`H2_HEADER_LIST_ALLOWANCE` times the bound) and this check refuses what lies between in
 * words; past the advertised size the reset stays Node's (docs/configuration.md, "Limits").
 * Returns true when it answered.
 */
export function refuseOversizedH2Headers(req: Http2ServerRequest, res: Http2ServerResponse, maxHeaderBytes: number): boolean {
  const raw = req.rawHeaders;
  let size = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) size += Buffer.byteLength(raw[i] as string) + Buffer.byteLength(raw[i + 1] as string) + 32;
  if (size <= maxHeaderBytes) return false;
  const refusal = new GatewayError('request_headers_too_large', `the request has ${size} bytes of header list (RFC 9113 counts names, values and 32 bytes per field), more than the ${maxHeaderBytes} accepted`);
  const body = JSON.stringify(toOpenAIError(refusal));
  req.resume();
  res.writeHead(431, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
  return true;
}

/** How much larger than the bound the HTTP/2 setting is advertised, so the refusal is said in words. */
export const H2_HEADER_LIST_ALLOWANCE = 2;
