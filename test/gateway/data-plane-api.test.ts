import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../src/core/errors.js';
import { seededRandom } from '../../src/core/weighted.js';
import {
  BodyBudget,
  BodyCollector,
  controlHeader,
  DEFAULT_POOL_BODY_LIMIT_BYTES,
  errorResponse,
  Gateway,
  isControlHeader,
  poolLimitName,
  sseErrorEvent,
  type GatewayOptions,
} from '../../src/gateway/index.js';
import { upstreamHeaderEdits } from '../../src/gateway/headers.js';
import { gatewayAndRoute } from '../support/config.js';
import { memoryLogger, MemorySource, type LogRecord } from '../support/memory-source.js';

/*
 * The API a data plane other than the proxy (Envoy's endpoint picker) codes against: the
 * pool-keyed entry, the endpoint subset, the served endpoint, the body collector, error answers and
 * control headers.
 */

const POOL = 'default/pool';

function yaml(): string {
  return `${gatewayAndRoute(8080, ['  - backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool}]'])}apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool}
spec: {selector: {matchLabels: {app: m}}, targetPorts: [{number: 8000}]}
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: other}
spec: {selector: {matchLabels: {app: o}}, targetPorts: [{number: 8000}]}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModel
metadata: {name: canary}
spec: {modelName: canary, poolRef: {name: pool}, targetModels: [{name: canary-v1, weight: 50}, {name: canary-v2, weight: 50}]}
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceObjective
metadata: {name: urgent}
spec: {priority: 10, poolRef: {name: pool}}
${[1, 2, 3]
  .map(
    (i) => `---
apiVersion: v1
kind: Pod
metadata: {name: p-${i}, labels: {app: m}}
status: {phase: Running, podIP: 127.0.2.${i}}
`,
  )
  .join('')}---
apiVersion: v1
kind: Pod
metadata: {name: o-1, labels: {app: o}}
status: {phase: Running, podIP: 127.0.3.1}
`;
}

async function start(extra: Partial<GatewayOptions> = {}): Promise<{ gateway: Gateway; lines: LogRecord[] }> {
  const { logger, lines } = memoryLogger();
  const gateway = await Gateway.start({ sources: [new MemorySource(yaml())], logger, scrapeIntervalMs: 0, random: seededRandom(11), ...extra });
  return { gateway, lines };
}

const body = (model: string): Buffer => Buffer.from(JSON.stringify({ model, prompt: 'hello there' }));
const init = (headers: Record<string, string> = {}): Parameters<Gateway['begin']>[0] => ({ method: 'POST', path: '/v1/completions', headers });
const signal = (): AbortSignal => new AbortController().signal;

function refusal(code: string, status: number): (err: unknown) => boolean {
  return (err) => err instanceof GatewayError && err.code === code && err.status === status;
}

test('routePool: an unknown pool is refused with pool_not_found (503) naming it', async () => {
  const { gateway } = await start();
  try {
    const handle = gateway.begin(init());
    assert.throws(() => handle.routePool('default/nope'), (err: unknown) => refusal('pool_not_found', 503)(err) && (err as Error).message.includes('default/nope'));
    handle.failed(new GatewayError('pool_not_found', 'x'));
  } finally {
    await gateway.close();
  }
});

test('routePool: the pool is the only backend, without route modifiers or timeout, and InferenceModel canary weights still apply', async () => {
  const { gateway } = await start();
  try {
    const targets = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const handle = gateway.begin(init());
      const rule = handle.routePool(POOL);
      assert.equal(rule.requestHeaders, null);
      assert.equal(rule.responseHeaders, null);
      assert.equal(rule.requestTimeoutMs, undefined);
      assert.equal(rule.bufferLimitBytes, DEFAULT_POOL_BODY_LIMIT_BYTES);
      const decision = await handle.decide(body('canary'), signal());
      assert.equal(decision.timeout, undefined, "Envoy's route owns the timeout");
      assert.ok(decision.endpoints.every((e) => e.key.startsWith('127.0.2.')), 'only endpoints of the pool');
      const target = handle.prepared?.targetModel ?? '';
      assert.ok(decision.body?.toString().includes(`"model":"${target}"`), 'the body carries the drawn target');
      targets.set(target, (targets.get(target) ?? 0) + 1);
      handle.finished({ status: 200, bytesOut: 0 });
    }
    assert.deepEqual([...targets.keys()].sort(), ['canary-v1', 'canary-v2'], `both canary targets drawn: ${JSON.stringify([...targets])}`);
  } finally {
    await gateway.close();
  }
});

