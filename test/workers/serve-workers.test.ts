import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { configDir } from '../support/config.js';
import { startGatewayProcess, type GatewayProcess, type LogLine } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';
import { gatewayForPools, poolYaml, startPods, waitFor, type SimPods } from '../support/smart.js';

/**
 * `infergate serve --workers 2` as a real process tree on loopback (127.0.21.0/24 is this file's),
 * over two simulated vLLM servers in a PREFIX_CACHE pool. One gateway for the whole file, the
 * tests in order: requests through both workers and one `/metrics`, prefix affinity across
 * workers, a killed worker replaced, then SIGTERM draining a stream in flight.
 */

const PREFIX = { 'inference.networking.x-k8s.io/routing-strategy': 'PREFIX_CACHE' };

interface Answer {
  readonly status: number;
  readonly pod: string | undefined;
  readonly body: string;
}

/** POSTs on a connection of its own (no keep-alive), so the primary deals it to the next worker. */
function post(port: number, body: string, requestId: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'x-request-id': requestId, connection: 'close' } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, pod: res.headers['x-sim-pod'] as string | undefined, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function chat(content: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: 'mymodel', max_tokens: 4, messages: [{ role: 'user', content }], ...extra });
}

async function admin(gateway: GatewayProcess, path: string): Promise<{ status: number; json: unknown; text: string }> {
  const r = await fetch(`http://127.0.0.1:${gateway.adminPort}${path}`);
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, text };
}

interface WorkerView {
  worker: number;
  pid: number;
  prefixIndex?: { entries: number };
}

async function workers(gateway: GatewayProcess): Promise<WorkerView[]> {
  return ((await admin(gateway, '/debug/endpoints')).json as { workers: WorkerView[] }).workers;
}

/** The worker that logged the request's `Request Handled` line. */
async function servedBy(gateway: GatewayProcess, requestId: string): Promise<LogLine> {
  return gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === requestId);
}

