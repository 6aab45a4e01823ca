import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import * as zlib from 'node:zlib';
import { Endpoint } from '../../src/core/endpoint.js';
import { extractMetrics, scanMetrics } from '../../src/endpoints/metrics/index.js';
import { MAX_LABELS, MAX_LINE_CHARS } from '../../src/endpoints/metrics/prometheus-text.js';
import { SIGNAL_MAX } from '../../src/endpoints/metrics/signals.js';
import { MAX_MODELS_PER_ENDPOINT, ModelLister } from '../../src/endpoints/model-lister.js';
import { MAX_SCRAPE_BYTES, MetricsScraper } from '../../src/endpoints/scraper.js';

// A model server's /metrics and /v1/models answers must not size the gateway's memory, take its
// CPU or make it log per scrape: every value, name, line and page is bounded before use.

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.closeAllConnections();
  for (const s of servers) s.close();
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

function endpoint(port: number): Endpoint {
  return new Endpoint({ address: '127.0.0.1', port, name: 'pod', podName: 'pod', labels: {} });
}

const PAGE = `vllm:num_requests_waiting{model_name="m",engine="0"} 3
vllm:num_requests_running{model_name="m",engine="0"} 2
vllm:kv_cache_usage_perc{model_name="m",engine="0"} 0.25
`;

test('extract: absurd values are clamped or ignored, never used as they are', () => {
  const page = `vllm:num_requests_waiting{model_name="m",engine="0"} 1e308
vllm:num_requests_waiting{model_name="m",engine="1"} 1e308
vllm:num_requests_running{model_name="m",engine="0"} 2
vllm:kv_cache_usage_perc{model_name="m",engine="0"} 7
vllm:cache_config_info{block_size="1000000000",num_gpu_blocks="9007199254740991"} 1
vllm:prefix_cache_hits_total{model_name="m"} +Inf
`;
  const r = extractMetrics(page, 'vllm');
  assert.ok(r.metrics !== undefined, r.problems.join('\n'));
  assert.equal(r.metrics.waitingRequests, SIGNAL_MAX.requests, 'a sum that overflowed to Infinity is clamped');
  assert.equal(r.metrics.kvCacheUsage, 1);
  assert.equal(r.metrics.blockSize, undefined, 'a block size of a billion tokens is ignored');
  assert.equal(r.metrics.numGpuBlocks, SIGNAL_MAX.blocks);
  assert.equal(r.metrics.prefixCacheHitsTokens, undefined);
  for (const [k, v] of Object.entries(r.metrics)) if (typeof v === 'number') assert.ok(Number.isFinite(v) && v >= 0, `${k} = ${v}`);
});

test('extract: NaN and negative KV utilisation give no KV value (a problem, not a NaN score)', () => {
  for (const kv of ['NaN', '-3', '-Inf']) {
    const r = extractMetrics(PAGE.replace('0.25', kv), 'vllm');
    assert.equal(r.found.kvCacheUsage, undefined, kv);
  }
});

test('extract: LoRA adapter lists, slots and model names are bounded in count and length', () => {
  const many = Array.from({ length: 2000 }, (_, i) => `a${i}`).join(',');
  const long = 'x'.repeat(300);
  const lora = `vllm:lora_requests_info{max_lora="99999999999999999999",running_lora_adapters="${long},${many}",waiting_lora_adapters="${many}"} 1.7e9\n`;
  const models = Array.from({ length: 1000 }, (_, i) => `vllm:num_requests_running{model_name="model-${i}"} 0`).join('\n');
  const r = extractMetrics(`${PAGE}${lora}${models}\nvllm:num_requests_running{model_name="${long}"} 0\n`, 'vllm');
  const l = r.metrics?.lora;
  assert.ok(l !== undefined);
  assert.equal(l.maxLoras, 1024);
  assert.ok(l.running.length <= 256 && l.waiting.length <= 256, `${l.running.length} running, ${l.waiting.length} waiting`);
  assert.ok(!l.running.includes(long), 'a name no request could use is dropped');
  const served = r.metrics?.servedModels ?? [];
  assert.ok(served.length <= 256 && served.length > 0, `${served.length} served models`);
  assert.ok(served.every((n) => n.length <= 256));
});

