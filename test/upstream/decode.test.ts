import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import * as zlib from 'node:zlib';
import { Endpoint } from '../../src/core/endpoint.js';
import { decodeResponse } from '../../src/upstream/decode.js';
import { upstreamFailure } from '../../src/upstream/errors.js';

const TEXT = 'data: {"choices":[],"usage":{"prompt_tokens":3}}\n\ndata: [DONE]\n\n'.repeat(50);

async function readAll(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of body as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

/** The bytes in `chunk`-sized pieces, as a network delivers them. */
function pieces(bytes: Buffer, chunk = 7): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
  return Readable.from(parts);
}

const CODINGS: ReadonlyArray<[string, string, (b: Buffer) => Buffer]> = [
  ['gzip', 'gzip', (b) => zlib.gzipSync(b)],
  ['x-gzip', 'x-gzip', (b) => zlib.gzipSync(b)],
  ['deflate (zlib)', 'deflate', (b) => zlib.deflateSync(b)],
  ['deflate (raw)', 'deflate', (b) => zlib.deflateRawSync(b)],
  ['br', 'br', (b) => zlib.brotliCompressSync(b)],
  ['gzip then br', 'gzip, br', (b) => zlib.brotliCompressSync(zlib.gzipSync(b))],
];

for (const [name, header, encode] of CODINGS) {
  test(`decode: ${name} arrives as identity, without content-encoding or content-length`, async () => {
    const encoded = encode(Buffer.from(TEXT));
    const d = decodeResponse({ 'content-type': 'text/event-stream', 'content-encoding': header, 'content-length': String(encoded.length), 'x-other': '1' }, pieces(encoded));
    assert.equal(d.readable, true);
    assert.deepEqual(d.headers, { 'content-type': 'text/event-stream', 'x-other': '1' });
    assert.equal(await readAll(d.body), TEXT);
  });
}

test('decode: identity bodies are untouched; `content-encoding: identity` goes', async () => {
  const body = Readable.from([Buffer.from(TEXT)]);
  const plain = decodeResponse({ 'content-length': String(TEXT.length) }, body);
  assert.equal(plain.body, body);
  assert.deepEqual(plain.headers, { 'content-length': String(TEXT.length) });
  const identity = decodeResponse({ 'content-encoding': 'identity', 'content-length': '5' }, body);
  assert.deepEqual(identity.headers, { 'content-length': '5' });
});

test('decode: an unknown coding passes through, marked not readable', () => {
  const body = Readable.from([Buffer.from('xyz')]);
  const d = decodeResponse({ 'content-encoding': 'compress' }, body);
  assert.equal(d.readable, false);
  assert.equal(d.body, body);
  assert.equal(d.headers['content-encoding'], 'compress');
});

test('decode: a corrupt body fails as upstream_reset naming the zlib error', async () => {
  const d = decodeResponse({ 'content-encoding': 'gzip' }, Readable.from([Buffer.from('not gzip at all')]));
  const err = await readAll(d.body).then(
    () => undefined,
    (e: unknown) => e,
  );
  const failure = upstreamFailure(err, new Endpoint({ address: '127.0.0.1', port: 1, name: 'pod-a', podName: 'pod-a', labels: {} }));
  assert.equal(failure.code, 'upstream_reset');
  assert.match(failure.message, /pod-a could not be decoded \(Z_/);
});
