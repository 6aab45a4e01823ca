import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../src/core/errors.js';
import { seededRandom } from '../../src/core/weighted.js';
import { Gateway } from '../../src/gateway/gateway.js';
import type { PoolRuntime } from '../../src/gateway/runtime.js';
import { ConfigRejectedError } from '../../src/config/store.js';
import { builtinRegistry } from '../../src/scheduling/policies.js';
import { gatewayAndRoute } from '../support/config.js';
import { memoryLogger, MemorySource, type LogRecord } from '../support/memory-source.js';

const PORT = 8080;

function config(opts: { pods?: number; strategy?: string; routing?: string; readyPods?: number; runtime?: string } = {}): string {
  const pods = opts.pods ?? 2;
  const ready = opts.readyPods ?? pods;
  const annotations: Record<string, string> = {};
  if (opts.strategy !== undefined) annotations['inference.networking.x-k8s.io/routing-strategy'] = opts.strategy;
  if (opts.routing !== undefined) annotations['infergate.dev/routing'] = opts.routing;
  if (opts.runtime !== undefined) annotations['inference.networking.x-k8s.io/model-server-runtime'] = opts.runtime;
  return `${gatewayAndRoute(PORT, ['  - backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pool}]'])}apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pool, annotations: ${JSON.stringify(annotations)}}
spec: {selector: {matchLabels: {app: m}}, targetPorts: [{number: 8000}]}
${Array.from(
  { length: pods },
  (_, i) => `---
apiVersion: v1
kind: Pod
metadata: {name: p-${i}, labels: {app: m}}
status: {phase: ${i < ready ? 'Running' : 'Pending'}, podIP: 127.0.1.${i + 1}}
`,
).join('')}`;
}

async function start(yaml: string, plugins = builtinRegistry()): Promise<{ gateway: Gateway; source: MemorySource; lines: LogRecord[] }> {
  const source = new MemorySource(yaml);
  const { logger, lines } = memoryLogger();
  const gateway = await Gateway.start({ sources: [source], logger, scrapeIntervalMs: 0, random: seededRandom(7), plugins });
  return { gateway, source, lines };
}

function pool(gateway: Gateway): PoolRuntime {
  const p = gateway.runtime?.pools.get('default/pool');
  assert.ok(p !== undefined);
  return p;
}

const chat = (content: string, extra: Record<string, unknown> = {}): Buffer =>
  Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'system', content: 'You are helpful. '.repeat(20) }, { role: 'user', content }], ...extra }));

const route = { method: 'POST', path: '/v1/chat/completions', query: '', host: 'gw', headers: {} };

test('a request through the lifecycle calls: accounting rises at dispatch and returns to zero at the end; one log line', async () => {
  // A declared runtime: with scraping off, an unannotated pool's runtime is never known, and a
  // runtime the gateway does not know is not asked for usage (stream-usage.ts).
  const { gateway, lines } = await start(config({ strategy: 'PREFIX_CACHE', runtime: 'vllm' }));
  try {
    const handle = gateway.begin({ method: 'POST', path: '/v1/chat/completions', headers: { 'x-request-id': 'r-1' }, requestId: 'r-1', port: PORT });
    handle.route(PORT, route);
    const decision = await handle.decide(chat('hello', { stream: true }), new AbortController().signal);
    assert.equal(decision.endpoints.length, 2, 'the pick and one fallback');
    const [endpoint] = decision.endpoints;
    assert.ok(endpoint !== undefined);
    assert.ok(decision.body?.includes('"include_usage":true'), 'the gateway asks streams for usage');
    assert.ok(decision.headers.some((e) => e.op === 'set' && e.name === 'x-request-id' && e.value === 'r-1'));

    handle.dispatched(endpoint);
    assert.equal(endpoint.inFlight, 1);
    assert.ok(endpoint.pendingPrefillTokens > 0, 'the prompt is pending prefill until the first byte');
    assert.ok(gateway.prefixIndex.entriesOf(endpoint) > 0, 'the prefix plugin recorded the prompt on dispatch');

    const plan = handle.responseStarted(200, { 'content-type': 'text/event-stream' });
    assert.ok(plan.sse);
    assert.ok(plan.headers.some((e) => e.op === 'remove' && e.name === 'content-length'), 'the stripped stream is sent chunked');
    const sent = [
      handle.responseData(Buffer.from('data: {"choices":[{"index":0,"delta":{"content":"Hi there"}}]}\n\n')),
      handle.responseData(Buffer.from('data: {"choices":[],"usage":{"prompt_tokens":90,"completion_tokens":2,"total_tokens":92}}\n\ndata: [DONE]\n\n')),
    ];
    assert.equal(endpoint.pendingPrefillTokens, 0, 'prefill is over at the first byte');
    assert.equal(handle.responseEnd(), undefined);
    assert.ok(!Buffer.concat(sent).toString().includes('"usage"'), 'the usage event the client did not ask for is removed');
    const before = gateway.prefixIndex.entriesOf(endpoint);
    handle.finished({ status: 200, bytesOut: 10 });
    assert.equal(endpoint.inFlight, 0);
    assert.ok(gateway.prefixIndex.entriesOf(endpoint) >= before, 'the answer was recorded too');

    const line = lines.find((l) => l.msg === 'Request Handled');
    assert.equal(line?.['requestId'], 'r-1');
    assert.equal(line?.['status'], 200);
    assert.equal(line?.['promptTokens'], 90);
    assert.equal(line?.['pod'], endpoint.podName);
    assert.match(String(line?.['prefixBlocks']), /^0\/\d+$/);
    handle.finished({ status: 200, bytesOut: 10 });
    assert.equal(lines.filter((l) => l.msg === 'Request Handled').length, 1, 'a second end is ignored');
  } finally {
    await gateway.close();
  }
});