test('scan: a line over MAX_LINE_CHARS and a sample with too many labels are malformed, skipped', () => {
  const labels = Array.from({ length: MAX_LABELS + 1 }, (_, i) => `l${i}="v"`).join(',');
  const text = `x{${labels}} 1\nx{a="${'v'.repeat(MAX_LINE_CHARS)}"} 2\nx{a="ok"} 3\n`;
  const r = scanMetrics(text, new Set(['x']));
  assert.deepEqual(r.families.get('x')?.map((s) => s.value), [3]);
  assert.equal(r.malformedLines, 2);
});

test('scraper: a page over the byte limit is abandoned (not read on), the scrape fails; a declared one is not read at all', async () => {
  let closedEarly = 0;
  const port = await serve((req, res) => {
    if (req.url === '/metrics' && req.headers['x-declared'] === undefined) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const line = Buffer.from(`${'# filler '.repeat(100)}\n`);
      let sent = 0;
      res.on('close', () => {
        if (!res.writableFinished) closedEarly++;
      });
      const pump = (): void => {
        while (sent < 256 * 1024 * 1024) {
          sent += line.length;
          if (!res.write(line)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    }
  });
  const scraper = new MetricsScraper({ intervalMs: 1000, timeoutMs: 20_000, maxPageBytes: 64 * 1024 });
  const e = endpoint(port);
  await scraper.scrapeOnce(e);
  assert.equal(e.metrics, undefined);
  assert.match(e.lastScrapeError ?? '', /limit/);
  assert.equal(e.consecutiveScrapeFailures, 1);
  const deadline = Date.now() + 20_000;
  while (closedEarly === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(closedEarly, 1, 'the gateway closed the connection instead of reading 256 MiB');

  const declared = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(MAX_SCRAPE_BYTES + 1) });
    res.write(PAGE); // and then nothing: a reader waiting for the rest would time out instead
  });
  const d = endpoint(declared);
  const quick = new MetricsScraper({ intervalMs: 1000, timeoutMs: 20_000 });
  await quick.scrapeOnce(d);
  assert.match(d.lastScrapeError ?? '', /over the \d+-byte limit; not read/);
  await scraper.close();
  await quick.close();
});

test('scraper: compressed pages are decoded; a gzip bomb is stopped at the limit; a corrupt or unknown coding fails', async () => {
  const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
  for (const kind of ['gzip', 'deflate', 'br']) {
    const s = new MetricsScraper({ intervalMs: 1000, timeoutMs: 20_000 });
    const e = endpoint(await serve((_req, res) => {
      res.writeHead(200, { 'content-encoding': kind });
      res.end(kind === 'br' ? zlib.brotliCompressSync(PAGE) : kind === 'deflate' ? zlib.deflateSync(PAGE) : zlib.gzipSync(PAGE));
    }));
    await s.scrapeOnce(e);
    assert.equal(e.metrics?.waitingRequests, 3, `${kind} page read`);
    await s.close();
  }
  const cases: ReadonlyArray<[string, Buffer, string, RegExp]> = [
    ['bomb', bomb, 'gzip', /over the \d+-byte limit/],
    ['corrupt', Buffer.from('not gzip at all, not at all'), 'gzip', /could not be decoded/],
    ['unknown', Buffer.from(PAGE), 'compress', /unknown content-encoding/],
  ];
  for (const [name, body, coding, error] of cases) {
    const s = new MetricsScraper({ intervalMs: 1000, timeoutMs: 20_000, maxPageBytes: 1024 * 1024 });
    const e = endpoint(await serve((_req, res) => {
      res.writeHead(200, { 'content-encoding': coding });
      res.end(body);
    }));
    await s.scrapeOnce(e);
    assert.equal(e.metrics, undefined, name);
    assert.match(e.lastScrapeError ?? '', error, name);
    await s.close();
  }
});

