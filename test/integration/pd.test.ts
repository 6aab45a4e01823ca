import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { configDir, gatewayAndRoute, poolRule } from '../support/config.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { listen } from '../../src/proxy/port-listener.js';
import { freePort, freePortOnAll } from '../support/ports.js';
import { debugPools, handled, waitFor, type PodSpec, type SimPods, startSmartEnv, type SmartEnv } from '../support/smart.js';

const SEEDS = fileURLToPath(new URL('../../../test/fixtures/seeds/', import.meta.url));
const REQUESTS = fileURLToPath(new URL('../../../test/fixtures/requests/', import.meta.url));
const ROLE = 'rolebasedgroup.workloads.x-k8s.io/role';
const BACKEND = 'alibabacloud.com/inference_backend';

/** Pool + InferenceTrafficPolicy of one 1-prefill + 1-decode SGLang pool for a failure case. */
function failurePool(name: string, port: number, routing = ''): string {
  return `---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: ${name}, annotations: {infergate.dev/routing: "${routing}"}}
spec: {selector: {matchLabels: {pool: ${name}}}, targetPorts: [{number: ${port}}]}
---
apiVersion: inferenceextension.alibabacloud.com/v1alpha1
kind: InferenceTrafficPolicy
metadata: {name: ${name}-policy}
spec:
  poolRef: {name: ${name}}
  modelServerRuntime: sglang
  profile: {pd: {pdRoleLabelName: ${ROLE}, kvTransfer: {bootstrapPort: ${BOOTSTRAP}}}}
`;
}

const FAILURE_POOLS = ['kill-prefill', 'kill-decode', 'handshake', 'mid-stream', 'slow-answer', 'long-stream'] as const;

/**
 * Seed 002's SGLang PD pool (its InferencePool and InferenceTrafficPolicy verbatim, selecting
 * prefill and decode pods by `alibabacloud.com/inference_backend: sglang`, roles by the
 * RoleBasedGroup label, bootstrap port 34000, moved to a free one) over simulated SGLang servers: 2 prefill, 2 decode
 * and one pod without a role; plus three 1P+1D pools for the failure cases, chosen by `x-pool`.
 */
const SEED_PD = await readFile(`${SEEDS}002-prefix-sglang-pd.yaml`, 'utf8');
assert.match(SEED_PD, /bootstrapPort: 34000/);

/** The seed's bootstrap port (34000) is moved to one free on every prefill host: another run of this test may hold 34000. */
const BOOTSTRAP = await freePortOnAll(['127.0.7.2', '127.0.7.3', '127.0.7.10', '127.0.7.12', '127.0.7.14', '127.0.7.16', '127.0.7.18', '127.0.7.20']);

function config(port: number, pods: SimPods): string {
  const seed = SEED_PD;
  const rules = [
    poolRule('qwen-inference-pool', undefined, 'inference.networking.x-k8s.io'),
    ...FAILURE_POOLS.map((p) => poolRule(p, { name: 'x-pool', value: p })),
    // The mid-stream pool again, under a 1 s request timeout.
    `${poolRule('mid-stream', { name: 'x-pool', value: 'deadline' })}\n    timeouts: {request: 1s}`,
  ];
  return `${gatewayAndRoute(port, rules)}${seed.replace(/targetPortNumber: 8000/, `targetPortNumber: ${pods.port}`).replace(/bootstrapPort: 34000/, `bootstrapPort: ${BOOTSTRAP}`)}
${failurePool('kill-prefill', pods.port)}${failurePool('kill-decode', pods.port)}${failurePool('handshake', pods.port, 'pd: {bootstrapTimeout: 1s}')}${failurePool('mid-stream', pods.port)}${failurePool('slow-answer', pods.port, 'pd: {bootstrapTimeout: 1s}')}${failurePool('long-stream', pods.port)}${pods.podsYaml()}`;
}

const sglang = (name: string, host: string, labels: Record<string, string>, pdRole?: 'prefill' | 'decode'): PodSpec => ({
  name,
  host,
  runtime: 'sglang',
  profile: 'tiny',
  timeScale: 20,
  bootstrapPort: BOOTSTRAP,
  labels,
  ...(pdRole === undefined ? {} : { pdRole }),
});