test('a retry moves the request: the first attempt is released, the second accounted, in-flight ends at zero', async () => {
  const { gateway } = await start(config());
  try {
    const handle = gateway.begin({ method: 'POST', path: '/v1/chat/completions', headers: {} });
    handle.route(PORT, route);
    const d = await handle.decide(chat('hi'), new AbortController().signal);
    const [a, b] = d.endpoints;
    assert.ok(a !== undefined && b !== undefined);
    handle.dispatched(a);
    handle.dispatched(b);
    assert.equal(a.inFlight, 0);
    assert.equal(a.pendingPrefillTokens, 0);
    assert.equal(b.inFlight, 1);
    handle.failed(new Error('boom'));
    assert.equal(b.inFlight, 0);
    assert.equal(b.pendingPrefillTokens, 0);
  } finally {
    await gateway.close();
  }
});

test('refusals come from the core as GatewayErrors: no route 404, bad JSON 400, no model 400', async () => {
  const { gateway, lines } = await start(config());
  try {
    const h1 = gateway.begin({ method: 'GET', path: '/nope', headers: {} });
    assert.throws(() => h1.route(9999, { ...route, path: '/nope' }), { code: 'route_not_found' });
    h1.failed(new Error('x'));
    const h2 = gateway.begin({ method: 'POST', path: '/v1/chat/completions', headers: {} });
    h2.route(PORT, route);
    await assert.rejects(h2.decide(Buffer.from('{'), new AbortController().signal), { code: 'invalid_json', status: 400 });
    const h3 = gateway.begin({ method: 'POST', path: '/v1/chat/completions', headers: {} });
    h3.route(PORT, route);
    await assert.rejects(h3.decide(Buffer.from('{"messages":[]}'), new AbortController().signal), { code: 'missing_model' });
    h3.failed(new Error('x'));
    assert.equal(lines.filter((l) => l.msg === 'Request Handled').length, 2);
  } finally {
    await gateway.close();
  }
});

test('a reload whose runtime build throws keeps the last good snapshot and runtime; a later good reload applies', async () => {
  // A registry whose prefix scorer refuses to be built once a flag says so: the failure is in the
  // runtime build (plugins), after the snapshot compiled.
  let broken = false;
  const plugins = builtinRegistry();
  const real = builtinRegistry();
  const wrapped = {
    register: plugins.register.bind(plugins),
    types: plugins.types.bind(plugins),
    create: (...args: Parameters<typeof plugins.create>) => {
      if (broken && args[0] === 'prefix-cache-scorer') throw new Error('prefix index unavailable');
      return real.create(...args);
    },
  };
  const { gateway, source, lines } = await start(config(), wrapped);
  try {
    const first = gateway.runtime;
    assert.equal(pool(gateway).policy, 'DEFAULT');
    broken = true;
    const outcome = await source.set(config({ strategy: 'PREFIX_CACHE' }));
    assert.equal(outcome.ok, false);
    assert.equal(gateway.runtime, first, 'the last good runtime keeps serving');
    assert.equal(gateway.runtime?.snapshot.version, first?.snapshot.version);
    const error = lines.find((l) => l.msg === 'config error');
    assert.match(String(error?.['problem']), /^InferencePool\/pool: .*prefix index unavailable/);
    assert.ok(lines.some((l) => l.msg === 'config change rejected; the last good configuration keeps serving'));

    broken = false;
    const again = await source.set(config({ strategy: 'PREFIX_CACHE' }));
    assert.equal(again.ok, true);
    assert.equal(pool(gateway).policy, 'PREFIX_CACHE');
    assert.ok((gateway.runtime?.snapshot.version ?? 0) > (first?.snapshot.version ?? 0));
  } finally {
    await gateway.close();
  }
});

