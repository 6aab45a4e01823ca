import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startSimServer, type RunningSimServer, type SimServerOptions } from '../../src/sim/index.js';
import { configDir } from '../support/config.js';
import { startGatewayProcess, type GatewayProcess, type LogLine } from '../support/gateway-process.js';
import { LLAMA3_TOKENIZER_DIR } from '../support/llama3-tokenizer.js';
import { freePort, freePortOnAll } from '../support/ports.js';
import { gatewayForPools, PATIENT_SCRAPE_MS, poolYaml, startPods, waitFor, type SimPods } from '../support/smart.js';

/**
 * Precise prefix-cache routing end to end: simulated vLLM pods tokenising with Llama 3's real
 * tokenizer and publishing their KV events over ZeroMQ (array and map encodings, int and bytes
 * hashes), gateways that subscribe to them. What a pod caches reaches the gateway only through
 * its events, so every placement below is one estimate mode cannot make.
 */

const HOSTS = ['127.0.9.2', '127.0.9.3', '127.0.9.4'] as const;
const MODEL = 'llama';

interface DebugView {
  pools: Array<{
    pool: string;
    prefixCache: { mode: string; tokenizers?: Array<{ model: string; path: string; state: string; error?: string }> };
    endpoints: Array<{ name: string; kvEvents: { subscribed: boolean; blocks: number } | null }>;
  }>;
}

async function view(gateway: GatewayProcess): Promise<DebugView> {
  return (await (await fetch(`http://127.0.0.1:${gateway.adminPort}/debug/endpoints`)).json()) as DebugView;
}

async function blocksOn(gateway: GatewayProcess, pod: string): Promise<number> {
  const v = await view(gateway);
  return v.pools[0]?.endpoints.find((e) => e.name === pod)?.kvEvents?.blocks ?? -1;
}

/** A chat long enough for many 16-token blocks; `topic` makes prompts distinct from their first block. */
function chat(topic: string): Record<string, unknown> {
  return {
    model: MODEL,
    max_tokens: 4,
    messages: [
      { role: 'system', content: `You answer questions about ${topic}. ${'Be precise, cite the manual, keep answers short and check every number twice. '.repeat(12)}` },
      { role: 'user', content: `What is the first thing to know about ${topic}?` },
    ],
  };
}

async function send(base: string, body: Record<string, unknown>, requestId?: string): Promise<{ status: number; pod: string | null; text: string }> {
  const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...(requestId === undefined ? {} : { 'x-request-id': requestId }) }, body: JSON.stringify(body) });
  return { status: r.status, pod: r.headers.get('x-sim-pod'), text: await r.text() };
}

function handled(gateway: GatewayProcess, requestId: string): Promise<LogLine> {
  return gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === requestId);
}

