import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { modelYaml } from '../support/config.js';
import type { Plane, PlaneSetup } from '../support/planes.js';
import { chatBody, loadDirectly, post, servedBy, waitFor, waitForView, type Loader } from '../support/smart.js';
import { binomialZ, runConcurrently } from '../support/stats.js';

/**
 * The routing cases that prove each policy, written once and run against both data planes
 * (table.test.ts): the standalone proxy and Envoy + the endpoint picker. A case names its setup
 * (pods, pools, routes, InferenceModels) and what a user sees; where a request landed is read from
 * the simulator's `x-sim-pod` answer header or the plane's `landing` (its decision), and the core's
 * `Request Handled` lines and `/debug/endpoints` view come from the plane. Load is put on pods by
 * sending them requests directly, past the gateway, so the gateway learns of it only from the pods'
 * own /metrics (as in test/integration/smart-*.test.ts, whose setups these are).
 */
export interface RoutingCase {
  readonly name: string;
  readonly setup: PlaneSetup;
  readonly run: (plane: Plane) => Promise<void>;
}

const REQUESTS = fileURLToPath(new URL('../../../test/fixtures/requests/', import.meta.url));

/**
 * Pods of the 8B profile with few running slots, so a handful of long requests builds a queue. In
 * real time: a pod decoding endless requests 20× faster than real time costs the test process a
 * third of a core, which on a busy machine starves the in-process EPP plane (the core, gRPC and
 * Envoy's part share the test's thread), while the test's own short requests take milliseconds
 * either way.
 */
const BUSY = (maxNumSeqs: number) => ({ profile: 'llama-3.1-8b-h100', timeScale: 1, overrides: { maxNumSeqs } }) as const;
/** Small fast pods: the `tiny` profile 20× faster than real time. */
const TINY = { profile: 'tiny', timeScale: 20 } as const;
/** A request that never ends by itself (the test stops it): load that lasts as long as the test needs, however slow the machine. */
const ENDLESS = { model: 'mymodel', prompt: 'load '.repeat(200), max_tokens: 100_000, ignore_eos: true };

async function stopAll(loads: readonly Loader[]): Promise<void> {
  for (const l of loads) l.stop();
  await Promise.all(loads.map((l) => l.done));
}

