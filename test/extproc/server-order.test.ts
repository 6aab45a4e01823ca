import assert from 'node:assert/strict';
import { test } from 'node:test';
import { headerMap } from '../../src/extproc/headers.js';
import type { ProcessingResponse } from '../../src/extproc/messages.js';
import type { RequestProcessor } from '../../src/extproc/processor.js';
import { startExtProcServer } from '../../src/extproc/server.js';
import { createLogger } from '../../src/observability/logger.js';
import { EnvoyExtProcClient, envoyRequestHeaders } from '../support/envoy-standin.js';
import { fixedPicker } from '../support/fixed-picker.js';

// The server answers a response chunk at once when the processor does (no promise per chunk) and
// merges pieces that are ready together; whatever mix of synchronous and asynchronous answers,
// Envoy gets every byte back, in its order, end_of_stream last, and the stream closes after.

test('response chunks answered at once or later come back whole and in order, then the stream ends OK', async () => {
  const base = fixedPicker({ endpoint: '10.0.0.1:8000' });
  let n = 0;
  // Every third chunk is answered through a promise, the others at once; each chunk comes back upper-cased.
  const factory = (): RequestProcessor => ({
    ...base.factory(),
    responseBody: (chunk: Buffer) => {
      const out = Buffer.from(chunk.toString().toUpperCase());
      return n++ % 3 === 2 ? new Promise<Buffer>((resolve) => setTimeout(() => resolve(out), 2)) : out;
    },
  });
  const server = await startExtProcServer({ address: '127.0.0.1', grpcPort: 0, healthPort: 0, tls: false, processor: factory, ready: () => true, logger: createLogger('silent') });
  const envoy = new EnvoyExtProcClient({ target: `127.0.0.1:${server.grpcPort}`, tls: false });
  try {
    const call = envoy.open();
    call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('GET', '/v1/models', {})), end_of_stream: true }, protocol_config: envoy.protocolConfig() });
    assert.ok((await call.next()).request_headers !== undefined);
    call.send({ response_headers: { headers: headerMap({ ':status': '200' }) } });
    assert.ok((await call.next()).response_headers !== undefined);
    const words = Array.from({ length: 40 }, (_, i) => `chunk-${i};`);
    // All sent at once: they arrive together and may be merged into fewer answers.
    for (const w of words) call.send({ response_body: { body: Buffer.from(w) } });
    call.send({ response_body: { body: Buffer.alloc(0), end_of_stream: true } });
    let text = '';
    let answers = 0;
    for (;;) {
      const m: ProcessingResponse = await call.next();
      const s = m.response_body?.response?.body_mutation?.streamed_response;
      assert.ok(s !== undefined, `a streamed piece, got ${JSON.stringify(m)}`);
      answers++;
      text += Buffer.from(s.body ?? []).toString();
      if (s.end_of_stream === true) break;
    }
    assert.equal(text, words.join('').toUpperCase());
    assert.ok(answers <= words.length + 1);
    call.end();
    assert.equal((await call.status).code, 0);
    assert.equal(call.pending(), 0, 'nothing after the last piece');
  } finally {
    envoy.close();
    await server.close(1000);
  }
});