describe('precise prefix-cache routing from the pods KV events', { timeout: 240_000 }, () => {
  let pods: SimPods;
  let eventsPort: number;
  let replayPort: number;
  const gateways: Array<{ gateway: GatewayProcess; base: string; remove: () => Promise<void> }> = [];
  const simOptions = (i: number): Pick<SimServerOptions, 'kvEvents'> & { tokenizer: string } => ({
    tokenizer: LLAMA3_TOKENIZER_DIR,
    kvEvents: {
      endpoint: `tcp://${HOSTS[i]}:${eventsPort}`,
      replayEndpoint: `tcp://${HOSTS[i]}:${replayPort}`,
      encoding: i === 1 ? 'map' : 'array',
      hashes: i === 1 ? 'bytes' : 'int',
    },
  });

  async function startGateway(tokenizerPath: string): Promise<{ gateway: GatewayProcess; base: string; remove: () => Promise<void> }> {
    const port = await freePort();
    const routing = JSON.stringify({
      prefix: { mode: 'precise', kvEvents: { endpoint: `tcp://{ip}:${eventsPort}`, replayEndpoint: `tcp://{ip}:${replayPort}` }, tokenizers: [{ model: MODEL, path: tokenizerPath }] },
    });
    const cfg = await configDir(gatewayForPools(port, ['p']) + poolYaml('p', pods.port, { 'inference.networking.x-k8s.io/routing-strategy': 'PREFIX_CACHE', 'infergate.dev/routing': routing }) + pods.podsYaml());
    const gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-timeout', String(PATIENT_SCRAPE_MS), '--metrics-staleness', String(PATIENT_SCRAPE_MS)]);
    const entry = { gateway, base: `http://127.0.0.1:${port}`, remove: cfg.remove };
    gateways.push(entry);
    return entry;
  }

  before(async () => {
    eventsPort = await freePortOnAll(HOSTS);
    replayPort = await freePortOnAll(HOSTS);
    pods = await startPods(HOSTS.map((host, i) => ({ name: `pod-${i}`, host, labels: { pool: 'p' }, model: MODEL, profile: 'llama-3.1-8b-h100', timeScale: 20, ...simOptions(i) })));
    for (let r = 0; r < 2; r++) {
      const { gateway } = await startGateway(LLAMA3_TOKENIZER_DIR);
      await gateway.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('tokenizer loaded'), 60_000);
      await waitFor('every pod subscribed', async () => (await view(gateway)).pools[0]?.endpoints.every((e) => e.kvEvents?.subscribed === true) === true);
    }
  });

  after(async () => {
    for (const g of gateways) {
      await g.gateway.stop();
      await g.remove();
    }
    await pods?.close();
  });

  test('a prompt cached only on one pod, by traffic that bypassed the gateway, goes to that pod from every replica', async () => {
    const body = chat('ZeroMQ sockets');
    const direct = pods.get('pod-1');
    const r = await fetch(`${direct.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(r.status, 200);
    for (const g of gateways) await waitFor('pod-1 blocks in the index', async () => (await blocksOn(g.gateway, 'pod-1')) > 0);
    for (const [i, g] of gateways.entries()) {
      const res = await send(g.base, body, `bypass-${i}`);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.pod, 'pod-1', `replica ${i} sent it where the blocks are`);
      const line = await handled(g.gateway, `bypass-${i}`);
      assert.equal(line['prefixMode'], 'precise');
      const [matched, total] = String(line['prefixBlocks']).split('/').map(Number);
      assert.ok((total ?? 0) >= 8 && matched === total, `matched every full block: ${String(line['prefixBlocks'])}`);
    }
  });

  test('an eviction moves the traffic: blocks a pod dropped no longer pull, blocks another pod stored do', async () => {
    const body = chat('eviction policies');
    const [g] = gateways;
    assert.ok(g);
    await fetch(`${pods.get('pod-0').url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await waitFor('pod-0 blocks in the index', async () => (await blocksOn(g.gateway, 'pod-0')) > 0);
    assert.equal((await send(g.base, body)).pod, 'pod-0');
    // pod-0 drops its prefix cache (vLLM's POST /reset_prefix_cache); pod-2 computes the prompt.
    const reset = await fetch(`${pods.get('pod-0').url}/reset_prefix_cache`, { method: 'POST' });
    assert.ok(reset.status < 300, `reset: ${reset.status}`);
    await waitFor('pod-0 blocks gone from the index', async () => (await blocksOn(g.gateway, 'pod-0')) === 0);
    await fetch(`${pods.get('pod-2').url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await waitFor('pod-2 blocks in the index', async () => (await blocksOn(g.gateway, 'pod-2')) > 0);
    const res = await send(g.base, body, 'after-eviction');
    assert.equal(res.pod, 'pod-2');
  });

  test('a pod that restarts starts clean in the index, and its new events count again', async () => {
    const [g] = gateways;
    assert.ok(g);
    const body = chat('restarts');
    const old = pods.get('pod-2');
    await fetch(`${old.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await waitFor('pod-2 blocks in the index', async () => (await blocksOn(g.gateway, 'pod-2')) > 0);
    await old.close();
    // The same pod comes back on its address with an empty cache and a new event sequence.
    let fresh: RunningSimServer | undefined;
    try {
      fresh = await startSimServer({ host: HOSTS[2], port: pods.port, name: 'pod-2', model: MODEL, profile: 'llama-3.1-8b-h100', timeScale: 20, bootstrapPort: 0, sideChannelPort: 0, ...simOptions(2) });
      const other = chat('life after a restart');
      await fetch(`${fresh.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(other) });
      // The old process's blocks are gone (not trusted stale); the new one's arrive.
      // The request reached the new process before the gateway's subscriber reconnected: its
      // events come from the new process's replay buffer, which the subscriber reads from the start.
      await waitFor("the old process's blocks dropped and the new one's in", async () => {
        const metrics = await (await fetch(`http://127.0.0.1:${g.gateway.adminPort}/metrics`)).text();
        return /infergate_kv_event_resets_total\{reason="(reconnect|restart|gap)"\} [1-9]/.test(metrics) && (await blocksOn(g.gateway, 'pod-2')) > 0;
      });
      const res = await send(g.base, other, 'restart-new-prompt');
      assert.equal(res.pod, 'pod-2', (await handled(g.gateway, 'restart-new-prompt'))['prefixBlocks'] as string);
      const line = await send(g.base, body, 'old-prompt');
      const log = await handled(g.gateway, 'old-prompt');
      assert.equal(line.status, 200);
      assert.match(String(log['prefixBlocks']), /^0\//, 'the restarted pod no longer counts as holding the old prompt');
    } finally {
      await fresh?.close();
    }
  });

  test('a tokenizer that cannot load is said at load time, shown, and its pool routes in estimate mode', async () => {
    const { gateway, base } = await startGateway('/nonexistent/tokenizer-dir');
    const warned = await gateway.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('tokenizer failed to load'), 60_000);
    assert.equal(warned['tokenizer'], '/nonexistent/tokenizer-dir');
    const v = await view(gateway);
    assert.equal(v.pools[0]?.prefixCache.tokenizers?.[0]?.state, 'failed');
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.adminPort}/metrics`)).text();
    assert.match(metrics, /infergate_prefix_cache_mode\{pool="default\/p",mode="estimate"\} 1/);
    const res = await send(base, chat('fallbacks'), 'fallback');
    assert.equal(res.status, 200, res.text);
    assert.equal((await handled(gateway, 'fallback'))['prefixMode'], 'estimate');
    const after = await (await fetch(`http://127.0.0.1:${gateway.adminPort}/metrics`)).text();
    assert.match(after, /infergate_prefix_precise_fallbacks_total\{reason="tokenizer_failed"\} 1/);
  });
});