test('poolBodyLimit: 16 MiB by default (a listener’s default), one number or per pool from the options', async () => {
  const a = await start();
  const b = await start({ poolBodyLimitBytes: 1024 });
  const c = await start({ poolBodyLimitBytes: { [POOL]: 2048 } });
  try {
    assert.equal(a.gateway.poolBodyLimit(POOL), 16 * 1024 * 1024);
    assert.equal(b.gateway.poolBodyLimit(POOL), 1024);
    assert.equal(b.gateway.begin(init()).routePool(POOL).bufferLimitBytes, 1024);
    assert.equal(c.gateway.poolBodyLimit(POOL), 2048);
    assert.equal(c.gateway.poolBodyLimit('default/other'), DEFAULT_POOL_BODY_LIMIT_BYTES);
    assert.equal(c.gateway.poolBodyLimit('toString'), DEFAULT_POOL_BODY_LIMIT_BYTES, 'no inherited property is a limit');
  } finally {
    await Promise.all([a.gateway.close(), b.gateway.close(), c.gateway.close()]);
  }
});

test('decide with `only`: the pick stays in the subset; an empty subset or one naming no endpoint of the pool is 503 no_ready_endpoint', async () => {
  const { gateway } = await start();
  try {
    for (let i = 0; i < 10; i++) {
      const handle = gateway.begin(init());
      handle.routePool(POOL);
      const decision = await handle.decide(body('m'), signal(), { only: new Set(['127.0.2.2:8000', '10.1.1.1:80']) });
      assert.deepEqual(
        decision.endpoints.map((e) => e.key),
        ['127.0.2.2:8000'],
        'the one eligible endpoint, no fallback outside the subset',
      );
      handle.finished({ status: 200, bytesOut: 0 });
    }
    for (const only of [new Set<string>(), new Set(['127.0.3.1:8000', '127.0.2.2:80'])]) {
      const handle = gateway.begin(init());
      handle.routePool(POOL);
      await assert.rejects(handle.decide(body('m'), signal(), { only }), refusal('no_ready_endpoint', 503));
      handle.failed(new GatewayError('no_ready_endpoint', 'x'));
    }
  } finally {
    await gateway.close();
  }
});

