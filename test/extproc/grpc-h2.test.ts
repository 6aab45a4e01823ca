import assert from 'node:assert/strict';
import { connect as http2Connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { connect as tlsConnect } from 'node:tls';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { frameMessage, FramingError, MessageReader } from '../../src/extproc/grpc-h2/framing.js';
import { GrpcH2Server } from '../../src/extproc/grpc-h2/server.js';
import { encodeGrpcMessage, GrpcCode, parseGrpcTimeout } from '../../src/extproc/grpc-h2/status.js';
import { headerMap } from '../../src/extproc/headers.js';
import { decodeProcessingResponse as decodeResponse, encodeProcessingRequest, PROCESS_METHOD_PATH } from '../../src/extproc/proto.js';
import { startExtProcServer, type ExtProcServer } from '../../src/extproc/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { envoyRequestHeaders } from '../support/envoy-standin.js';
import { fixedPicker, until, type PickerLog } from '../support/fixed-picker.js';

/* The gRPC server on node:http2 (src/extproc/grpc-h2/): framing, statuses and the call's life, seen from a raw HTTP/2 client. */

function readAll(reader: MessageReader, frames: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const f of frames) reader.push(f, (m) => out.push(Buffer.from(m)));
  return out;
}

test('messages are reassembled whatever the DATA frames cut: at every byte, several per frame, one byte per frame', () => {
  const a = Buffer.from('first message, a few bytes');
  const b = Buffer.alloc(40_000, 7);
  const wire = Buffer.concat([frameMessage(a), frameMessage(b), frameMessage(Buffer.alloc(0))]);
  for (let cut = 0; cut <= wire.length; cut += cut < 64 ? 1 : 997) {
    const got = readAll(new MessageReader(1 << 20), [wire.subarray(0, cut), wire.subarray(cut)]);
    assert.deepEqual(got, [a, b, Buffer.alloc(0)], `cut at ${cut}`);
  }
  const bytewise = readAll(new MessageReader(1 << 20), [...frameMessage(a)].map((x) => Buffer.from([x])));
  assert.deepEqual(bytewise, [a]);
  // A message inside one frame is handed out as a view of it (no copy).
  const frame = frameMessage(a);
  const reader = new MessageReader(1024);
  reader.push(frame, (m) => assert.equal(m.buffer, frame.buffer));
});

test('a message over the limit, a compression the server lacks, a compressed flag without grpc-encoding, a bomb: each a status', () => {
  const over = Buffer.alloc(5);
  over.writeUInt32BE(1025, 1);
  assert.throws(() => new MessageReader(1024).push(over, () => undefined), (e: unknown) => e instanceof FramingError && e.code === GrpcCode.RESOURCE_EXHAUSTED);
  const withLength = (payload: Buffer): Buffer => {
    const b = Buffer.alloc(5 + payload.length);
    b[0] = 1;
    b.writeUInt32BE(payload.length, 1);
    payload.copy(b, 5);
    return b;
  };
  const gz = withLength(gzipSync(Buffer.from('hello')));
  assert.deepEqual(readAll(new MessageReader(1024, 'gzip'), [gz]), [Buffer.from('hello')]);
  assert.throws(() => new MessageReader(1024, 'snappy').push(gz, () => undefined), (e: unknown) => e instanceof FramingError && e.code === GrpcCode.UNIMPLEMENTED);
  assert.throws(() => new MessageReader(1024).push(gz, () => undefined), (e: unknown) => e instanceof FramingError && e.code === GrpcCode.INTERNAL);
  const bomb = withLength(gzipSync(Buffer.alloc(1 << 20)));
  assert.throws(() => new MessageReader(4096, 'gzip').push(bomb, () => undefined), (e: unknown) => e instanceof FramingError && e.code === GrpcCode.RESOURCE_EXHAUSTED);
});

test('grpc-message is percent-encoded and grpc-timeout parsed as the protocol says', () => {
  assert.equal(encodeGrpcMessage('plain text: ok'), 'plain text: ok');
  assert.equal(encodeGrpcMessage('100% sûr\n'), '100%25 s%C3%BBr%0A');
  assert.equal(parseGrpcTimeout('250m'), 250);
  assert.equal(parseGrpcTimeout('2S'), 2000);
  assert.equal(parseGrpcTimeout('1H'), 3_600_000);
  assert.equal(parseGrpcTimeout('1500u'), 2);
  assert.equal(parseGrpcTimeout('123456789S'), undefined);
  assert.equal(parseGrpcTimeout('5x'), undefined);
});

