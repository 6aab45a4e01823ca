import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { Gateway } from '../../src/gateway/index.js';
import { startSidecar, type RunningSidecar } from '../../src/sidecar/server.js';
import { until } from '../support/fixed-picker.js';
import { memoryLogger, MemorySource } from '../support/memory-source.js';
import { handledLine, sidecarPoolYaml, startSidecarEnv, type SidecarEnv } from '../support/sidecar-env.js';

// infergate pd-sidecar with vLLM (llm-d's NIXL dialect): prefill first, then the decode leg with
// the prefill's kv_transfer_params; and what passes through to a decode server untouched.

const HOSTS = { prefill: '127.0.11.12', decode: '127.0.11.13', outsider: '127.0.11.14' };

describe('pd-sidecar, vLLM', { timeout: 120_000 }, () => {
  let env: SidecarEnv;
  before(async () => {
    env = await startSidecarEnv('vllm', HOSTS);
  });
  after(async () => {
    await env?.close();
  });

  const long = `Write about rivers. ${'Consider every angle carefully and give details. '.repeat(40)}`;

  test('a pinned pair, streamed and not: prefill then decode with kv_transfer_params, the decode answer streamed back', async () => {
    for (const stream of [false, true]) {
      const id = `vllm-pair-${stream}`;
      const before = { p: env.prefill.stats().received, d: env.decode.stats().received };
      const res = await request(`${env.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': id, 'x-prefiller-host-port': `${HOSTS.prefill}:${env.port}` },
        body: JSON.stringify({ model: 'mymodel', max_tokens: 10, ignore_eos: true, stream, messages: [{ role: 'user', content: long }] }),
      });
      const text = await res.body.text();
      assert.equal(res.statusCode, 200, text);
      if (stream) assert.match(text, /data: \[DONE\]/);
      else assert.equal((JSON.parse(text) as { usage: { completion_tokens: number } }).usage.completion_tokens, 10, 'the decode leg answered in full');
      assert.equal(env.prefill.stats().received, before.p + 1);
      assert.equal(env.decode.stats().received, before.d + 1);
      await until(() => handledLine(env.lines, id) !== undefined, 20_000, 'Request Handled');
      const pd = handledLine(env.lines, id)?.['pd'] as Record<string, unknown>;
      assert.equal(pd['disaggregated'], true, `not run on decode alone: ${JSON.stringify(pd)}`);
      assert.equal(pd['fallback'], undefined);
      assert.equal(pd['prefillPod'], 'prefill-0');
    }
  });

  test('without the header, a streamed chat passes through to the local decode server (a full vLLM engine) as SSE', async () => {
    const before = { p: env.prefill.stats().received, d: env.decode.stats().received };
    const res = await request(`${env.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mymodel', max_tokens: 12, ignore_eos: true, stream: true, messages: [{ role: 'user', content: 'hello' }] }) });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /text\/event-stream/);
    let chunks = 0;
    let text = '';
    for await (const c of res.body) {
      chunks++;
      text += String(c);
    }
    assert.ok(chunks > 1, 'streamed in several chunks');
    assert.match(text, /data: \[DONE\]/);
    assert.equal(env.decode.stats().received, before.d + 1);
    assert.equal(env.prefill.stats().received, before.p, 'no prefill leg');
  });
});

describe('pd-sidecar pass-through', { timeout: 60_000 }, () => {
  let server: Server;
  let gateway: Gateway;
  let sidecar: RunningSidecar;
  const seen: { method: string; url: string; headers: IncomingHttpHeaders; body: Buffer }[] = [];
  before(async () => {
    server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(parts) });
        res.writeHead(207, { 'content-type': 'application/octet-stream', 'x-own': 'yes' });
        res.end(Buffer.from([0, 1, 2, 255]));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.11.23', resolve));
    const { logger } = memoryLogger();
    gateway = await Gateway.start({ sources: [new MemorySource(sidecarPoolYaml('vllm', 8000, { prefill: '127.0.11.22', decode: '127.0.11.23' }))], logger, scrapeIntervalMs: 0 });
    sidecar = await startSidecar({ gateway, poolKey: 'default/pd', decodeUrl: new URL(`http://127.0.11.23:${(server.address() as AddressInfo).port}`), address: '127.0.11.23', port: 0, logger });
  });
  after(async () => {
    await sidecar.close(1000);
    await gateway.close();
    server.close();
  });

  test('any method and path, the body byte for byte, the answer as the server gave it; x-gateway-* headers stay behind', async () => {
    const body = Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x22]);
    const res = await request(`http://127.0.11.23:${sidecar.port}/custom/path?x=1&y=%20`, { method: 'PUT', headers: { 'content-type': 'application/x-weird', 'x-gateway-destination-endpoint': '127.0.11.23:8000', 'x-keep': 'me' }, body });
    assert.equal(res.statusCode, 207);
    assert.equal(res.headers['x-own'], 'yes');
    assert.deepEqual(Buffer.from(await res.body.arrayBuffer()), Buffer.from([0, 1, 2, 255]));
    const got = seen.at(-1)!;
    assert.equal(got.method, 'PUT');
    assert.equal(got.url, '/custom/path?x=1&y=%20');
    assert.deepEqual(got.body, body);
    assert.equal(got.headers['x-keep'], 'me');
    assert.equal(got.headers['x-gateway-destination-endpoint'], undefined);
  });
});