test('served: accounting follows the endpoint that served (in flight back to zero on both; the log names it); hostile keys are ignored', async () => {
  const { gateway, lines } = await start();
  try {
    const handle = gateway.begin(init());
    handle.routePool(POOL);
    const decision = await handle.decide(body('m'), signal(), { only: new Set(['127.0.2.1:8000']) });
    const dispatched = decision.endpoints[0];
    assert.ok(dispatched !== undefined);
    handle.dispatched(dispatched);
    assert.equal(dispatched.inFlight, 1);
    const pool = gateway.runtime?.pools.get(POOL);
    const served = pool?.members.endpoints.find((e) => e.key === '127.0.2.3:8000');
    const stranger = gateway.runtime?.pools.get('default/other')?.members.endpoints[0];
    assert.ok(served !== undefined && stranger !== undefined);

    for (const key of ['', 'garbage', '127.0.2.9:8000', stranger.key, 'x'.repeat(10_000), dispatched.key]) handle.served(key);
    assert.equal(dispatched.inFlight, 1, 'unknown keys, another pool’s endpoint and the same endpoint change nothing');
    assert.equal(stranger.inFlight, 0);

    handle.served(served.key);
    assert.equal(dispatched.inFlight, 0, 'the dispatched endpoint is released');
    assert.equal(dispatched.pendingPrefillTokens, 0);
    assert.equal(served.inFlight, 1, 'the served endpoint carries the request');
    handle.responseStarted(200, { 'content-type': 'application/json' });
    handle.responseData(Buffer.from('{"choices":[{"text":"hi"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'));
    handle.responseEnd();
    handle.finished({ status: 200, bytesOut: 10 });
    assert.equal(served.inFlight, 0);
    assert.equal(dispatched.inFlight, 0);
    assert.equal(served.pendingPrefillTokens, 0);
    const line = lines.find((l) => l.msg === 'Request Handled' && l.requestId === handle.id);
    assert.equal(line?.address, served.key, 'the log line names the endpoint that served');
    assert.equal(line?.attempts, 1, 'Envoy’s retry is not another attempt of the gateway');
    handle.served(dispatched.key);
    assert.equal(dispatched.inFlight, 0, 'after the end: ignored');
  } finally {
    await gateway.close();
  }
});

test('BodyCollector: up to the limit, then body_too_large (413); its reservation grows with the pushed bytes', () => {
  const budget = new BodyBudget(100);
  const reservation = budget.reserve(0);
  const c = new BodyCollector(80, reservation);
  c.push(Buffer.alloc(30));
  c.push(Buffer.alloc(30));
  assert.equal(c.size, 60);
  assert.equal(reservation.bytes, 60);
  assert.equal(budget.reservedBytes, 60);
  assert.throws(() => c.push(Buffer.alloc(21)), refusal('body_too_large', 413));
  assert.equal(c.size, 60, 'the refused chunk is not kept');
  c.push(Buffer.alloc(20));
  assert.equal(c.finish().length, 80);

  // Another request holds part of the budget: growing past it is 503 body_budget_exhausted.
  const other = budget.reserve(0);
  const d = new BodyCollector(1000, other);
  assert.throws(() => d.push(Buffer.alloc(30)), refusal('body_budget_exhausted', 503));
  reservation.release();
  d.push(Buffer.alloc(30));
  assert.equal(budget.reservedBytes, 30);
  const pool = new BodyCollector(10, undefined, { what: poolLimitName(POOL) });
  assert.throws(() => pool.push(Buffer.alloc(11)), (err: unknown) => refusal('body_too_large', 413)(err) && (err as Error).message.includes(`InferencePool ${POOL} of 10 bytes`));
  assert.deepEqual(new BodyCollector(5).finish(), Buffer.alloc(0));
  const one = Buffer.from('abc');
  const e = new BodyCollector(5);
  e.push(one);
  assert.equal(e.finish(), one, 'a single chunk is returned without a copy');
});

test('errorResponse: status, OpenAI body, Retry-After and Allow; sseErrorEvent ends the stream with [DONE]', () => {
  const shed = errorResponse(new GatewayError('request_shed', 'the pool is saturated', { retryAfterSeconds: 3 }), 'r-1');
  assert.equal(shed.status, 429);
  assert.equal(shed.headers['retry-after'], '3');
  assert.equal(shed.headers['x-request-id'], 'r-1');
  assert.equal(shed.headers['content-type'], 'application/json');
  assert.equal(shed.headers['content-length'], String(shed.body.length));
  assert.deepEqual(JSON.parse(shed.body.toString()), { error: { message: 'the pool is saturated', type: 'rate_limit_error', param: null, code: 'request_shed' } });
  const method = errorResponse(new GatewayError('method_not_allowed', 'no', { allow: 'GET, HEAD' }), 'r-2');
  assert.equal(method.headers['allow'], 'GET, HEAD');
  assert.equal(method.headers['retry-after'], undefined);
  const event = sseErrorEvent(new GatewayError('upstream_reset', 'cut')).toString();
  assert.match(event, /^data: \{"error":\{.*"code":"upstream_reset"\}\}\n\ndata: \[DONE\]\n\n$/);
});

