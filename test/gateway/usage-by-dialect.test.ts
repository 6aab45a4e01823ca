import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Endpoint, MetricsDialect } from '../../src/core/endpoint.js';
import { seededRandom } from '../../src/core/weighted.js';
import { Gateway } from '../../src/gateway/index.js';
import { gatewayAndRoute } from '../support/config.js';
import { memoryLogger, MemorySource } from '../support/memory-source.js';

// Whether the gateway adds `stream_options.include_usage` (and strips the event it asked for, or
// counts chunks instead) is decided by the endpoints the request goes to: their dialect,
// configured or detected from /metrics, not the pool's configured runtime.

function config(annotations: Record<string, string>, podLabels: Record<string, string> = {}): string {
  return `${gatewayAndRoute(8080, ['  - backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool}]'])}apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool, annotations: ${JSON.stringify(annotations)}}
spec: {selector: {matchLabels: {app: m}}, targetPorts: [{number: 8000}]}
---
apiVersion: v1
kind: Pod
metadata: {name: m-0, labels: ${JSON.stringify({ app: 'm', ...podLabels })}}
status: {phase: Running, podIP: 127.0.9.1}
`;
}

async function withGateway(yaml: string, run: (gateway: Gateway, endpoint: Endpoint) => Promise<void>): Promise<void> {
  const gateway = await Gateway.start({ sources: [new MemorySource(yaml)], logger: memoryLogger().logger, scrapeIntervalMs: 0, random: seededRandom(1) });
  try {
    const endpoint = gateway.runtime?.pools.get('default/pool')?.members.endpoints[0];
    assert.ok(endpoint !== undefined);
    await run(gateway, endpoint);
  } finally {
    await gateway.close();
  }
}

async function decide(gateway: Gateway, body: object, path = '/v1/chat/completions') {
  const h = gateway.begin({ method: 'POST', path, headers: {} });
  const raw = Buffer.from(JSON.stringify(body));
  h.route(8080, { method: 'POST', path, query: '', host: 'h', headers: {} }, raw);
  const d = await h.decide(raw, new AbortController().signal);
  const sent = JSON.parse(String(d.body)) as Record<string, unknown>;
  const prepared = h.prepared;
  h.finished({ status: 200 } as never);
  return { sent, stripUsage: prepared?.stripUsage, countTokens: prepared?.countTokens };
}

const STREAM = { model: 'm', stream: true, messages: [{ role: 'user', content: 'hi' }] };

/** Sets the dialect as the scraper does when it detects one (dialectConfigured stays false). */
function detect(e: Endpoint, dialect: MetricsDialect): void {
  e.dialect = dialect;
  e.dialectDetected = true;
}

test('a pool without a runtime annotation: an endpoint detected as Triton (trt-llm) gets no stream_options; its chunks are counted', async () => {
  await withGateway(config({}), async (gateway, endpoint) => {
    detect(endpoint, 'vllm');
    const before = await decide(gateway, STREAM);
    assert.deepEqual(before.sent['stream_options'], { include_usage: true }, 'detected as vLLM: usage asked for');
    assert.equal(before.stripUsage, true);
    detect(endpoint, 'trt-llm');
    const after = await decide(gateway, STREAM);
    assert.equal(after.sent['stream_options'], undefined, 'Triton before 25.11 refuses the field');
    assert.equal(after.stripUsage, false);
    assert.equal(after.countTokens, true, 'the tokens are counted from the stream instead');
    // The client's own options are forwarded as sent.
    const own = await decide(gateway, { ...STREAM, stream_options: { include_usage: false } });
    assert.deepEqual(own.sent['stream_options'], { include_usage: false });
    // Completions too; other bytes unchanged.
    const completions = await decide(gateway, { model: 'm', stream: true, prompt: 'x', n: 1 }, '/v1/completions');
    assert.deepEqual(completions.sent, { model: 'm', stream: true, prompt: 'x', n: 1 });
    for (const dialect of ['sglang', 'trtllm-serve', 'vllm'] as const) {
      detect(endpoint, dialect);
      const r = await decide(gateway, STREAM);
      assert.deepEqual(r.sent['stream_options'], { include_usage: true }, `${dialect} accepts the field`);
      assert.equal(r.countTokens, false);
    }
  });
});