const errorCode = (text: string): unknown => (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;

const loraPods = ['v-0', 'v-1', 'v-2'].map((name, i) => ({ name, host: `127.0.9.${i + 2}`, labels: { pool: 'lora' }, loras: ['ad-a', 'ad-b'], maxLoras: 1, ...BUSY(4) }));

export const CASES: readonly RoutingCase[] = [
  {
    name: 'DEFAULT: new requests avoid the pod whose own metrics show a queue',
    setup: {
      pods: ['l-0', 'l-1', 'l-2'].map((name, i) => ({ name, host: `127.0.9.${i + 10}`, labels: { pool: 'load' }, ...BUSY(4) })),
      pools: [{ name: 'load' }],
      routes: [{ backends: [{ pool: 'load' }] }],
    },
    run: async (plane) => {
      const load = loadDirectly(plane.pods.get('l-0'), 10, ENDLESS);
      try {
        await waitForView(plane, 'l-0', 'queue from its metrics', (e) => (e.metrics?.waitingRequests ?? 0) >= 5);
        const served = await servedBy(plane.url, 12, 'mymodel');
        assert.deepEqual(served.filter((p) => p === 'l-0'), [], `no request to the loaded l-0: ${served.join(',')}`);
        assert.ok(served.every((p) => p === 'l-1' || p === 'l-2'), served.join(','));
      } finally {
        await stopAll([load]);
      }
    },
  },
  {
    name: 'DEFAULT: new requests avoid the pod whose own metrics show a full KV cache (no queue anywhere)',
    setup: {
      // Real-time pods with a small KV cache (1024 blocks of 16 tokens) and room for every request
      // to run: six 1000-token prompts fill over a third of it without anything waiting, and take
      // seconds of decoding to fill the rest.
      pods: ['k-0', 'k-1', 'k-2'].map((name, i) => ({ name, host: `127.0.9.${i + 14}`, labels: { pool: 'kv' }, profile: 'llama-3.1-8b-h100' as const, timeScale: 1, overrides: { maxNumSeqs: 64, numGpuBlocks: 1024, maxModelLen: 16_384 } })),
      pools: [{ name: 'kv' }],
      routes: [{ backends: [{ pool: 'kv' }] }],
    },
    run: async (plane) => {
      const load = loadDirectly(plane.pods.get('k-0'), 6, { ...ENDLESS, prompt: 'load '.repeat(1000), max_tokens: 15_000 });
      try {
        await waitForView(plane, 'k-0', 'a third of its KV cache in use, nothing waiting', (e) => (e.metrics?.kvCacheUsage ?? 0) >= 0.3 && e.metrics?.waitingRequests === 0);
        const served = await servedBy(plane.url, 12, 'mymodel');
        assert.deepEqual(served.filter((p) => p === 'k-0'), [], `no request to k-0, whose KV cache is filling: ${served.join(',')}`);
      } finally {
        await stopAll([load]);
      }
    },
  },
  {
    name: 'LoRA affinity: an adapter goes to the pod running it; another adapter avoids that full slot',
    setup: { pods: loraPods, pools: [{ name: 'lora' }], routes: [{ backends: [{ pool: 'lora' }] }] },
    run: async (plane) => {
      const load = loadDirectly(plane.pods.get('v-1'), 2, { ...ENDLESS, model: 'ad-a' });
      try {
        await waitForView(plane, 'v-1', 'ad-a running', (e) => e.metrics?.lora?.running.includes('ad-a') === true);
        assert.deepEqual(new Set(await servedBy(plane.url, 8, 'ad-a')), new Set(['v-1']));
        // v-1's only slot holds ad-a: ad-b would wait there, so it goes to a pod with a free slot.
        const b = await servedBy(plane.url, 8, 'ad-b');
        assert.ok(!b.includes('v-1'), `ad-b avoided v-1: ${b.join(',')}`);
      } finally {
        await stopAll([load]);
      }
    },
  },
  {
    name: 'PREFIX_CACHE: a conversation follows its prefix to one pod and hits its cache; prefix groups spread',
    setup: {
      pods: [0, 1, 2, 3].map((i) => ({ name: `p-${i}`, host: `127.0.9.${i + 20}`, labels: { pool: 'prefix' }, model: ['mymodel', '/models/Qwen3-32B'], profile: 'llama-3.1-8b-h100', timeScale: 20 })),
      pools: [{ name: 'prefix', annotations: { 'inference.networking.x-k8s.io/routing-strategy': 'PREFIX_CACHE' } }],
      routes: [{ backends: [{ pool: 'prefix' }] }],
    },
    run: async (plane) => {
      // Seed 002: round2 extends round1's conversation.
      const [round1, round2] = await Promise.all([readFile(`${REQUESTS}round1.json`, 'utf8'), readFile(`${REQUESTS}round2.json`, 'utf8')]);
      const id = `${plane.kind}-${Date.now()}`;
      const r1 = await post(plane.url, round1, { 'x-request-id': `round1-${id}` });
      assert.equal(r1.status, 200, r1.text);
      const r2 = await post(plane.url, round2, { 'x-request-id': `round2-${id}` });
      assert.equal(r2.status, 200, r2.text);
      assert.equal(r2.pod, r1.pod, 'round2 followed round1');
      const l2 = await plane.handled(`round2-${id}`);
      assert.equal(l2['pod'], r2.pod);
      assert.ok(Number(l2['cachedTokens']) > 0, `round2 was served partly from the pod's cache: ${JSON.stringify(l2)}`);
      // Groups sharing a long system prompt: each stays on one pod; the load scorers spread the groups.
      // Spreading needs every pod routable: on a busy machine a pod's scrapes may lag for a while.
      for (let i = 0; i < 4; i++) await waitForView(plane, `p-${i}`, 'healthy with fresh metrics', (e) => e.healthy && e.stale !== true && e.metrics !== null);
      const groups = 4;
      const users = 4;
      // The groups' first requests answer longer, so that they are in flight together even on a
      // busy machine: the load scorers see each other's dispatches only while they overlap.
      const body = (g: number, u: number): string =>
        JSON.stringify({ model: 'mymodel', max_tokens: u === 0 ? 64 : 8, messages: [{ role: 'system', content: `You are assistant number ${g}. ${'Follow these long instructions carefully. '.repeat(40)}` }, { role: 'user', content: `User ${u} asks question ${u * 7 + g}?` }] });
      const first = await runConcurrently(groups, groups, async (g) => (await post(plane.url, body(g, 0))).pod ?? '');
      const rest = await runConcurrently(groups * (users - 1), 4, async (i) => ({ g: i % groups, pod: (await post(plane.url, body(i % groups, 1 + Math.floor(i / groups)))).pod ?? '' }));
      for (let g = 0; g < groups; g++) {
        const served = [first[g], ...rest.filter((r) => r.g === g).map((r) => r.pod)];
        const top = Math.max(...served.map((p) => served.filter((x) => x === p).length));
        assert.ok(top >= users - 1, `group ${g} stayed on one pod: ${served.join(',')}`);
      }
      assert.ok(new Set(first).size >= 2, `groups spread: ${first.join(',')}`);
    },
  },
  {
    name: 'criticality: under saturation Sheddable gets 429 + Retry-After at once; Critical and unlabelled wait and are served',
    setup: {
      pods: ['b-0', 'b-1'].map((name, i) => ({ name, host: `127.0.9.${i + 30}`, labels: { pool: 'busy' }, ...BUSY(2) })),
      pools: [{ name: 'busy' }],
      routes: [{ backends: [{ pool: 'busy' }] }],
      extra: modelYaml('vip', 'vip', 'busy', [{ name: 'mymodel', weight: 1 }], 'Critical') + modelYaml('bulk', 'bulk', 'busy', [{ name: 'mymodel', weight: 1 }], 'Sheddable'),
    },
    run: async (plane) => {
      const loads = ['b-0', 'b-1'].map((n) => loadDirectly(plane.pods.get(n), 9, ENDLESS));
      try {
        await waitFor('pool saturated', async () => (await plane.debugPools()).find((p) => p.pool === 'default/busy')?.saturated === true);
        const shed = await post(plane.url, chatBody('bulk', 'can wait'), { 'x-request-id': `shed-${plane.kind}` });
        assert.equal(shed.status, 429, shed.text);
        assert.equal(errorCode(shed.text), 'request_shed');
        assert.match(shed.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
        assert.equal(shed.pod, null, 'no model server saw it');
        const answers = Promise.all([post(plane.url, chatBody('vip', 'important'), { 'x-request-id': `vip-${plane.kind}` }), post(plane.url, chatBody('mymodel', 'ordinary'), { 'x-request-id': `plain-${plane.kind}` })]);
        await waitFor('both queued', async () => {
          const q = (await plane.debugPools()).find((p) => p.pool === 'default/busy')?.queued;
          return q?.['Critical'] === 1 && q['Standard'] === 1;
        });
        for (const l of loads) l.stop();
        const [vip, plain] = await answers;
        assert.equal(vip.status, 200, vip.text);
        assert.equal(plain.status, 200, plain.text);
        const [lv, lp, ls] = await Promise.all([plane.handled(`vip-${plane.kind}`), plane.handled(`plain-${plane.kind}`), plane.handled(`shed-${plane.kind}`)]);
        assert.equal(lv['criticality'], 'Critical');
        assert.ok(Number(lv['queueWaitMs']) > 0, `the Critical request waited for capacity: ${JSON.stringify(lv)}`);
        assert.equal(lp['criticality'], 'Standard');
        assert.ok(Number(lp['queueWaitMs']) > 0, 'the unlabelled request was queued, not shed');
        assert.equal(ls['code'], 'request_shed');
        assert.equal(ls['status'], 429);
      } finally {
        await stopAll(loads);
      }
    },
  },
  {
    name: 'queueing: a full queue refuses with 429 queue_full; a wait past the TTL ends with 503 queue_timeout; both with Retry-After',
    setup: {
      pods: [{ name: 'q-0', host: '127.0.9.35', labels: { pool: 'small' }, ...BUSY(2) }],
      // A one-request queue with a short TTL, to see both refusals. The TTL must outlast the test's
      // look at the queue (a poll of the endpoint view), which takes seconds on a busy machine.
      pools: [{ name: 'small', annotations: { 'infergate.dev/routing': 'queue: {maxRequests: 1, ttl: 5s}' } }],
      routes: [{ backends: [{ pool: 'small' }] }],
      extra: modelYaml('small-std', 'std', 'small', [{ name: 'mymodel', weight: 1 }], 'Standard'),
    },
    run: async (plane) => {
      const loads = [loadDirectly(plane.pods.get('q-0'), 8, ENDLESS)];
      try {
        await waitFor('pool saturated', async () => (await plane.debugPools()).find((p) => p.pool === 'default/small')?.saturated === true);
        const first = post(plane.url, chatBody('std', 'first in line'));
        await waitFor('one request queued', async () => (await plane.debugPools()).find((p) => p.pool === 'default/small')?.queued['Standard'] === 1);
        const second = await post(plane.url, chatBody('std', 'no room'));
        assert.equal(second.status, 429, second.text);
        assert.equal(errorCode(second.text), 'queue_full');
        assert.match(second.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
        const timedOut = await first;
        assert.equal(timedOut.status, 503, timedOut.text);
        assert.equal(errorCode(timedOut.text), 'queue_timeout');
        assert.match(timedOut.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
      } finally {
        await stopAll(loads);
      }
    },
  },
  {
    name: 'canary weights: HTTPRoute 90/10 across two pools, InferenceModel 90/10 across two LoRA adapters',
    setup: {
      pods: [
        ...['qwen-0', 'qwen-1'].map((name, i) => ({ name, host: `127.0.9.${i + 40}`, labels: { pool: 'pool-v1' }, model: 'mymodel', loras: ['travel-helper-v1', 'travel-helper-v2'], maxLoras: 2, ...TINY })),
        { name: 'deepseek-0', host: '127.0.9.42', labels: { pool: 'pool-v2' }, model: 'mymodel', ...TINY },
        // Selected by a pool no route names: it must never be sent a request.
        { name: 'other-0', host: '127.0.9.43', labels: { pool: 'pool-other' }, model: 'mymodel', ...TINY },
      ],
      pools: [{ name: 'pool-v1' }, { name: 'pool-v2' }, { name: 'pool-other' }],
      routes: [{ backends: [{ pool: 'pool-v1', weight: 90 }, { pool: 'pool-v2', weight: 10 }] }],
      extra:
        modelYaml('loramodel', 'travelhelper', 'pool-v1', [{ name: 'travel-helper-v1', weight: 90 }, { name: 'travel-helper-v2', weight: 10 }]) +
        modelYaml('loramodel-v2', 'travelhelper', 'pool-v2', [{ name: 'mymodel', weight: 1 }], 'Standard'),
    },
    run: async (plane) => {
      const n = 500;
      const results = await runConcurrently(n, 8, async () => {
        const r = await post(plane.url, chatBody('travelhelper', 'hello there', { max_tokens: 4 }));
        assert.equal(r.status, 200, r.text);
        return { pod: r.pod ?? '', received: r.headers.get('x-sim-model') };
      });
      const inV1 = results.filter((r) => r.pod.startsWith('qwen-'));
      const inV2 = results.filter((r) => r.pod === 'deepseek-0');
      assert.equal(inV1.length + inV2.length, n, `only routed pods: ${JSON.stringify([...new Set(results.map((r) => r.pod))])}`);
      assert.equal(plane.pods.get('other-0').stats().received, 0);
      // 4.5 sigma: a false alarm about once in 150 000 runs.
      assert.ok(Math.abs(binomialZ(inV1.length, n, 0.9)) < 4.5, `pool v1 share ${inV1.length}/${n} is outside 4.5 sigma of 90%`);
      assert.ok(inV2.every((r) => r.received === 'mymodel'), "pool v2's InferenceModel maps travelhelper to its base model");
      const v1Adapter = inV1.filter((r) => r.received === 'travel-helper-v1').length;
      const v2Adapter = inV1.filter((r) => r.received === 'travel-helper-v2').length;
      assert.equal(v1Adapter + v2Adapter, inV1.length, 'pool v1 only ever receives one of the two adapters');
      assert.ok(Math.abs(binomialZ(v1Adapter, inV1.length, 0.9)) < 4.5, `adapter v1 share ${v1Adapter}/${inV1.length} is outside 4.5 sigma of 90%`);
    },
  },
  {
    name: "model-name routing: X-Gateway-Model-Name filled from the body picks the pool; the client's header cannot steer",
    setup: {
      pods: [
        { name: 'llama-0', host: '127.0.9.50', labels: { pool: 'llama-pool' }, model: 'llama', loras: ['travel-helper'], ...TINY },
        { name: 'qwen-0', host: '127.0.9.51', labels: { pool: 'qwen-pool' }, runtime: 'sglang', model: 'qwen', ...TINY },
      ],
      pools: [{ name: 'llama-pool' }, { name: 'qwen-pool', annotations: { 'inference.networking.x-k8s.io/model-server-runtime': 'sglang' } }],
      routes: [
        { header: { name: 'X-Gateway-Model-Name', value: 'llama' }, backends: [{ pool: 'llama-pool' }] },
        { header: { name: 'X-Gateway-Model-Name', value: 'qwen' }, backends: [{ pool: 'qwen-pool' }] },
        { header: { name: 'X-Gateway-Model-Name', value: 'travel-helper' }, backends: [{ pool: 'llama-pool' }] },
        { backends: [{ pool: 'llama-pool' }] },
      ],
    },
    run: async (plane) => {
      for (let i = 0; i < 3; i++) {
        const llama = await post(plane.url, chatBody('llama', 'Hi'));
        assert.equal(llama.status, 200, llama.text);
        assert.equal(llama.pod, 'llama-0');
        const qwen = await post(plane.url, chatBody('qwen', 'Hi'), { 'x-gateway-model-name': 'llama' });
        assert.equal(qwen.status, 200, qwen.text);
        assert.equal(qwen.pod, 'qwen-0', 'the body decides, not a header the client sent');
        const adapter = await post(plane.url, chatBody('travel-helper', 'Hi'), { 'x-gateway-model-name': 'qwen' });
        assert.equal(adapter.status, 200, adapter.text);
        assert.equal(adapter.pod, 'llama-0');
        assert.equal(adapter.headers.get('x-sim-model'), 'travel-helper');
      }
      // No rule names this model: the catch-all rule's pool, whose pod does not serve it. Until the
      // core has the pod's model list the pod says so (404 from llama-0); then the core does,
      // without bothering the pod (backend-choice.ts).
      let last: { status: number; pod: string | null; text: string } | undefined;
      await waitFor("the core's own 404 for a model no backend serves", async () => {
        last = await post(plane.url, chatBody('mistral', 'Hi'));
        assert.equal(last.status, 404, last.text);
        if (last.pod !== null) assert.equal(last.pod, 'llama-0', "only the catch-all rule's pool");
        return last.pod === null;
      }, 40_000);
      assert.equal(errorCode(last?.text ?? '{}'), 'model_not_found');
    },
  },
  {
    name: 'PD: a cold prompt gets a prefill and a decode endpoint; a prompt the decode pod holds goes there alone',
    setup: {
      pods: [
        ...['vp-0', 'vp-1'].map((name, i) => ({ name, host: `127.0.9.${i + 60}`, runtime: 'vllm' as const, ...TINY, pdRole: 'prefill' as const, labels: { pool: 'pd', 'llm-d.ai/role': 'prefill' } })),
        // One decode pod, so the second request's decode pod is known to hold the prompt.
        ...['vd-0'].map((name, i) => ({ name, host: `127.0.9.${i + 62}`, runtime: 'vllm' as const, ...TINY, pdRole: 'decode' as const, labels: { pool: 'pd', 'llm-d.ai/role': 'decode' } })),
      ],
      pools: [{ name: 'pd' }],
      routes: [{ backends: [{ pool: 'pd' }] }],
      extra: `---
apiVersion: inferenceextension.alibabacloud.com/v1alpha1
kind: InferenceTrafficPolicy
metadata: {name: pd}
spec:
  poolRef: {name: pd}
  modelServerRuntime: vllm
  profile: {pd: {pdRoleLabelName: llm-d.ai/role, trafficPolicy: {prefixCache: {mode: estimate}}, prefillPolicyRef: prefixCache}}
`,
    },
    run: async (plane) => {
      const prompt = `Write about rivers. ${'Consider every angle carefully and give details. '.repeat(60)}`;
      const body = JSON.stringify({ model: 'mymodel', max_tokens: 10, ignore_eos: true, messages: [{ role: 'user', content: prompt }] });
      const cold = await post(plane.url, body, { 'x-request-id': `cold-${plane.kind}` });
      // Behind Envoy the decode pod's sidecar runs the legs (tested with the sidecar); here the
      // decision is the case: which prefill and which decode endpoint the picker chose.
      if (plane.kind === 'proxy') assert.equal(cold.status, 200, cold.text);
      const first = await plane.landing(`cold-${plane.kind}`);
      assert.match(first.prefillPod ?? '', /^vp-[01]$/, `a prefill pod was chosen: ${JSON.stringify(first)}`);
      assert.equal(first.pod, 'vd-0', `a decode pod was chosen: ${JSON.stringify(first)}`);
      // The core's Request Handled line records the same pair (behind Envoy: what the EPP's headers said).
      const pd = (await plane.handled(`cold-${plane.kind}`))['pd'] as { reason?: string; prefillPod?: string; decodePod?: string } | undefined;
      assert.deepEqual({ reason: pd?.reason, prefill: pd?.prefillPod, decode: pd?.decodePod }, { reason: 'disaggregated', prefill: first.prefillPod, decode: first.pod });
      const warm = await post(plane.url, body, { 'x-request-id': `warm-${plane.kind}` });
      if (plane.kind === 'proxy') assert.equal(warm.status, 200, warm.text);
      const second = await plane.landing(`warm-${plane.kind}`);
      assert.deepEqual(second, { pod: first.pod, prefillPod: undefined }, 'the decode pod already holds the prompt: no prefill leg');
    },
  },
];