interface RawAnswer {
  readonly headers: IncomingHttpHeaders;
  readonly trailers: IncomingHttpHeaders;
  readonly messages: Buffer[];
}

/** Reads one call's answer: headers, the messages, trailers (or the trailers-only headers). */
function answerOf(stream: ClientHttp2Stream): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const reader = new MessageReader(1 << 24);
    const messages: Buffer[] = [];
    // A status ends the call for a gRPC client, which then closes its side (as Envoy does).
    stream.on('response', (h) => {
      headers = h;
      if (h['grpc-status'] !== undefined) stream.end();
    });
    stream.on('trailers', (t) => {
      trailers = t;
      stream.end();
    });
    stream.on('data', (d: Buffer) => reader.push(d, (m) => messages.push(Buffer.from(m))));
    stream.on('error', reject);
    stream.on('close', () => resolve({ headers, trailers, messages }));
  });
}

function grpcStatus(a: RawAnswer): string | undefined {
  return String(a.trailers['grpc-status'] ?? a.headers['grpc-status']);
}

function processCall(session: ClientHttp2Session, extra: Record<string, string> = {}): ClientHttp2Stream {
  return session.request({ ':method': 'POST', ':path': PROCESS_METHOD_PATH, 'content-type': 'application/grpc', te: 'trailers', ...extra });
}

const GET_MODELS = frameMessage(
  encodeProcessingRequest({
    request_headers: { headers: headerMap(envoyRequestHeaders('GET', '/v1/models', {})), end_of_stream: true },
    protocol_config: { request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'FULL_DUPLEX_STREAMED' },
  }),
);

async function withServer(fn: (server: ExtProcServer, session: ClientHttp2Session, log: PickerLog) => Promise<void>, maxMessageBytes?: number): Promise<void> {
  const picker = fixedPicker({ endpoint: '10.0.0.1:8000' });
  const server = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: picker.factory, ready: () => true, logger: createLogger('silent'), ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }) });
  const session = http2Connect(`http://127.0.0.1:${server.grpcPort}`);
  session.on('error', () => undefined);
  try {
    await fn(server, session, picker.log);
  } finally {
    session.destroy();
    await server.close(1000);
  }
}

test('a message cut into one-byte DATA frames is answered; an unknown method is UNIMPLEMENTED; a non-gRPC content-type is 415', async () => {
  await withServer(async (_server, session) => {
    const call = processCall(session);
    const answer = answerOf(call);
    for (const byte of GET_MODELS) {
      call.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    call.end();
    const a = await answer;
    assert.equal(a.headers[':status'], 200);
    assert.equal(grpcStatus(a), '0');
    assert.equal(a.messages.length, 1);
    assert.equal(decodeResponse(a.messages[0] as Buffer).response, 'request_headers');

    const unknown = await answerOf(session.request({ ':method': 'POST', ':path': '/no.Such/Method', 'content-type': 'application/grpc' }).end());
    assert.equal(unknown.headers[':status'], 200);
    assert.equal(grpcStatus(unknown), String(GrpcCode.UNIMPLEMENTED));
    assert.match(String(unknown.headers['grpc-message']), /does not implement the method \/no\.Such\/Method/);

    const json = await answerOf(session.request({ ':method': 'POST', ':path': PROCESS_METHOD_PATH, 'content-type': 'application/json' }).end('{}'));
    assert.equal(json.headers[':status'], 415);
  });
});

test('a message over maxMessageBytes ends the stream RESOURCE_EXHAUSTED before any processor is made; nothing stays open', async () => {
  await withServer(async (server, session, log) => {
    const call = processCall(session);
    const answer = answerOf(call);
    const body = frameMessage(encodeProcessingRequest({ request_headers: { headers: headerMap(envoyRequestHeaders('POST', '/v1/completions', { 'x-pad': 'y'.repeat(4000) })) } }));
    call.end(body);
    const a = await answer;
    assert.equal(grpcStatus(a), String(GrpcCode.RESOURCE_EXHAUSTED));
    assert.match(String(a.trailers['grpc-message'] ?? a.headers['grpc-message']), /larger than max/);
    assert.equal(server.activeStreams(), 0);
    assert.equal(log.requests.length, 0);
  }, 2048);
});

test('a client that resets its stream mid-request, or whose grpc-timeout passes: the processor hears cancelled(), nothing stays open', async () => {
  await withServer(async (server, session, log) => {
    const headersOnly = frameMessage(encodeProcessingRequest({ request_headers: { headers: headerMap(envoyRequestHeaders('POST', '/v1/completions', {})) }, protocol_config: { request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: 'FULL_DUPLEX_STREAMED' } }));
    const reset = processCall(session);
    reset.on('error', () => undefined);
    reset.write(headersOnly);
    await until(() => log.requests.length === 1, 20_000, 'the request headers');
    reset.close(constants.NGHTTP2_CANCEL);
    await until(() => log.cancelled === 1 && server.activeStreams() === 0, 20_000, 'cancelled() after the reset');

    const timed = processCall(session, { 'grpc-timeout': '300m' });
    const answer = answerOf(timed);
    timed.write(headersOnly);
    const a = await answer;
    assert.equal(grpcStatus(a), String(GrpcCode.DEADLINE_EXCEEDED));
    await until(() => log.cancelled === 2 && server.activeStreams() === 0, 20_000, 'cancelled() after the deadline');
    assert.equal(log.completed, 0);
  });
});

test('close() sends GOAWAY at once, the open stream still finishes, then the server stops', async () => {
  const picker = fixedPicker({ endpoint: '10.0.0.1:8000' });
  const server = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: picker.factory, ready: () => true, logger: createLogger('silent') });
  const session = http2Connect(`http://127.0.0.1:${server.grpcPort}`);
  session.on('error', () => undefined);
  try {
    const open = processCall(session);
    const answer = answerOf(open);
    open.write(GET_MODELS.subarray(0, 3));
    await until(() => server.activeStreams() === 1, 20_000, 'the stream to open');
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    const closing = server.close(30_000);
    await until(() => goaway, 20_000, 'a GOAWAY');
    open.end(GET_MODELS.subarray(3));
    const a = await answer;
    assert.equal(grpcStatus(a), '0');
    assert.equal(a.messages.length, 1);
    await closing;
    assert.equal(picker.log.requests.length, 1);
    assert.equal(server.activeStreams(), 0);
  } finally {
    session.destroy();
    await server.close(1000);
  }
});