test('control headers: llm-d’s x-llm-d-* names are read, x-gateway-* wins when both are sent, and none reaches the model server', async () => {
  assert.equal(controlHeader({ 'x-llm-d-inference-objective': 'urgent' }, 'objective')?.value, 'urgent');
  assert.equal(controlHeader({ 'x-llm-d-inference-objective': 'a', 'x-gateway-inference-objective': 'b' }, 'objective')?.value, 'b');
  assert.equal(controlHeader({ 'x-gateway-inference-objective': '', 'x-llm-d-inference-objective': 'a' }, 'objective')?.value, 'a', 'an empty value names nothing');
  assert.ok(isControlHeader('x-llm-d-model-name-rewrite'));
  assert.ok(!isControlHeader('x-prefiller-host-port'), 'the sidecar’s header is not the gateway’s');
  const incoming = {
    'x-llm-d-inference-objective': 'urgent',
    'x-llm-d-inference-fairness-id': 'tenant-a',
    'x-llm-d-model-name-rewrite': 'm2',
    'x-gateway-inference-fairness-id': 'tenant-b',
    'x-prefiller-host-port': '10.0.0.1:8000',
  };
  const removed = upstreamHeaderEdits(incoming, { requestId: 'r', clientAddress: undefined, bodyLength: undefined, modifier: null })
    .filter((e) => e.op === 'remove')
    .map((e) => e.name);
  assert.deepEqual(removed.sort(), ['x-gateway-inference-fairness-id', 'x-llm-d-inference-fairness-id', 'x-llm-d-inference-objective', 'x-llm-d-model-name-rewrite']);

  const { gateway } = await start();
  try {
    const handle = gateway.begin(init(incoming));
    handle.routePool(POOL);
    const decision = await handle.decide(body('m'), signal());
    assert.equal(handle.prepared?.criticality, 'Critical', 'the llm-d objective header chose the band');
    assert.equal(handle.prepared?.objective, 'urgent');
    assert.equal(handle.prepared?.fairnessId, 'tenant-b', 'x-gateway-* wins');
    assert.equal(handle.prepared?.targetModel, 'm2', 'the llm-d rewrite header named the target');
    assert.ok(decision.headers.some((e) => e.op === 'remove' && e.name === 'x-llm-d-inference-objective'), 'the decision strips them for every data plane');
    handle.finished({ status: 200, bytesOut: 0 });
    const long = gateway.begin(init({ 'x-llm-d-inference-fairness-id': 'f'.repeat(300) }));
    long.routePool(POOL);
    await assert.rejects(long.decide(body('m'), signal()), refusal('invalid_header', 400));
    long.failed(new GatewayError('invalid_header', 'x'));
  } finally {
    await gateway.close();
  }
});

test('refusals before a backend was chosen count in infergate_requests_total too (invalid JSON, unknown pool), with their code and no pool or model label', async () => {
  const { gateway } = await start();
  try {
    const cases: Array<[string, Buffer]> = [
      [POOL, Buffer.from('{"model": "m", ')],
      ['default/nope', Buffer.from('{"model": "m"}')],
    ];
    for (const [pool, body] of cases) {
      const handle = gateway.begin({ method: 'POST', path: '/v1/completions', headers: {} });
      try {
        handle.routePool(pool);
        await handle.decide(body, new AbortController().signal);
        assert.fail('refused');
      } catch (err) {
        handle.failed(err);
      }
    }
    const text = await gateway.metrics.registry.metrics();
    assert.match(text, /^infergate_requests_total\{pool="",model="",target_model="",status="400",code="invalid_json"\} 1$/m);
    assert.match(text, /^infergate_requests_total\{pool="",model="",target_model="",status="503",code="pool_not_found"\} 1$/m);
  } finally {
    await gateway.close();
  }
});
