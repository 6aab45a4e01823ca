import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { Endpoint } from '../../src/core/endpoint.js';
import { ModelLister } from '../../src/endpoints/model-lister.js';
import { HEALTH_REPORTS_PER_MINUTE } from '../../src/endpoints/health-reports.js';
import { MetricsScraper } from '../../src/endpoints/scraper.js';
import { readFixture } from './metrics/fixtures.js';

/** A /metrics server whose answer the test changes at will. */
async function metricsServer(): Promise<{ server: Server; port: number; answer: { status: number; body: string } }> {
  const answer = { status: 200, body: '' };
  const server = createServer((_req, res) => {
    res.writeHead(answer.status, { 'content-type': 'text/plain' });
    res.end(answer.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, answer };
}

const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

function endpoint(port: number, init: Partial<ConstructorParameters<typeof Endpoint>[0]> = {}): Endpoint {
  return new Endpoint({ address: '127.0.0.1', port, name: 'pod', podName: 'pod', labels: {}, ...init });
}

const VLLM_PAGE = `vllm:num_requests_waiting{model_name="m",engine="0"} 3
vllm:num_requests_running{model_name="m",engine="0"} 2
vllm:kv_cache_usage_perc{model_name="m",engine="0"} 0.25
`;

test('scraper: metrics land on the endpoint; 3 failures make it unhealthy; one success brings it back', async () => {
  const { server, port, answer } = await metricsServer();
  servers.push(server);
  answer.body = VLLM_PAGE;
  const health: boolean[] = [];
  const scraper = new MetricsScraper({ intervalMs: 1000, timeoutMs: 500 }, { onHealthChange: (_e, healthy) => health.push(healthy) });
  const e = endpoint(port);
  e.inFlight = 4;
  await scraper.scrapeOnce(e);
  assert.equal(e.metrics?.waitingRequests, 3);
  assert.equal(e.inFlightAtScrape, 4, 'what the server already counts is remembered');
  answer.status = 503;
  await scraper.scrapeOnce(e);
  await scraper.scrapeOnce(e);
  assert.equal(e.healthy, true, 'two failures are tolerated');
  await scraper.scrapeOnce(e);
  assert.equal(e.healthy, false);
  answer.status = 200;
  await scraper.scrapeOnce(e);
  assert.equal(e.healthy, true);
  assert.deepEqual(health, [false, true]);
  await scraper.close();
});

test('scraper: an unreachable endpoint becomes unhealthy; a server without metrics stays healthy, metric-less, reported once', async () => {
  const { server, port, answer } = await metricsServer();
  servers.push(server);
  const problems: string[][] = [];
  const scraper = new MetricsScraper({ intervalMs: 1000, timeoutMs: 500 }, { onProblems: (_e, p) => problems.push([...p]) });
  answer.status = 404;
  const e = endpoint(port);
  for (let i = 0; i < 4; i++) await scraper.scrapeOnce(e);
  assert.equal(e.healthy, true);
  assert.equal(e.metrics, undefined);
  assert.equal(problems.length, 1, 'the same problem is reported once, not every scrape');
  assert.match(problems[0]?.[0] ?? '', /answered 404: no load metrics/);

  const closed = await metricsServer();
  closed.server.close();
  const gone = endpoint(closed.port);
  for (let i = 0; i < 3; i++) await scraper.scrapeOnce(gone);
  assert.equal(gone.healthy, false);
  assert.match(gone.lastScrapeError ?? '', /ECONNREFUSED/);
  await scraper.close();
});

test('scraper: a defaulted dialect follows the page; a configured one is kept and the contradiction reported', async () => {
  const { server, port, answer } = await metricsServer();
  servers.push(server);
  answer.body = readFixture('sglang-docs.txt');
  const detected: string[] = [];
  const problems: string[] = [];
  const scraper = new MetricsScraper({ intervalMs: 1000 }, { onDialectDetected: (_e, from, to) => detected.push(`${from}->${to}`), onProblems: (_e, p) => problems.push(...p) });
  const defaulted = endpoint(port);
  await scraper.scrapeOnce(defaulted);
  assert.deepEqual(detected, ['vllm->sglang']);
  assert.equal(defaulted.metrics?.waitingRequests, 2826);
  assert.equal(defaulted.metrics?.kvCacheUsage, 0.28);

  const configured = endpoint(port, { address: '127.0.0.1', dialect: 'vllm', dialectConfigured: true });
  await scraper.scrapeOnce(configured);
  assert.equal(configured.dialect, 'vllm');
  assert.equal(configured.metrics, undefined);
  assert.ok(problems.some((p) => p.includes('the page has sglang metrics, but the endpoint is configured as vllm')), problems.join('\n'));
  await scraper.close();
});

test('scraper: the runtime is known only once a page shows its names; Triton\'s core series mark a Triton server whatever its backend', async () => {
  const { server, port, answer } = await metricsServer();
  servers.push(server);
  const scraper = new MetricsScraper({ intervalMs: 1000, timeoutMs: 500 }, {});
  const e = endpoint(port);
  assert.equal(e.dialectKnown(), false, 'the default dialect is a guess');
  // A failing scrape, a page of nothing we read, a 404: still a guess.
  answer.status = 500;
  await scraper.scrapeOnce(e);
  assert.equal(e.dialectKnown(), false);
  answer.status = 200;
  answer.body = 'process_cpu_seconds_total 1\n';
  await scraper.scrapeOnce(e);
  assert.equal(e.dialectKnown(), false);
  answer.status = 404;
  await scraper.scrapeOnce(e);
  assert.equal(e.dialectKnown(), false);
  // vLLM's names (the default, confirmed).
  answer.status = 200;
  answer.body = VLLM_PAGE;
  await scraper.scrapeOnce(e);
  assert.equal(e.dialectKnown(), true);
  assert.equal(e.servedByTriton, false);
  // Triton's vLLM backend: vLLM's names beside Triton's own.
  answer.body = `${VLLM_PAGE}nv_inference_request_success{model="m",version="1"} 7\n`;
  await scraper.scrapeOnce(e);
  assert.equal(e.dialect, 'vllm');
  assert.equal(e.servedByTriton, true);
  // Triton with TensorRT-LLM: detected, and Triton.
  const trt = endpoint(port, { address: '127.0.0.1' });
  answer.body = readFixture('triton-trtllm-docs.txt');
  await scraper.scrapeOnce(trt);
  assert.equal(trt.dialect, 'trt-llm');
  assert.equal(trt.dialectKnown(), true);
  assert.equal(trt.servedByTriton, true);
  // A configured runtime is known without a scrape.
  assert.equal(endpoint(port, { dialect: 'sglang', dialectConfigured: true }).dialectKnown(), true);
  await scraper.close();
});

test('scraper: a timeout while the gateway itself was starved is inconclusive; a server that hangs is still found out', async () => {
  // A server that answers at once, and one that never answers.
  const { server, port, answer } = await metricsServer();
  servers.push(server);
  answer.body = VLLM_PAGE;
  const hanging = createServer(() => {});
  await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
  servers.push(hanging);
  const timeoutMs = 200;
  const scraper = new MetricsScraper({ intervalMs: 1000, timeoutMs });
  try {
    const healthy = endpoint(port);
    for (let i = 0; i < 4; i++) {
      const scrape = scraper.scrapeOnce(healthy);
      // The gateway's own event loop is busy for three timeouts (parsing a flood of large bodies, say).
      const until = performance.now() + 3 * timeoutMs;
      while (performance.now() < until);
      await scrape;
    }
    assert.equal(healthy.healthy, true, `a healthy server is not marked down for the gateway's own starvation (${String(healthy.lastScrapeError)})`);

    const hung = endpoint((hanging.address() as AddressInfo).port);
    // Polled with a generous bound: on a busy machine a scrape may overlap a lag spike and be inconclusive.
    for (let i = 0; i < 50 && hung.healthy; i++) await scraper.scrapeOnce(hung);
    assert.equal(hung.healthy, false, 'a server that never answers is unhealthy');
  } finally {
    await scraper.close();
  }
});

test('closing the scraper and the model lister ends their requests to a silent server at once, not at their timeouts', async () => {
  // A server that takes the requests and never answers: a hung engine.
  const seen: string[] = [];
  const silent = createServer((req) => seen.push(req.url ?? ''));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  servers.push(silent);
  const e = endpoint((silent.address() as AddressInfo).port);
  const health: boolean[] = [];
  const scraper = new MetricsScraper({ intervalMs: 10, timeoutMs: 120_000 }, { onHealthChange: (_e, healthy) => health.push(healthy) });
  const lister = new ModelLister({ timeoutMs: 120_000 });
  scraper.sync([e]);
  lister.sync([e]);
  for (const deadline = Date.now() + 60_000; !(seen.includes('/metrics') && seen.includes('/v1/models')); ) {
    assert.ok(Date.now() < deadline, `both requests reached the server (seen: ${seen.join(', ')})`);
    await new Promise((r) => setTimeout(r, 10));
  }
  // Far shorter than the 120 s timeouts the requests would otherwise wait for.
  const closed = Promise.all([scraper.close(), lister.close()]).then(() => 'closed' as const);
  const late = new Promise<'late'>((r) => setTimeout(r, 60_000, 'late').unref());
  assert.equal(await Promise.race([closed, late]), 'closed');
  assert.deepEqual(health, [], 'an ended scrape is not held against the server');
  assert.equal(e.consecutiveScrapeFailures, 0);
  silent.closeAllConnections();
});

test('a flapping /metrics page is reported a few times a minute, not once per change', async () => {
  const { server, port, answer } = await metricsServer();
  servers.push(server);
  answer.body = VLLM_PAGE;
  const reports: Array<{ healthy: boolean; notReported: number }> = [];
  const scraper = new MetricsScraper({ intervalMs: 1000, timeoutMs: 500 }, { onHealthChange: (_e, healthy, _reason, notReported) => reports.push({ healthy, notReported }) });
  const e = endpoint(port);
  await scraper.scrapeOnce(e);
  let changes = 0;
  for (let cycle = 0; cycle < 20; cycle++) {
    answer.status = 503;
    for (let i = 0; i < 3; i++) await scraper.scrapeOnce(e);
    assert.equal(e.healthy, false);
    answer.status = 200;
    await scraper.scrapeOnce(e);
    assert.equal(e.healthy, true);
    changes += 2;
  }
  assert.deepEqual(reports.slice(0, 2), [{ healthy: false, notReported: 0 }, { healthy: true, notReported: 0 }], 'the first outage and its recovery at once');
  assert.ok(reports.length <= HEALTH_REPORTS_PER_MINUTE, `${reports.length} reports for ${changes} changes`);
  await scraper.close();
});
