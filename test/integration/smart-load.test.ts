import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { GatewayProcess } from '../support/gateway-process.js';
import { gatewayForPools, handled, loadDirectly, poolYaml, servedBy as servedByPods, startSmartEnv, waitFor, waitForView, type SimPods, type SmartEnv } from '../support/smart.js';

// Load-aware routing from the model servers' own metrics, for each runtime dialect. Load is put
// on one pod by sending it requests directly, past the gateway: the gateway can only learn of it
// from that pod's /metrics. Pods run the 8B profile 20× faster than real time, with at most 4
// running requests so a handful of long requests builds a queue. The load is effectively endless
// (100 000 tokens each): it ends when the test stops it, not when the machine happens to be slow
// enough for it to drain before the test's requests are through.
const TIME_SCALE = 20;
const COMMON = { profile: 'llama-3.1-8b-h100', timeScale: TIME_SCALE, overrides: { maxNumSeqs: 4 } } as const;
const LONG = { model: 'mymodel', prompt: 'load '.repeat(200), max_tokens: 100_000, ignore_eos: true };

describe('smart routing: load, LoRA, runtimes, failures', { timeout: 180_000 }, () => {
  let env: SmartEnv;
  let pods: SimPods;
  let gateway: GatewayProcess;
  let base: string;

  before(async () => {
    env = await startSmartEnv([
      { name: 'v-0', host: '127.0.1.2', labels: { pool: 'vllm' }, loras: ['ad-a', 'ad-b'], maxLoras: 1, ...COMMON },
      { name: 'v-1', host: '127.0.1.3', labels: { pool: 'vllm' }, loras: ['ad-a', 'ad-b'], maxLoras: 1, ...COMMON },
      { name: 'v-2', host: '127.0.1.4', labels: { pool: 'vllm' }, loras: ['ad-a', 'ad-b'], maxLoras: 1, ...COMMON },
      { name: 's-0', host: '127.0.1.5', labels: { pool: 'sglang' }, runtime: 'sglang', ...COMMON },
      { name: 's-1', host: '127.0.1.6', labels: { pool: 'sglang' }, runtime: 'sglang', ...COMMON },
      { name: 't-0', host: '127.0.1.7', labels: { pool: 'trt' }, runtime: 'trtllm', ...COMMON },
      { name: 't-1', host: '127.0.1.8', labels: { pool: 'trt' }, runtime: 'trtllm', ...COMMON },
      { name: 'f-0', host: '127.0.1.9', labels: { pool: 'fail' }, ...COMMON },
      { name: 'f-1', host: '127.0.1.10', labels: { pool: 'fail' }, ...COMMON },
      { name: 'f-2', host: '127.0.1.11', labels: { pool: 'fail' }, ...COMMON },
    ], (port, p) =>
      gatewayForPools(port, ['vllm', 'sglang', 'trt', 'fail']) +
        poolYaml('vllm', p.port) +
        poolYaml('sglang', p.port, { 'inference.networking.x-k8s.io/model-server-runtime': 'sglang' }) +
        poolYaml('trt', p.port, { 'inference.networking.x-k8s.io/model-server-runtime': 'trt-llm' }) +
        poolYaml('fail', p.port) +
        p.podsYaml());
    ({ pods, gateway, base } = env);
  });

  after(async () => {
    await env?.close();
  });

  /** `n` requests one after another through the gateway (to `pool`); the pods that served them. */
  const servedBy = (n: number, model: string, pool?: string): Promise<string[]> => servedByPods(base, n, model, pool === undefined ? {} : { 'x-pool': pool });

  for (const [pool, loaded, other] of [
    ['vllm', 'v-0', 'v-1|v-2'],
    ['sglang', 's-0', 's-1'],
    ['trt', 't-0', 't-1'],
  ] as const) {
    test(`${pool}: new requests avoid the pod its own metrics show as loaded`, async () => {
      const load = loadDirectly(pods.get(loaded), 10, LONG);
      try {
        // The load is visible to the gateway only through the pod's /metrics, in its dialect.
        await waitForView(gateway, loaded, 'queue from its metrics', (e) => (e.metrics?.waitingRequests ?? 0) >= 5);
        const served = await servedBy(12, 'mymodel', pool === 'vllm' ? undefined : pool);
        assert.deepEqual(served.filter((p) => p === loaded), [], `no request to the loaded ${loaded}: ${served.join(',')}`);
        assert.ok(served.every((p) => new RegExp(`^(${other})$`).test(p)));
      } finally {
        load.stop();
        await load.done;
      }
    });
  }

  test('LoRA: requests for a running adapter go to the pod that has it loaded; others avoid its full slot', async () => {
    const load = loadDirectly(pods.get('v-1'), 2, { ...LONG, model: 'ad-a' });
    try {
      await waitForView(gateway, 'v-1', 'ad-a running', (e) => e.metrics?.lora?.running.includes('ad-a') === true);
      assert.deepEqual(new Set(await servedBy(8, 'ad-a')), new Set(['v-1']));
      // v-1's only slot holds ad-a: ad-b would wait there, so it goes to a pod with a free slot.
      const b = await servedBy(8, 'ad-b');
      assert.ok(!b.includes('v-1'), `ad-b avoided v-1: ${b.join(',')}`);
      // The base model needs no slot and is balanced as usual, once the gateway sees the ad-b
      // requests gone from v-0 and v-2 (on a busy machine their scrapes may lag).
      for (const idle of ['v-0', 'v-2']) await waitForView(gateway, idle, 'no requests left', (e) => e.metrics !== null && e.metrics.runningRequests === 0 && e.metrics.waitingRequests === 0);
      const base = await servedBy(9, 'mymodel');
      assert.ok(new Set(base).size >= 2, `base model spread: ${base.join(',')}`);
    } finally {
      load.stop();
      await load.done;
    }
  });

  test('failure: killing a pod mid-run loses only the requests that were on it; the rest route around it', async () => {
    const results: Array<{ id: string; status: number; complete: boolean }> = [];
    const running = new Map<string, Promise<void>>();
    const stream = async (id: string): Promise<void> => {
      const r = await fetch(`${base}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-pool': 'fail', 'x-request-id': id },
        body: JSON.stringify({ model: 'mymodel', prompt: `request ${id}`, max_tokens: 400, ignore_eos: true, stream: true }),
      });
      const text = await r.text().catch(() => '');
      results.push({ id, status: r.status, complete: text.trimEnd().endsWith('data: [DONE]') && !text.includes('"error"') });
    };
    // Six streams at a time until the kill, then 24 more: the load never stops before the kill.
    let sent = 0;
    let killedAt = -1;
    const driver = (async () => {
      while (sent < 400 && (killedAt < 0 || sent < killedAt + 24)) {
        const id = `fail-${sent++}`;
        const p = stream(id).finally(() => running.delete(id));
        running.set(id, p);
        if (running.size >= 6) await Promise.race(running.values());
      }
      await Promise.all(running.values());
    })();
    // Kill f-0 once a dozen requests went out and it is streaming some (its own count).
    await waitFor('f-0 streaming requests', () => sent >= 12 && pods.get('f-0').stats().inFlight > 0, 60_000);
    const killedInFlight = pods.get('f-0').stats().inFlight;
    // Requests in progress at the kill (the client's view): only these may be lost. close() cuts
    // f-0's connections in this same tick.
    const inProgress = new Set(running.keys());
    killedAt = sent;
    await pods.get('f-0').close();
    await driver;
    assert.ok(killedInFlight > 0, 'f-0 was killed while it had requests in flight');
    const failed = results.filter((r) => !r.complete);
    for (const f of failed) {
      assert.ok(inProgress.has(f.id), `${f.id} started after the kill and failed`);
      const line = await handled(gateway, f.id);
      assert.equal(line['pod'], 'f-0', `${f.id} failed elsewhere: ${JSON.stringify(line)}`);
    }
    assert.equal(results.length, sent, 'every request finished');
    await waitForView(gateway, 'f-0', 'marked unhealthy', (e) => !e.healthy);
    const after = await servedBy(6, 'mymodel', 'fail');
    assert.ok(after.every((p) => p === 'f-1' || p === 'f-2'), after.join(','));
  });
});
