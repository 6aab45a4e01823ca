import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { configDir } from '../support/config.js';
import { startSeed003Fleet } from '../support/fleet.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/smart.js';
import { binomialZ, runConcurrently } from '../support/stats.js';

const SEEDS = fileURLToPath(new URL('../../../test/fixtures/seeds/', import.meta.url));

/**
 * Seed 003 scenario 2 configured exactly as the seed writes it: scenario 1's 90/10 route across
 * mymodel-pool-v1 (Qwen, adapters travel-helper-v1/v2) and mymodel-pool-v2 (DeepSeek, no
 * adapters), then InferenceModel `travelhelper` in pool v1 only. Only the ports move (the
 * listener's 8080 and the pods' 8000 become free ports) and the Pods are added, as `kubectl get
 * pods` would show them.
 */
async function seedConfig(listenerPort: number, podPort: number): Promise<string> {
  const files = ['003-gateway.yaml', '003-pool-v1.yaml', '003-pool-v2.yaml', '003-route-90-10.yaml', '003-loramodel.yaml'];
  const blocks = await Promise.all(files.map((f) => readFile(`${SEEDS}${f}`, 'utf8')));
  // Scenario 1's route replaces the setup's (kubectl apply of the same HTTPRoute name).
  const docs = blocks.flatMap((b) => b.split(/^---$/m));
  const setupRoute = docs.findIndex((d) => /^kind: HTTPRoute$/m.test(d));
  const seed = docs
    .filter((_, i) => i !== setupRoute)
    .join('\n---\n')
    .replace(/port: 8080/g, `port: ${listenerPort}`)
    .replace(/targetPortNumber: 8000/g, `targetPortNumber: ${podPort}`);
  const pod = (name: string, release: string, ip: string): string =>
    `---\napiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, labels: {app: custom-serving, release: ${release}}}\nstatus: {phase: Running, podIP: ${ip}}\n`;
  return `${seed}\n${pod('qwen-0', 'qwen', '127.0.17.2')}${pod('qwen-1', 'qwen', '127.0.17.3')}${pod('deepseek-r1-0', 'deepseek-r1', '127.0.17.4')}`;
}

