import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errors } from 'undici';
import { Endpoint } from '../../src/core/endpoint.js';
import { isServerFault } from '../../src/gateway/index.js';
import { upstreamFailure } from '../../src/upstream/errors.js';

const endpoint = new Endpoint({ address: '127.0.0.1', port: 8000, name: 'e', podName: 'e', labels: {} });

/** A socket error as Node raises it. */
function sys(code: string): Error {
  return Object.assign(new Error(code), { code });
}

const CASES: ReadonlyArray<{ name: string; err: Error; code: string; blamed: boolean }> = [
  { name: 'undici refuses a method', err: new errors.InvalidArgumentError('invalid request method'), code: 'unforwardable_request', blamed: false },
  { name: 'undici refuses a header value', err: new errors.InvalidArgumentError('invalid x-bad header'), code: 'unforwardable_request', blamed: false },
  { name: 'undici refuses a target', err: new errors.InvalidArgumentError('path must be an absolute URL or start with a slash'), code: 'unforwardable_request', blamed: false },
  { name: 'undici does not support a header', err: new errors.NotSupportedError('expect header not supported'), code: 'unforwardable_request', blamed: false },
  { name: 'the gateway built a body of the wrong length', err: new errors.RequestContentLengthMismatchError(), code: 'internal_error', blamed: false },
  { name: 'connection refused', err: sys('ECONNREFUSED'), code: 'upstream_unavailable', blamed: true },
  { name: 'connection reset', err: sys('ECONNRESET'), code: 'upstream_reset', blamed: true },
  { name: 'socket closed under the request', err: new errors.SocketError('other side closed'), code: 'upstream_reset', blamed: true },
  { name: 'connect timeout', err: new errors.ConnectTimeoutError(), code: 'upstream_unavailable', blamed: true },
  { name: 'answer headers over the limit', err: new errors.HeadersOverflowError(), code: 'upstream_invalid_response', blamed: true },
  { name: 'an answer longer than its Content-Length', err: new errors.ResponseContentLengthMismatchError(), code: 'upstream_invalid_response', blamed: true },
  { name: 'bytes the HTTP parser refuses', err: Object.assign(new errors.HTTPParserError('Invalid header value char'), { code: 'HPE_INVALID_HEADER_TOKEN' }), code: 'upstream_invalid_response', blamed: true },
];

for (const c of CASES) {
  test(`upstream failure: ${c.name} → ${c.code}, ${c.blamed ? '' : 'not '}the server's fault`, () => {
    const failure = upstreamFailure(c.err, endpoint);
    assert.equal(failure.code, c.code);
    assert.equal(isServerFault(failure.code), c.blamed);
    if (c.code === 'unforwardable_request') assert.equal(failure.status, 400);
  });
}