test('invalid plugin parameters reject the change with the resource, the plugin field and the reason', async () => {
  const { gateway, source, lines } = await start(config());
  try {
    const outcome = await source.set(config({ strategy: 'PREFIX_CACHE', routing: 'prefix: {hotspotKvDelta: 5}' }));
    assert.equal(outcome.ok, false);
    const problems = outcome.ok ? [] : outcome.errors.map((p) => `${p.subject}: ${p.path}: ${p.message}`);
    assert.equal(problems.length, 1);
    assert.match(problems[0] as string, /^InferencePool\/pool: .*hotspotKvDelta/);
    assert.equal(pool(gateway).policy, 'DEFAULT');
    assert.ok(lines.some((l) => l.msg === 'config error'));
  } finally {
    await gateway.close();
  }
});

test('a first configuration that does not build refuses start-up', async () => {
  await assert.rejects(start(config({ strategy: 'PREFIX_CACHE', routing: 'prefix: {hotspotKvDelta: 5}' })), (e: unknown) => e instanceof ConfigRejectedError && /hotspotKvDelta/.test(e.message));
});

test('a pod becoming ready adds its endpoint without a new runtime: plugin state (round-robin position) survives', async () => {
  const { gateway, source } = await start(config({ pods: 3, readyPods: 2, routing: 'policy: round-robin' }));
  try {
    const runtime = gateway.runtime;
    const order = async (): Promise<string> => {
      const h = gateway.begin({ method: 'POST', path: '/v1/chat/completions', headers: {} });
      h.route(PORT, route);
      const d = await h.decide(chat('x'), new AbortController().signal);
      h.failed(new Error('not sent'));
      return d.endpoints[0]?.name ?? '';
    };
    assert.deepEqual([await order(), await order(), await order()], ['p-0', 'p-1', 'p-0']);
    const before = pool(gateway).members.endpoints;
    await source.set(config({ pods: 3, readyPods: 3, routing: 'policy: round-robin' }));
    assert.equal(gateway.runtime, runtime, 'a pod change builds no new runtime');
    const after = pool(gateway).members.endpoints;
    assert.deepEqual(after.map((e) => e.name), ['p-0', 'p-1', 'p-2']);
    assert.equal(after[0], before[0], 'unchanged endpoints are the same objects (their counters and metrics stay)');
    // The picker continues from where it was (position 3 → p-0 of three), not from a fresh start.
    assert.deepEqual([await order(), await order()], ['p-0', 'p-1']);
    assert.equal(await order(), 'p-2');
  } finally {
    await gateway.close();
  }
});

test('a config change that leaves a pool policy alone keeps its plugin instances', async () => {
  const { gateway, source } = await start(config({ pods: 2, routing: 'policy: round-robin' }));
  try {
    const first = pool(gateway).scheduler.plugins();
    await source.set(config({ pods: 2, routing: 'policy: round-robin' }).replace('name: r}', 'name: r, labels: {edited: "yes"}}'));
    assert.notEqual(gateway.runtime?.snapshot.version, undefined);
    assert.deepEqual(pool(gateway).scheduler.plugins(), first);
  } finally {
    await gateway.close();
  }
});