describe('infergate serve --workers 2', { timeout: 120_000 }, () => {
  let pods: SimPods;
  let gateway: GatewayProcess;
  let port: number;
  let remove: () => Promise<void>;
  let sent = 0;

  before(async () => {
    pods = await startPods([0, 1].map((i) => ({ name: `w-${i}`, host: `127.0.21.${i + 2}`, labels: { pool: 'shared' }, model: ['mymodel'], profile: 'tiny', timeScale: 1 })));
    port = await freePort();
    const cfg = await configDir(gatewayForPools(port, ['shared']) + poolYaml('shared', pods.port, PREFIX) + pods.podsYaml());
    remove = cfg.remove;
    gateway = await startGatewayProcess(['-f', cfg.dir, '--workers', '2', '--shutdown-grace', '20s']);
    await waitFor('both workers to see both servers scraped', async () => {
      const view = (await admin(gateway, '/debug/endpoints')).json as { pools: Array<{ endpoints: Array<{ metrics: unknown }> }>; workers: unknown[] };
      return view.workers.length === 2 && view.pools.every((p) => p.endpoints.every((e) => e.metrics !== null));
    });
  });

  after(async () => {
    await gateway?.stop();
    await pods?.close();
    await remove?.();
  });

  test('both workers serve; /readyz and /metrics answer for the gateway (request counters summed)', async () => {
    const ready = await admin(gateway, '/readyz');
    assert.equal(ready.status, 200, ready.text);
    assert.equal((ready.json as { workers: unknown[] }).workers.length, 2);
    const served = new Set<unknown>();
    for (let i = 0; i < 6; i++) {
      const r = await post(port, chat(`hello ${i}`), `both-${i}`);
      assert.equal(r.status, 200, r.body);
      sent++;
      served.add((await servedBy(gateway, `both-${i}`))['worker']);
    }
    assert.deepEqual([...served].sort(), [0, 1], 'connections are dealt to both workers');
    const metrics = (await admin(gateway, '/metrics')).text;
    const total = [...metrics.matchAll(/^infergate_requests_total\{[^}]*status="200"[^}]*\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
    assert.equal(total, sent, metrics);
    assert.match(metrics, /^infergate_endpoint_inflight_requests\{[^}]*\} 0$/m);
  });

  test('prefix affinity holds across workers: a group routed by one worker lands on the same endpoint from the other', async () => {
    // Prompts under 16 blocks (1,024 characters) have no prefix home (src/prefix/home.ts): only
    // the shared index can bring a group back to its endpoint when the other worker routes it.
    const groups = 6;
    for (let g = 0; g < groups; g++) {
      const system = `Group ${g} instructions. ${'Answer briefly and politely. '.repeat(20)}`;
      const pods = new Set<string | undefined>();
      const workersSeen = new Set<unknown>();
      for (let u = 0; u < 6 && (workersSeen.size < 2 || u < 3); u++) {
        // Every worker's index holds the same number of entries once the last request's records arrived.
        await waitFor('the workers to share the last records', async () => {
          const w = await workers(gateway);
          return w.length === 2 && w.every((x) => x.prefixIndex?.entries === w[0]?.prefixIndex?.entries);
        });
        const id = `g${g}-u${u}`;
        const r = await post(port, JSON.stringify({ model: 'mymodel', max_tokens: 4, messages: [{ role: 'system', content: system }, { role: 'user', content: `question ${u}` }] }), id);
        assert.equal(r.status, 200, r.body);
        sent++;
        pods.add(r.pod);
        workersSeen.add((await servedBy(gateway, id))['worker']);
      }
      assert.equal(workersSeen.size, 2, `group ${g} was routed by both workers`);
      assert.equal(pods.size, 1, `group ${g} stayed on one endpoint: ${[...pods].join(',')}`);
    }
  });

  test('a killed worker is logged and replaced; the gateway is ready again and serves', async () => {
    const before = (await admin(gateway, '/readyz')).json as { workers: Array<{ worker: number; pid: number }> };
    const victim = before.workers.find((w) => w.worker === 1);
    assert.ok(victim !== undefined);
    process.kill(victim.pid, 'SIGKILL');
    const line = await gateway.waitForLog((l) => l.msg === 'worker exited unexpectedly; starting a new one' && l['worker'] === 1);
    assert.equal(line['signal'], 'SIGKILL');
    await waitFor('a new worker 1, ready', async () => {
      const r = await admin(gateway, '/readyz');
      const w = (r.json as { workers?: Array<{ worker: number; pid: number }> }).workers?.find((x) => x.worker === 1);
      return r.status === 200 && w !== undefined && w.pid !== victim.pid;
    });
    for (let i = 0; i < 4; i++) {
      const r = await post(port, chat(`after ${i}`), `after-${i}`);
      assert.equal(r.status, 200, r.body);
    }
  });

  test('SIGTERM drains every worker: a stream in flight finishes whole, its log line is written, exit 0', async () => {
    const body = chat('tell me a long story', { stream: true, max_tokens: 300, ignore_eos: true });
    const streamed = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/v1/chat/completions', method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'x-request-id': 'drained' } }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => {
          text += c;
          // The first event is in: the stream is in flight. Stop the gateway now.
          if (text.includes('data: ') && !signalled) {
            signalled = true;
            gateway.kill('SIGTERM');
          }
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
    let signalled = false;
    const r = await streamed;
    assert.equal(r.status, 200);
    assert.ok(r.text.trimEnd().endsWith('data: [DONE]'), r.text.slice(-200));
    assert.doesNotMatch(r.text, /gateway_shutting_down/);
    assert.equal(await gateway.exited, 0);
    const line = gateway.logs.find((l) => l.msg === 'Request Handled' && l['requestId'] === 'drained');
    assert.ok(line !== undefined, 'the drained request was logged before the gateway exited');
    assert.equal(line['status'], 200);
    assert.ok(gateway.logs.some((l) => l.msg === 'gateway stopped' && l['process'] === 'primary'));
  });
});