test('a pool annotated trt-llm whose pod is labelled vLLM (the label wins): usage is asked of that pod', async () => {
  await withGateway(config({ 'inference.networking.x-k8s.io/model-server-runtime': 'trt-llm' }, { 'inference.networking.k8s.io/engine-type': 'vllm' }), async (gateway, endpoint) => {
    assert.equal(endpoint.dialect, 'vllm');
    const r = await decide(gateway, STREAM);
    assert.deepEqual(r.sent['stream_options'], { include_usage: true });
    assert.equal(r.stripUsage, true);
    detect(endpoint, 'trt-llm');
    assert.equal((await decide(gateway, STREAM)).sent['stream_options'], undefined);
  });
});

test('the pool\'s streamUsage setting wins over the dialect, either way', async () => {
  await withGateway(config({ 'infergate.dev/routing': 'streamUsage: inject' }), async (gateway, endpoint) => {
    detect(endpoint, 'trt-llm');
    const r = await decide(gateway, STREAM);
    assert.deepEqual(r.sent['stream_options'], { include_usage: true });
    assert.equal(r.stripUsage, true);
  });
  await withGateway(config({ 'infergate.dev/routing': 'streamUsage: off' }), async (gateway) => {
    const r = await decide(gateway, STREAM);
    assert.equal(r.sent['stream_options'], undefined);
    assert.equal(r.countTokens, true);
  });
});

test('the Responses API is never asked for usage, whatever the dialect', async () => {
  await withGateway(config({}), async (gateway) => {
    const r = await decide(gateway, { model: 'm', stream: true, input: 'hi' }, '/v1/responses');
    assert.equal(r.sent['stream_options'], undefined);
    assert.equal(r.stripUsage, false);
  });
});

// A request must never fail because of something the gateway added: a runtime it does not know
// is not asked for usage (Triton before 25.11 answers 422 or 400 to the field).

test('a pool without a runtime annotation, before any scrape showed the runtime: no stream_options, tokens counted', async () => {
  await withGateway(config({}), async (gateway, endpoint) => {
    assert.equal(endpoint.dialect, 'vllm', 'the default guess');
    assert.equal(endpoint.dialectKnown(), false);
    const r = await decide(gateway, STREAM);
    assert.equal(r.sent['stream_options'], undefined);
    assert.equal(r.stripUsage, false);
    assert.equal(r.countTokens, true);
    const completions = await decide(gateway, { model: 'm', stream: true, prompt: 'x' }, '/v1/completions');
    assert.deepEqual(completions.sent, { model: 'm', stream: true, prompt: 'x' }, 'the body as sent');
    // The client's own request for usage is the client's: forwarded as sent, its event kept.
    const own = await decide(gateway, { ...STREAM, stream_options: { include_usage: true } });
    assert.deepEqual(own.sent['stream_options'], { include_usage: true });
    assert.equal(own.stripUsage, false);
  });
});

test('a runtime the pool names is known before any scrape: vLLM and SGLang are asked, trt-llm is not', async () => {
  for (const [runtime, asked] of [['vllm', true], ['sglang', true], ['trt-llm', false]] as const) {
    await withGateway(config({ 'inference.networking.x-k8s.io/model-server-runtime': runtime }), async (gateway, endpoint) => {
      assert.equal(endpoint.dialectKnown(), true);
      const r = await decide(gateway, STREAM);
      assert.equal(r.sent['stream_options'] !== undefined, asked, runtime);
      assert.equal(r.countTokens, !asked, runtime);
    });
  }
});

test('a server whose page carries Triton\'s own series is never asked, even with vLLM metric names (Triton\'s vLLM backend)', async () => {
  await withGateway(config({}), async (gateway, endpoint) => {
    detect(endpoint, 'vllm');
    endpoint.servedByTriton = true;
    const r = await decide(gateway, STREAM);
    assert.equal(r.sent['stream_options'], undefined);
    assert.equal(r.countTokens, true);
  });
});
