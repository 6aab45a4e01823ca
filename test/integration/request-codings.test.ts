import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import * as zlib from 'node:zlib';
import { answer, chatRequest, startFakeEnv, type FakeEnv } from '../support/fake-engines.js';

// The listener's body limit is 1 MiB here, so a bomb of a few KiB inflates past it.
const LIMIT = `---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: ClientTrafficPolicy
metadata: {name: one-mib}
spec:
  connection: {bufferLimit: 1Mi}
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]
`;

const MIB = 1024 * 1024;

interface Answer {
  readonly status: number;
  readonly code: string | undefined;
}

/** POSTs `body` with `Content-Encoding: coding` (none when undefined); chunked when `chunked`. */
function post(port: number, body: Buffer, coding: string | undefined, id: string, chunked = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/json', 'x-request-id': id };
    if (coding !== undefined) headers['content-encoding'] = coding;
    if (!chunked) headers['content-length'] = body.length;
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const code = /"code":"([a-z_]+)"/.exec(Buffer.concat(chunks).toString())?.[1];
        resolve({ status: res.statusCode ?? 0, code });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const plain = Buffer.from(chatRequest(false, { user: 'codings' }));
const hasZstd = typeof (zlib as unknown as { zstdCompressSync?: unknown }).zstdCompressSync === 'function';

/** Compressions a client may apply, by the header it sends. */
const ENCODE: Readonly<Record<string, (b: Buffer) => Buffer>> = {
  gzip: (b) => zlib.gzipSync(b),
  'x-gzip': (b) => zlib.gzipSync(b),
  deflate: (b) => zlib.deflateSync(b),
  br: (b) => zlib.brotliCompressSync(b),
};

describe('request content codings: decoded and forwarded as identity, or refused', { timeout: 120_000 }, () => {
  let env: FakeEnv;
  let port: number;

  before(async () => {
    env = await startFakeEnv({ '127.0.16.2': (_req, res, seen) => answer(res, seen) }, { 'fake-0': '127.0.16.2' }, { extraYaml: LIMIT });
    port = env.port;
  });

  after(async () => {
    await env?.close();
  });

  /** What the model server received for request `id`, if anything. */
  const seen = (id: string) => env.fakes.seen.find((s) => s.requestId === id);

  function assertForwardedPlain(id: string): void {
    const s = seen(id);
    assert.ok(s !== undefined, `${id} reached the model server`);
    assert.equal(s.body.toString(), plain.toString(), 'the server reads the decoded body');
    assert.equal(s.headers['content-encoding'], undefined, 'no Content-Encoding is forwarded');
    assert.equal(s.headers['content-length'], String(plain.length), 'Content-Length is the decoded length');
  }

  for (const [coding, encode] of Object.entries(ENCODE)) {
    test(`${coding}: decoded, routed on its model, forwarded decoded`, async () => {
      const id = `coding-${coding}`;
      const a = await post(port, encode(plain), coding, id);
      assert.equal(a.status, 200, a.code);
      assertForwardedPlain(id);
    });
  }

  test('stacked codings (gzip, then br) are undone in reverse order; chunked uploads too', async () => {
    const twice = zlib.brotliCompressSync(zlib.gzipSync(plain));
    assert.equal((await post(port, twice, 'gzip, br', 'stacked')).status, 200);
    assertForwardedPlain('stacked');
    assert.equal((await post(port, zlib.gzipSync(plain), 'GZIP', 'chunked-gzip', true)).status, 200);
    assertForwardedPlain('chunked-gzip');
  });

  test('identity is the body as it is, and is not forwarded', async () => {
    assert.equal((await post(port, plain, 'identity', 'identity')).status, 200);
    assertForwardedPlain('identity');
  });

  test(`zstd is ${hasZstd ? 'decoded' : 'refused with 415 (this Node.js cannot decode it)'}`, async () => {
    const encode = (zlib as unknown as { zstdCompressSync?: (b: Buffer) => Buffer }).zstdCompressSync;
    const body = encode === undefined ? plain : encode(plain);
    const a = await post(port, body, 'zstd', 'zstd');
    if (hasZstd) {
      assert.equal(a.status, 200);
      assertForwardedPlain('zstd');
    } else {
      assert.deepEqual(a, { status: 415, code: 'unsupported_content_encoding' });
      assert.equal(seen('zstd'), undefined);
    }
  });

  for (const coding of ['compress', 'foo', 'gzip, foo', 'gzip, gzip, gzip, gzip']) {
    test(`an unknown coding or too many (${coding}) is 415 unsupported_content_encoding, not forwarded`, async () => {
      const id = `unknown-${coding}`;
      assert.deepEqual(await post(port, zlib.gzipSync(plain), coding, id), { status: 415, code: 'unsupported_content_encoding' });
      assert.equal(seen(id), undefined);
    });
  }

  for (const coding of ['gzip', 'deflate', 'br']) {
    test(`plain JSON labelled ${coding} is 400 invalid_content_encoding, not forwarded`, async () => {
      const id = `plain-as-${coding}`;
      assert.deepEqual(await post(port, plain, coding, id), { status: 400, code: 'invalid_content_encoding' });
      assert.equal(seen(id), undefined);
    });
  }

  test('corrupt and truncated compressed bodies are 400 invalid_content_encoding', async () => {
    const gz = zlib.gzipSync(plain);
    const truncated = gz.subarray(0, gz.length - 12);
    const flipped = Buffer.from(gz);
    flipped[20] = (flipped[20] ?? 0) ^ 0xff;
    const br = zlib.brotliCompressSync(plain);
    for (const [id, body, coding] of [
      ['truncated-gzip', truncated, 'gzip'],
      ['flipped-gzip', flipped, 'gzip'],
      ['truncated-br', br.subarray(0, br.length >> 1), 'br'],
    ] as const) {
      assert.deepEqual(await post(port, body, coding, id), { status: 400, code: 'invalid_content_encoding' }, id);
      assert.equal(seen(id), undefined);
    }
  });

  test('a small body that inflates past the limit is 413 body_too_large: gzip, br, and a bomb inside a second coding', async () => {
    const zeros = Buffer.alloc(64 * MIB, ' ');
    const gzipBomb = zlib.gzipSync(Buffer.alloc(2 * MIB, ' '), { level: 9 });
    assert.ok(gzipBomb.length < 4 * 1024, `the bomb is ${gzipBomb.length} bytes`);
    const brBomb = zlib.brotliCompressSync(zeros);
    const nested = zlib.brotliCompressSync(zlib.gzipSync(zeros, { level: 9 }));
    for (const [id, body, coding] of [
      ['bomb-gzip', gzipBomb, 'gzip'],
      ['bomb-br', brBomb, 'br'],
      ['bomb-nested', nested, 'gzip, br'],
    ] as const) {
      assert.deepEqual(await post(port, body, coding, id), { status: 413, code: 'body_too_large' }, id);
      assert.equal(seen(id), undefined);
    }
    // The gateway is fine and serves the next request.
    assert.equal((await post(port, plain, undefined, 'after-bombs')).status, 200);
  });
});