describe('seed 003 scenario 2 as written: a model goes only to the pools that serve it', { timeout: 120_000 }, () => {
  let fleet: Awaited<ReturnType<typeof startSeed003Fleet>>;
  let gateway: GatewayProcess;
  let cfg: Awaited<ReturnType<typeof configDir>>;
  let base: string;

  before(async () => {
    fleet = await startSeed003Fleet(['127.0.17.2', '127.0.17.3', '127.0.17.4'], 'deepseek-r1-0');
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    cfg = await configDir(await seedConfig(port, fleet.port));
    gateway = await startGatewayProcess(['-f', cfg.dir, '--log-level', 'info']);
  });

  after(async () => {
    await gateway?.stop();
    await fleet?.close();
    await cfg?.remove();
  });

  const chat = (model: string, id?: string): Promise<Response> =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(id === undefined ? {} : { 'x-request-id': id }) },
      body: JSON.stringify({ model, temperature: 0, max_tokens: 4, messages: [{ role: 'user', content: 'I just arrived in Beijing. Can you recommend a tourist spot?' }] }),
    });

  test('the load log points the layout out: travelhelper is served by mymodel-pool-v1 only', async () => {
    const line = await gateway.waitForLog((l) => l.msg === 'config warning' && String(l['problem']).includes('travelhelper'));
    assert.equal(line['problem'], 'HTTPRoute/inference-route: spec.rules[0]: model travelhelper is served by mymodel-pool-v1 only; requests for it go there (weights apply among the pools that serve it)');
  });

  test('every travelhelper request succeeds, from the first one: 50 of 50 answered by pool v1', async () => {
    const results = await runConcurrently(50, 8, async () => {
      const r = await chat('travelhelper');
      await r.arrayBuffer();
      return { status: r.status, pod: r.headers.get('x-sim-pod'), received: r.headers.get('x-sim-model') };
    });
    assert.deepEqual(results.filter((r) => r.status !== 200), [], 'every request 200');
    assert.ok(results.every((r) => r.pod === 'qwen-0' || r.pod === 'qwen-1'), JSON.stringify([...new Set(results.map((r) => r.pod))]));
    assert.ok(results.every((r) => r.received === 'travel-helper-v1' || r.received === 'travel-helper-v2'));
    assert.equal(fleet.servers.get('deepseek-r1-0')?.stats().served ?? 0, 0, 'the DeepSeek pod never saw a travelhelper request');
  });

  test('mymodel still splits 90/10 across both pools by the route weights', async () => {
    const n = 400;
    const pods = await runConcurrently(n, 16, async () => {
      const r = await chat('mymodel');
      assert.equal(r.status, 200);
      await r.arrayBuffer();
      return r.headers.get('x-sim-pod');
    });
    const v1 = pods.filter((p) => p === 'qwen-0' || p === 'qwen-1').length;
    const v2 = pods.filter((p) => p === 'deepseek-r1-0').length;
    assert.equal(v1 + v2, n);
    assert.ok(Math.abs(binomialZ(v1, n, 0.9)) < 4.5, `pool v1 share ${v1}/${n} is outside 4.5 sigma of 90%`);
  });

  test("once the pods have listed their models: a model nobody serves is the gateway's 404 model_not_found, an adapter without InferenceModel goes to the pods that list it", async () => {
    // Until every pod's /v1/models is in, the gateway does not know and forwards (the server's
    // own 404, with the pod's header); then it answers itself.
    let last: { status: number; pod: string | null; body: string } = { status: 0, pod: null, body: '' };
    await waitFor('the gateway answering for a model nobody serves', async () => {
      const r = await chat('no-such-model');
      last = { status: r.status, pod: r.headers.get('x-sim-pod'), body: await r.text() };
      return last.pod === null;
    }, 40_000);
    assert.equal(last.status, 404);
    const err = (JSON.parse(last.body) as { error: { code: string; type: string; message: string } }).error;
    assert.equal(err.code, 'model_not_found');
    assert.equal(err.type, 'not_found_error');
    assert.match(err.message, /`no-such-model` is not served here/);
    assert.match(err.message, /mymodel-pool-v1, mymodel-pool-v2/);
    const blamed = (): number => gateway.logs.filter((l) => l.msg?.startsWith('endpoint backed off') === true || l.msg?.startsWith('endpoint ejected') === true).length;
    const blamedBefore = blamed();
    const served = (): number => [...fleet.servers.values()].reduce((sum, s) => sum + s.stats().served, 0);
    const servedBefore = served();
    for (let i = 0; i < 20; i++) {
      const r = await chat('no-such-model', `nobody-serves-it-${i}`);
      assert.equal(r.status, 404);
      assert.equal(r.headers.get('x-sim-pod'), null);
      await r.arrayBuffer();
    }
    const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['requestId'] === 'nobody-serves-it-19');
    assert.equal(line['code'], 'model_not_found');
    assert.equal(line['pod'], undefined, 'no model server was involved');
    assert.equal(served(), servedBefore, 'no model server saw them');
    assert.equal(blamed(), blamedBefore, 'nobody blamed');

    // The qwen pods list travel-helper-v2 (their --lora-modules); the DeepSeek pod does not.
    const before = fleet.servers.get('deepseek-r1-0')?.stats().served ?? 0;
    const adapter = await runConcurrently(50, 8, async () => {
      const a = await chat('travel-helper-v2');
      await a.arrayBuffer();
      return { status: a.status, pod: a.headers.get('x-sim-pod'), received: a.headers.get('x-sim-model') };
    });
    assert.ok(adapter.every((a) => a.status === 200 && a.received === 'travel-helper-v2' && a.pod?.startsWith('qwen-') === true), JSON.stringify(adapter.find((a) => a.status !== 200)));
    assert.equal(fleet.servers.get('deepseek-r1-0')?.stats().served ?? 0, before);
  });
});