test('TLS: the gRPC port negotiates h2 by ALPN and refuses a client that offers only HTTP/1.1', async () => {
  const picker = fixedPicker({ endpoint: '10.0.0.1:8000' });
  const server = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: {}, processor: picker.factory, ready: () => true, logger: createLogger('silent') });
  try {
    const alpn = (protocols: string[]): Promise<string | false> =>
      new Promise((resolve) => {
        const socket = tlsConnect({ host: '127.0.0.1', port: server.grpcPort, ALPNProtocols: protocols, rejectUnauthorized: false });
        socket.on('secureConnect', () => {
          resolve(socket.alpnProtocol ?? false);
          socket.destroy();
        });
        socket.on('error', () => resolve(false));
      });
    assert.equal(await alpn(['h2']), 'h2');
    assert.notEqual(await alpn(['http/1.1']), 'http/1.1');

    const session = http2Connect(`https://127.0.0.1:${server.grpcPort}`, { rejectUnauthorized: false });
    session.on('error', () => undefined);
    try {
      const a = await answerOf(processCall(session).end(GET_MODELS));
      assert.equal(grpcStatus(a), '0');
      assert.equal(decodeResponse(a.messages[0] as Buffer).response, 'request_headers');
    } finally {
      session.destroy();
    }
  } finally {
    await server.close(1000);
  }
});

test('keepalive: the server pings each connection and a peer that answers keeps it; a client pinging often is answered, never sent away', async () => {
  const server = new GrpcH2Server({ methods: new Map(), limits: { maxReceiveBytes: 1024, maxSendBytes: 1024 }, maxConcurrentStreams: 10, keepalive: { timeMs: 30, timeoutMs: 20_000 } });
  const port = await server.listen('127.0.0.1', 0);
  const session = http2Connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  let pings = 0;
  let goaway = false;
  session.on('ping', () => pings++);
  session.on('goaway', () => (goaway = true));
  try {
    await until(() => pings >= 3, 20_000, 'three keepalive pings');
    for (let i = 0; i < 10; i++) {
      await new Promise<void>((resolve, reject) => session.ping((err) => (err === null ? resolve() : reject(err))));
    }
    assert.equal(goaway, false);
    assert.equal(session.closed || session.destroyed, false);
  } finally {
    session.destroy();
    await server.close(1000);
  }
});