test('scraper: a page that never ends fails within the scrape timeout', async () => {
  const port = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write(PAGE);
    const t = setInterval(() => res.write('# still here\n'), 50);
    res.on('close', () => clearInterval(t));
  });
  const scraper = new MetricsScraper({ intervalMs: 1000, timeoutMs: 300 });
  const e = endpoint(port);
  await scraper.scrapeOnce(e);
  assert.equal(e.metrics, undefined);
  assert.match(e.lastScrapeError ?? '', /./, 'the scrape failed');
  // On a busy machine the test process's own event loop may be late at the deadline: the scraper
  // then calls the failure inconclusive and leaves the server's health alone (scraper.ts). A
  // conclusive failure counts against the server: try until one comes.
  for (let i = 0; i < 20 && e.consecutiveScrapeFailures === 0; i++) {
    assert.match(e.lastScrapeError ?? '', /inconclusive/);
    await scraper.scrapeOnce(e);
  }
  assert.equal(e.consecutiveScrapeFailures, 1);
  await scraper.close();
});

test('scraper: a server that keeps sending junk is scraped less and less often; its changing problems are logged a few times, not per scrape', async () => {
  let hits = 0;
  const port = await serve((_req, res) => {
    hits++;
    res.writeHead(200, { 'content-type': 'text/plain' });
    // A different out-of-range value every time: the problem text changes per scrape.
    res.end(`vllm:num_requests_waiting 1\nvllm:num_requests_running 1\nvllm:kv_cache_usage_perc -${hits}\n`);
  });
  const problems: string[][] = [];
  const scraper = new MetricsScraper({ intervalMs: 5, timeoutMs: 1000, maxBackoffMs: 400 }, { onProblems: (_e, p) => problems.push([...p]) });
  const e = endpoint(port);
  scraper.sync([e]);
  await new Promise((r) => setTimeout(r, 1500));
  await scraper.close();
  // Without back-off: one scrape per 5 ms, about 300. With it: 3, then 10, 20, … 400 ms apart.
  assert.ok(hits >= 3 && hits <= 40, `${hits} scrapes`);
  assert.ok(problems.length <= 3, `${problems.length} problem reports`);
});

test('scraper: a new endpoint is not ready until a scrape reaches it; a hanging /metrics keeps it out', async () => {
  const good = endpoint(await serve((_req, res) => res.end(PAGE)));
  const hanging = endpoint(await serve(() => undefined));
  const scraper = new MetricsScraper({ intervalMs: 20, timeoutMs: 200 });
  scraper.sync([good, hanging]);
  const now = (): number => performance.now();
  assert.equal(good.ready(now()), false, 'not before its first scrape');
  assert.equal(hanging.ready(now()), false);
  const deadline = Date.now() + 20_000;
  while (!good.ready(now()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(good.ready(now()), true);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(hanging.ready(now()), false, 'a server whose /metrics never answers never gets traffic');
  await scraper.close();
});

test('model list: a chunked body over 1 MiB is abandoned; a listing that answers makes a new endpoint ready', async () => {
  const port = await serve((req, res) => {
    void req;
    res.writeHead(200, { 'content-type': 'application/json' });
    const items = Array.from({ length: MAX_MODELS_PER_ENDPOINT * 40 }, (_, i) => ({ id: `m-${i}`.padEnd(100, 'x') }));
    res.end(JSON.stringify({ data: items }));
  });
  const lister = new ModelLister({ timeoutMs: 20_000 });
  const e = endpoint(port);
  e.awaitingFirstContact = true;
  assert.equal(await lister.listOnce(e), false);
  assert.equal(e.servedModels, undefined, 'a 1.2 MB chunked list is not read');
  const small = endpoint(await serve((_req, res) => res.end(JSON.stringify({ data: [{ id: 'm' }] }))));
  small.awaitingFirstContact = true;
  assert.equal(await lister.listOnce(small), true);
  assert.deepEqual(small.servedModels?.map((m) => m.id), ['m']);
  assert.equal(small.ready(performance.now()), true, 'a runtime without metrics is ready once it lists its models');
  await lister.close();
});