test('passive health: consecutive failures eject an endpoint from the candidates; a success in between resets the count', async () => {
  const { gateway, lines } = await start(config({ pods: 2 }));
  try {
    const [p0, p1] = pool(gateway).members.endpoints;
    assert.ok(p0 !== undefined && p1 !== undefined);
    /** One request sent to `endpoint` whose upstream fails (or answers `status`). */
    const sendTo = async (endpoint: typeof p0, status?: number): Promise<void> => {
      const h = gateway.begin({ method: 'POST', path: '/v1/chat/completions', headers: {} });
      h.route(PORT, route);
      await h.decide(chat('x'), new AbortController().signal);
      h.dispatched(endpoint);
      if (status === undefined) return h.failed(new GatewayError('upstream_unavailable', 'refused'));
      h.responseStarted(status, {});
      h.responseEnd();
      h.finished({ status, bytesOut: 0 });
    };
    for (let i = 0; i < 4; i++) await sendTo(p0);
    await sendTo(p0, 200);
    assert.equal(p0.consecutiveFailures, 0, 'a success resets the count');
    for (let i = 0; i < 3; i++) await sendTo(p0);
    await sendTo(p0, 503);
    assert.equal(p0.ejectedUntil, 0, 'four failures in a row: not yet');
    await sendTo(p0);
    assert.ok(p0.ejectedUntil > performance.now(), 'the fifth failure in a row (a 5xx counts) ejects');
    assert.ok(lines.some((l) => l.msg === 'endpoint ejected: requests failing; not scheduled' && l['endpoint'] === 'p-0'));
    assert.deepEqual(pool(gateway).candidates().map((e) => e.name), ['p-1'], 'an ejected endpoint gets no new requests');
    assert.equal(p0.inFlight, 0);
    p0.ejectedUntil = performance.now() - 1; // the ejection time is over
    assert.deepEqual(pool(gateway).candidates().map((e) => e.name), ['p-0', 'p-1']);
    for (let i = 0; i < 5; i++) await sendTo(p1);
    for (let i = 0; i < 5; i++) await sendTo(p0);
    assert.equal(p0.ejectedUntil < performance.now(), true, 'half the pool is ejected already: p-0 stays in (maxEjectionPercent)');
    assert.ok(lines.some((l) => l.msg === 'endpoint not ejected: its pool is at its ejection limit (maxEjectionPercent)' && l['endpoint'] === 'p-0'));
    assert.deepEqual(pool(gateway).candidates().map((e) => e.name), ['p-0']);
    p0.ejectedUntil = performance.now() + 60_000;
    assert.deepEqual(pool(gateway).candidates().map((e) => e.name), ['p-0', 'p-1'], 'when every endpoint is ejected, all stay candidates');
  } finally {
    await gateway.close();
  }
});

test('a pool that selects no serving pod is logged once when it becomes empty, and again after it had pods', async () => {
  const warned = (lines: LogRecord[]): number => lines.filter((l) => l.msg === 'pool selects no serving pod: its requests get 503 until one appears').length;
  const { gateway, source, lines } = await start(config({ pods: 0 }));
  try {
    assert.equal(warned(lines), 1, 'said at load');
    assert.equal((await source.set(config({ pods: 0, strategy: 'PREFIX_CACHE' }))).ok, true);
    assert.equal(warned(lines), 1, 'not repeated while it stays empty');
    assert.equal((await source.set(config({ pods: 1 }))).ok, true);
    assert.equal((await source.set(config({ pods: 1, readyPods: 0 }))).ok, true);
    assert.equal(warned(lines), 2, 'said again when its only pod stops serving');
  } finally {
    await gateway.close();
  }
});

test('passive health judges only evidence: failures the client or the gateway caused, and 4xx answers, eject no one', async () => {
  const { gateway } = await start(config({ pods: 2 }));
  try {
    const [p0] = pool(gateway).members.endpoints;
    assert.ok(p0 !== undefined);
    const sendTo = async (end: (h: ReturnType<typeof gateway.begin>) => void): Promise<void> => {
      const h = gateway.begin({ method: 'POST', path: '/v1/chat/completions', headers: {} });
      h.route(PORT, route);
      await h.decide(chat('x'), new AbortController().signal);
      h.dispatched(p0);
      end(h);
    };
    const refusals = ['unforwardable_request', 'internal_error', 'client_gone', 'invalid_body', 'gateway_shutting_down'] as const;
    for (let i = 0; i < 10; i++) {
      for (const code of refusals) {
        await sendTo((h) => {
          h.attemptFailed(new GatewayError(code, 'not the server'));
          h.failed(new GatewayError(code, 'not the server'));
        });
      }
      for (const status of [400, 404, 413, 422, 501]) {
        await sendTo((h) => {
          h.responseStarted(status, {});
          h.responseEnd();
          h.finished({ status, bytesOut: 0 });
        });
      }
    }
    assert.equal(p0.ejectedUntil, 0);
    assert.equal(p0.consecutiveFailures, 0);
    assert.deepEqual(pool(gateway).candidates().map((e) => e.name), ['p-0', 'p-1']);
  } finally {
    await gateway.close();
  }
});