describe('prefill/decode disaggregation, SGLang (seed 002)', { timeout: 180_000 }, () => {
  let pods: SimPods;
  let gateway: GatewayProcess;
  let base: string;
  let env: SmartEnv;
  const seedPod = (role: string): Record<string, string> => ({ [BACKEND]: 'sglang', [ROLE]: role });

  before(async () => {
    env = await startSmartEnv([
      sglang('p-0', '127.0.7.2', seedPod('prefill'), 'prefill'),
      sglang('p-1', '127.0.7.3', seedPod('prefill'), 'prefill'),
      sglang('d-0', '127.0.7.4', seedPod('decode'), 'decode'),
      sglang('d-1', '127.0.7.5', seedPod('decode'), 'decode'),
      // Selected by the pool, but without a role: never routable.
      sglang('x-0', '127.0.7.6', { [BACKEND]: 'sglang' }),
      sglang('kp-p', '127.0.7.10', { pool: 'kill-prefill', [ROLE]: 'prefill' }, 'prefill'),
      sglang('kp-d', '127.0.7.11', { pool: 'kill-prefill', [ROLE]: 'decode' }, 'decode'),
      sglang('kd-p', '127.0.7.12', { pool: 'kill-decode', [ROLE]: 'prefill' }, 'prefill'),
      sglang('kd-d', '127.0.7.13', { pool: 'kill-decode', [ROLE]: 'decode' }, 'decode'),
      sglang('hs-p', '127.0.7.14', { pool: 'handshake', [ROLE]: 'prefill' }, 'prefill'),
      sglang('hs-d', '127.0.7.15', { pool: 'handshake', [ROLE]: 'decode' }, 'decode'),
      sglang('ms-p', '127.0.7.16', { pool: 'mid-stream', [ROLE]: 'prefill' }, 'prefill'),
      sglang('ms-d', '127.0.7.17', { pool: 'mid-stream', [ROLE]: 'decode' }, 'decode'),
      // Real-time pods (4.5 ms a token): an unstreamed answer of 400 tokens takes longer than the pool's 1 s handshake deadline.
      { ...sglang('sa-p', '127.0.7.18', { pool: 'slow-answer', [ROLE]: 'prefill' }, 'prefill'), timeScale: 1 },
      { ...sglang('sa-d', '127.0.7.19', { pool: 'slow-answer', [ROLE]: 'decode' }, 'decode'), timeScale: 1 },
      // Real-time Qwen3-32B pods (~20 ms a token): a 400-token stream outlasts the unavailable idle timeout (5 s).
      { ...sglang('ls-p', '127.0.7.20', { pool: 'long-stream', [ROLE]: 'prefill' }, 'prefill'), profile: 'qwen3-32b-2xh100', timeScale: 1 },
      { ...sglang('ls-d', '127.0.7.21', { pool: 'long-stream', [ROLE]: 'decode' }, 'decode'), profile: 'qwen3-32b-2xh100', timeScale: 1 },
    ], config);
    ({ pods, gateway, base } = env);
  });

  after(async () => {
    await env?.close();
  });

  const send = async (path: string, body: Record<string, unknown>, id: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; pod: string | null }> => {
    const r = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id, ...headers }, body: JSON.stringify(body) });
    return { status: r.status, text: await r.text(), pod: r.headers.get('x-sim-pod') };
  };
  const received = (names: readonly string[]): number => names.reduce((n, name) => n + pods.get(name).stats().received, 0);

  test('chat and completions, streamed and not: each request reaches one prefill and one decode pod, whose handshake matches', async () => {
    const cases = [
      { path: '/v1/chat/completions', body: { model: 'mymodel', max_tokens: 8, messages: [{ role: 'user', content: 'Plan a trip to Kyoto.' }] } },
      { path: '/v1/completions', body: { model: 'mymodel', max_tokens: 8, prompt: 'Once upon a time in a land far away' } },
    ];
    let i = 0;
    for (const c of cases) {
      for (const stream of [false, true]) {
        const id = `pd-${i++}`;
        const [p0, d0] = [received(['p-0', 'p-1']), received(['d-0', 'd-1'])];
        const r = await send(c.path, { ...c.body, stream }, id);
        assert.equal(r.status, 200, r.text);
        assert.match(r.pod ?? '', /^d-[01]$/, 'the client gets the decode answer');
        if (stream) assert.ok(r.text.trimEnd().endsWith('data: [DONE]'));
        else assert.ok(((JSON.parse(r.text) as { usage: { completion_tokens: number } }).usage.completion_tokens) === 8, 'the whole answer, not the prefill\'s one token');
        assert.equal(received(['p-0', 'p-1']) - p0, 1, 'exactly one prefill pod');
        assert.equal(received(['d-0', 'd-1']) - d0, 1, 'exactly one decode pod');
        const line = await handled(gateway, id);
        const pd = line['pd'] as Record<string, unknown>;
        assert.equal(pd['disaggregated'], true);
        assert.equal(line['attempts'], 1, 'one pair is one attempt');
        assert.equal(pd['prefillRole'], 'prefill');
        assert.equal(pd['decodeRole'], 'decode');
        assert.equal(pd['decodePod'], r.pod);
        // Only a stream's first byte tells when the KV arrived.
        assert.equal(typeof pd['kvTransferWaitMs'], stream ? 'number' : 'undefined');
      }
    }
  });

  test('prefix affinity on the prefill side: round1 and round2 of a conversation go to the same prefill pod', async () => {
    const round1 = JSON.parse(await readFile(`${REQUESTS}round1.json`, 'utf8')) as Record<string, unknown>;
    const round2 = JSON.parse(await readFile(`${REQUESTS}round2.json`, 'utf8')) as Record<string, unknown>;
    for (let i = 0; i < 3; i++) {
      assert.equal((await send('/v1/chat/completions', { ...round1, model: 'mymodel' }, `r1-${i}`)).status, 200);
      assert.equal((await send('/v1/chat/completions', { ...round2, model: 'mymodel' }, `r2-${i}`)).status, 200);
      const [l1, l2] = await Promise.all([handled(gateway, `r1-${i}`), handled(gateway, `r2-${i}`)]);
      const p1 = (l1['pd'] as Record<string, unknown>)['prefillPod'];
      assert.equal((l2['pd'] as Record<string, unknown>)['prefillPod'], p1, `round2 followed round1's prefill pod (${String(p1)})`);
    }
  });

  test('a pair that fails before any byte reached the client is retried once with a fresh pair', async () => {
    pods.get('p-0').setFaults({ generation: 'status:500' });
    try {
      let retried = 0;
      for (let i = 0; i < 30 && retried < 2; i++) {
        const before = pods.get('p-0').stats().received;
        const r = await send('/v1/chat/completions', { model: 'mymodel', max_tokens: 4, messages: [{ role: 'user', content: `question ${i} ${'x'.repeat(i)}` }] }, `retry-${i}`);
        assert.equal(r.status, 200, r.text);
        if (pods.get('p-0').stats().received === before) continue;
        retried++;
        const pd = (await handled(gateway, `retry-${i}`))['pd'] as Record<string, unknown>;
        assert.equal(pd['prefillPod'], 'p-1', 'the fresh pair used the other prefill pod');
        const failed = pd['failedPairs'] as Array<Record<string, unknown>>;
        assert.equal(failed.length, 1, 'the failed pair is in the log line');
        assert.equal(failed[0]?.['prefillPod'], 'p-0');
        assert.equal(failed[0]?.['blame'], 'prefill');
        assert.match(String(failed[0]?.['error']), /prefill leg on p-0/);
      }
      assert.ok(retried > 0, 'some requests were first paired with the failing prefill pod');
    } finally {
      pods.get('p-0').setFaults({ generation: 'ok' });
    }
  });

  test('the pod without a role is never picked', () => {
    assert.equal(pods.get('x-0').stats().received, 0);
    assert.ok(gateway.logs.some((l) => l['pod'] === 'default/x-0' && /no prefill\/decode role/.test(String(l.msg))));
  });

  const failMidRequest = async (pool: string, kill: string, survivor: string): Promise<void> => {
    // The leg to kill hangs once it has the request, so the request is surely mid-flight.
    pods.get(kill).setFaults({ generation: 'hang' });
    const pending = send('/v1/chat/completions', { model: 'mymodel', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'Tell me a long story.' }] }, `kill-${pool}`, { 'x-pool': pool });
    await waitFor(`${pool}: both legs received`, () => pods.get(kill).stats().received > 0 && pods.get(survivor).stats().received > 0, 20_000);
    await pods.get(kill).close();
    const r = await pending;
    assert.equal(r.status, 502, r.text);
    const error = (JSON.parse(r.text) as { error: { message: string; code: string } }).error;
    // The killed leg fails; when the prefill dies, the decode server may say so first (its KV
    // handshake with the dead prefill fails): either way the message names the leg and why.
    const named = kill.endsWith('-p') ? new RegExp(`^(prefill leg on ${kill}|decode leg on ${survivor}: answered 5\\d\\d: .*(bootstrap|prefill|KV))`) : new RegExp(`^decode leg on ${kill}`);
    assert.match(error.message, named, 'the body names the leg that failed');
    await waitFor(`${pool}: the other leg was cancelled`, () => pods.get(survivor).stats().inFlight === 0, 10_000);
    const line = await handled(gateway, `kill-${pool}`);
    assert.equal(line['status'], 502);
  };

  test('the prefill pod dies mid-request: 502 naming the prefill leg, and the decode leg is cancelled', async () => {
    await failMidRequest('kill-prefill', 'kp-p', 'kp-d');
  });

  test('the decode pod dies mid-request: 502 naming the decode leg, and the prefill leg is cancelled', async () => {
    await failMidRequest('kill-decode', 'kd-d', 'kd-p');
  });

  test('a KV handshake that does not complete within the configured timeout fails with 502 after it, not after SGLang\'s 300 s', async () => {
    pods.get('hs-d').setFaults({ generation: 'hang' });
    const r = await send('/v1/chat/completions', { model: 'mymodel', max_tokens: 5, messages: [{ role: 'user', content: 'Hi' }] }, 'handshake-1', { 'x-pool': 'handshake' });
    assert.equal(r.status, 502, r.text);
    const error = (JSON.parse(r.text) as { error: { message: string; code: string } }).error;
    assert.equal(error.code, 'kv_handshake_timeout');
    assert.match(error.message, /pd\.bootstrapTimeout \(1000 ms\)/);
    await waitFor('both legs released on the sims', () => pods.get('hs-p').stats().inFlight === 0 && pods.get('hs-d').stats().inFlight === 0, 10_000);
    pods.get('hs-d').setFaults({ generation: 'ok' });
  });

  test('the handshake deadline bounds the KV handshake, not an unstreamed answer that takes longer', async () => {
    const r = await send('/v1/chat/completions', { model: 'mymodel', max_tokens: 400, ignore_eos: true, messages: [{ role: 'user', content: 'Write a long essay.' }] }, 'slow-answer-1', { 'x-pool': 'slow-answer' });
    assert.equal(r.status, 200, r.text);
    assert.equal((JSON.parse(r.text) as { usage: { completion_tokens: number } }).usage.completion_tokens, 400);
    assert.equal(pods.get('sa-d').stats().received, 1, 'no retry on a fresh pair');
  });

  test('a prefill server that refuses the request (4xx): the client gets its answer at once, no retry, and no pod is blamed', async () => {
    pods.get('ms-p').setFaults({ generation: 'status:404' });
    const refused = 6;
    const decodeBefore = pods.get('ms-d').stats().received;
    try {
      for (let i = 0; i < refused; i++) {
        const p0 = pods.get('ms-p').stats().received;
        const r = await send('/v1/chat/completions', { model: 'mymodel', max_tokens: 5, messages: [{ role: 'user', content: `Hello ${i}.` }] }, `prefill-404-${i}`, { 'x-pool': 'mid-stream' });
        assert.equal(r.status, 404, r.text);
        assert.equal(typeof (JSON.parse(r.text) as { error: { message: string } }).error.message, 'string');
        assert.equal(pods.get('ms-p').stats().received - p0, 1, 'no retry');
      }
      // Each decode leg went out beside its prefill and may be cancelled before, or reach the
      // server after, the client's answer (even during the next request): counted once they settled.
      await waitFor('the decode leg of every refused request settled', () => pods.get('ms-d').stats().inFlight === 0, 10_000);
      assert.ok(pods.get('ms-d').stats().received - decodeBefore <= refused, 'no retry on the decode side either');
    } finally {
      pods.get('ms-p').setFaults({ generation: 'ok' });
    }
    // More refusals than the ejection threshold (5): both pods still serve.
    const r = await send('/v1/chat/completions', { model: 'mymodel', max_tokens: 5, messages: [{ role: 'user', content: 'Hello again.' }] }, 'after-404', { 'x-pool': 'mid-stream' });
    assert.equal(r.status, 200, r.text);
    await waitFor('the decode leg of every refused request cancelled', () => pods.get('ms-d').stats().inFlight === 0, 10_000);
  });

  test('a decode server that refuses the request (4xx): the client gets its answer and the waiting prefill is cancelled', async () => {
    pods.get('ms-d').setFaults({ generation: 'status:429' });
    try {
      const r = await send('/v1/chat/completions', { model: 'mymodel', max_tokens: 5, messages: [{ role: 'user', content: 'Hello there.' }] }, 'decode-429', { 'x-pool': 'mid-stream' });
      assert.equal(r.status, 429, r.text);
      // The prefill waits for a decode partner that will never come (SGLang: up to 300 s) unless cancelled.
      await waitFor('the prefill leg cancelled', () => pods.get('ms-p').stats().inFlight === 0, 10_000);
      assert.equal((await handled(gateway, 'decode-429'))['status'], 429);
    } finally {
      pods.get('ms-d').setFaults({ generation: 'ok' });
    }
  });

  test('a request timeout bounds both legs: 504 naming the setting, and both legs cancelled', async () => {
    pods.get('ms-d').setFaults({ generation: 'hang' });
    try {
      const r = await send('/v1/chat/completions', { model: 'mymodel', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'Hello again.' }] }, 'deadline-1', { 'x-pool': 'deadline' });
      assert.equal(r.status, 504, r.text);
      assert.match((JSON.parse(r.text) as { error: { message: string } }).error.message, /request timeout of 1000 ms \(HTTPRoute/);
      await waitFor('both legs cancelled', () => pods.get('ms-p').stats().inFlight === 0 && pods.get('ms-d').stats().inFlight === 0, 10_000);
    } finally {
      pods.get('ms-d').setFaults({ generation: 'ok' });
    }
  });

  test('a prefill that has answered is done: its pod going away later does not cut the stream it fed', async () => {
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'long-stream-1', 'x-pool': 'long-stream' },
      body: JSON.stringify({ model: 'mymodel', max_tokens: 400, ignore_eos: true, stream: true, messages: [{ role: 'user', content: 'Tell me everything.' }] }),
    });
    assert.equal(r.status, 200);
    const reader = r.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('"content"')) {
      const { value, done } = await reader.read();
      assert.ok(!done);
      text += decoder.decode(value, { stream: true });
    }
    await waitFor('the prefill answered', () => pods.get('ls-p').stats().inFlight === 0, 10_000);
    // Its scrapes now fail: the gateway marks it unavailable while the decode keeps streaming.
    await pods.get('ls-p').close();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    assert.ok(!text.includes('"error"'), text.slice(-400));
    assert.ok(text.trimEnd().endsWith('data: [DONE]'));
    assert.equal((await handled(gateway, 'long-stream-1'))['status'], 200);
  });

  test('a client that leaves cancels both legs', async () => {
    pods.get('ms-d').setFaults({ generation: 'hang' });
    try {
      const [p0, d0] = [pods.get('ms-p').stats().received, pods.get('ms-d').stats().received];
      const client = new AbortController();
      const pending = fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        signal: client.signal,
        headers: { 'content-type': 'application/json', 'x-request-id': 'client-gone-1', 'x-pool': 'mid-stream' },
        body: JSON.stringify({ model: 'mymodel', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'Tell me a story.' }] }),
      }).catch(() => undefined);
      await waitFor('both legs received', () => pods.get('ms-p').stats().received > p0 && pods.get('ms-d').stats().received > d0, 20_000);
      client.abort();
      await pending;
      await waitFor('both legs cancelled on the sims', () => pods.get('ms-p').stats().inFlight === 0 && pods.get('ms-d').stats().inFlight === 0, 10_000);
      assert.equal((await handled(gateway, 'client-gone-1'))['status'], 499);
    } finally {
      pods.get('ms-d').setFaults({ generation: 'ok' });
    }
  });

  test('the decode pod dies after the stream began: one SSE error event naming the decode leg ends the stream', async () => {
    pods.get('ms-d').setFaults({ generation: 'stall-mid-stream' });
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'mid-stream-1', 'x-pool': 'mid-stream' },
      body: JSON.stringify({ model: 'mymodel', max_tokens: 40, stream: true, messages: [{ role: 'user', content: 'Tell me a long story.' }] }),
    });
    assert.equal(r.status, 200, 'the stream had begun');
    const reader = r.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!text.includes('"content"')) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'tokens arrived before the stall');
      text += decoder.decode(value, { stream: true });
    }
    await pods.get('ms-d').close();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const events = text.split('\n\n').map((e) => e.trim()).filter((e) => e !== '');
    // vLLM's shape for an error after the stream began: one data event with an OpenAI error, then [DONE].
    const errors = events.filter((e) => e.startsWith('data: {"error"'));
    assert.equal(errors.length, 1, text);
    assert.match(errors[0]!, /decode leg on ms-d/);
    assert.equal(events.at(-1), 'data: [DONE]');
    await waitFor('the prefill side released', () => pods.get('ms-p').stats().inFlight === 0, 10_000);
  });

  test('nothing leaks: every endpoint\'s in-flight count is back to zero', async () => {
    await waitFor('in-flight counts at zero', async () => (await debugPools(gateway)).every((p) => p.endpoints.every((e) => e.inFlight === 0)), 10_000);
    for (const name of ['p-0', 'p-1', 'd-0', 'd-1']) assert.equal(pods.get(name).stats().inFlight, 0, name);
  });
});

describe('prefill/decode disaggregation: the bodies both legs get', { timeout: 60_000 }, () => {
  let servers: Server[] = [];
  let gateway: GatewayProcess;
  let cfg: Awaited<ReturnType<typeof configDir>>;
  let base: string;
  const bodies = new Map<string, Record<string, unknown>>();

  before(async () => {
    // Two recording servers standing in for a prefill and a decode SGLang server.
    const port = await freePort();
    for (const [host, role] of [['127.0.7.30', 'prefill'], ['127.0.7.31', 'decode']] as const) {
      const server = createServer((req: IncomingMessage, res) => {
        const parts: Buffer[] = [];
        req.on('data', (c: Buffer) => parts.push(c));
        req.on('end', () => {
          bodies.set(role, JSON.parse(Buffer.concat(parts).toString()) as Record<string, unknown>);
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ id: 'x', object: 'chat.completion', model: 'mymodel', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } }));
        });
      });
      await listen(server, port, host);
      servers.push(server);
    }
    const gw = await freePort();
    base = `http://127.0.0.1:${gw}`;
    cfg = await configDir(`${gatewayAndRoute(gw, [poolRule('rec')])}${failurePool('rec', port)}---
apiVersion: v1
kind: Pod
metadata: {name: rec-p, labels: {pool: rec, ${ROLE}: prefill}}
status: {podIP: 127.0.7.30}
---
apiVersion: v1
kind: Pod
metadata: {name: rec-d, labels: {pool: rec, ${ROLE}: decode}, annotations: {sglang.ai/bootstrap-port: "9999"}}
status: {podIP: 127.0.7.31}
`);
    gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-interval', '0']);
  });

  after(async () => {
    await gateway?.stop();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    servers = [];
    await cfg?.remove();
  });

  test('n = 2: both legs get the same body with bootstrap arrays of length 2, a fresh room each', async () => {
    const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'mymodel', n: 2, messages: [{ role: 'user', content: 'Hi' }] }) });
    assert.equal(r.status, 200);
    const [p, d] = [bodies.get('prefill'), bodies.get('decode')];
    assert.deepEqual(p, d, 'one body, serialised once, for both legs');
    assert.deepEqual(p?.['bootstrap_host'], ['127.0.7.30', '127.0.7.30']);
    assert.deepEqual(p?.['bootstrap_port'], [BOOTSTRAP, BOOTSTRAP], 'kvTransfer.bootstrapPort wins over the pod annotation');
    const rooms = p?.['bootstrap_room'] as number[];
    assert.equal(rooms.length, 2);
    assert.notEqual(rooms[0], rooms[1]);
    assert.ok(rooms.every((room) => Number.isSafeInteger(room) && room >= 0));
  });
});
