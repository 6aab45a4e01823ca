import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { modelYaml } from '../support/config.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { chatBody, debugPools, gatewayForPools, handled, loadDirectly, poolYaml, post, startSmartEnv, waitFor, type Loader, type SimPods, type SmartEnv } from '../support/smart.js';

// Criticality under saturation. Both pods of a pool are loaded directly (past the gateway) until
// their own metrics show queues over the saturation threshold (5); then the gateway holds
// Critical and Standard requests until the load is released, and refuses Sheddable ones at once.
// The load is effectively endless, so saturation ends when the test stops it, not by chance.
const COMMON = { profile: 'llama-3.1-8b-h100', timeScale: 20, overrides: { maxNumSeqs: 2 } } as const;
const LOAD = { model: 'mymodel', prompt: 'load '.repeat(100), max_tokens: 100_000, ignore_eos: true };

describe('smart routing: saturation, queueing and shedding', { timeout: 120_000 }, () => {
  let env: SmartEnv;
  let pods: SimPods;
  let gateway: GatewayProcess;
  let base: string;

  before(async () => {
    const target = [{ name: 'mymodel', weight: 1 }];
    env = await startSmartEnv(
      [
        { name: 'b-0', host: '127.0.3.2', labels: { pool: 'busy' }, ...COMMON },
        { name: 'b-1', host: '127.0.3.3', labels: { pool: 'busy' }, ...COMMON },
        { name: 'q-0', host: '127.0.3.4', labels: { pool: 'small' }, ...COMMON },
      ],
      (port, p) =>
        gatewayForPools(port, ['busy', 'small']) +
        poolYaml('busy', p.port) +
        // A tiny queue with a short TTL, to see both refusals. The TTL must outlast the test's look
        // at the queue (a poll of /debug/endpoints), which takes seconds on a busy machine.
        poolYaml('small', p.port, { 'infergate.dev/routing': 'queue: {maxRequests: 1, ttl: 5s}' }) +
        modelYaml('vip', 'vip', 'busy', target, 'Critical') +
        modelYaml('bulk', 'bulk', 'busy', target, 'Sheddable') +
        modelYaml('small-std', 'std', 'small', target, 'Standard') +
        p.podsYaml(),
    );
    ({ pods, gateway, base } = env);
  });

  after(async () => {
    await env?.close();
  });

  async function saturate(pool: string, names: readonly string[], perPod: number): Promise<Loader[]> {
    const loads = names.map((n) => loadDirectly(pods.get(n), perPod, LOAD));
    await waitFor(`${pool} saturated`, async () => (await debugPools(gateway)).find((p) => p.pool === `default/${pool}`)?.saturated === true);
    return loads;
  }

  test('Critical and unlabelled requests wait and complete; Sheddable gets 429 with Retry-After at once', async () => {
    const loads = await saturate('busy', ['b-0', 'b-1'], 9);
    const shed = await post(base, chatBody('bulk', 'can wait'), { 'x-request-id': 'shed-1' });
    assert.equal(shed.status, 429);
    assert.equal((JSON.parse(shed.text) as { error: { code: string } }).error.code, 'request_shed');
    assert.match(shed.headers.get('retry-after') ?? '', /^[1-9]\d*$/);

    const answers = Promise.all([
      post(base, chatBody('vip', 'important'), { 'x-request-id': 'vip-1' }),
      // No InferenceModel names "mymodel": Standard, never shed.
      post(base, chatBody('mymodel', 'ordinary'), { 'x-request-id': 'plain-1' }),
    ]);
    await waitFor('both queued', async () => {
      const q = (await debugPools(gateway)).find((p) => p.pool === 'default/busy')?.queued;
      return q?.['Critical'] === 1 && q['Standard'] === 1;
    });
    for (const l of loads) l.stop();
    const [vip, plain] = await answers;
    assert.equal(vip.status, 200, vip.text);
    assert.equal(plain.status, 200, plain.text);
    const [lv, lp, ls] = await Promise.all([handled(gateway, 'vip-1'), handled(gateway, 'plain-1'), handled(gateway, 'shed-1')]);
    assert.equal(lv['criticality'], 'Critical');
    assert.ok(Number(lv['queueWaitMs']) > 0, `the Critical request waited for capacity: ${JSON.stringify(lv)}`);
    assert.equal(lp['criticality'], 'Standard');
    assert.ok(Number(lp['queueWaitMs']) > 0, 'the unlabelled request was queued, not shed');
    assert.equal(ls['code'], 'request_shed');
    assert.equal(ls['status'], 429);
    await Promise.all(loads.map((l) => l.done));
  });

  test('a full queue refuses with 429; a wait past the TTL ends with 503, both with Retry-After', async () => {
    const loads = await saturate('small', ['q-0'], 8);
    const first = post(base, chatBody('std', 'first in line'), { 'x-pool': 'small', 'x-request-id': 'ttl-1' });
    await waitFor('one request queued', async () => (await debugPools(gateway)).find((p) => p.pool === 'default/small')?.queued['Standard'] === 1);
    const second = await post(base, chatBody('std', 'no room'), { 'x-pool': 'small' });
    assert.equal(second.status, 429);
    assert.equal((JSON.parse(second.text) as { error: { code: string } }).error.code, 'queue_full');
    assert.match(second.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    const timedOut = await first;
    assert.equal(timedOut.status, 503);
    assert.equal((JSON.parse(timedOut.text) as { error: { code: string } }).error.code, 'queue_timeout');
    assert.match(timedOut.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    for (const l of loads) l.stop();
    await Promise.all(loads.map((l) => l.done));
  });

  test('the admin port serves Prometheus metrics and the endpoint view', async () => {
    const r = await post(base, chatBody('mymodel', 'count me', { stream: true }), { 'x-request-id': 'metrics-1' });
    assert.equal(r.status, 200);
    assert.ok(!r.text.includes('"usage"'), 'the usage event the gateway asked for is not passed to a client that did not ask');
    const line = await handled(gateway, 'metrics-1');
    assert.ok(Number(line['completionTokens']) > 0 && Number(line['promptTokens']) > 0, `tokens from the stripped usage: ${JSON.stringify(line)}`);

    const text = await (await fetch(`http://127.0.0.1:${gateway.adminPort}/metrics`)).text();
    for (const name of [
      'infergate_requests_total',
      'infergate_time_to_first_token_seconds_bucket',
      'infergate_request_duration_seconds_count',
      'infergate_queue_wait_seconds_count',
      'infergate_scheduling_duration_seconds_count',
      'infergate_tokens_total',
      'infergate_queue_size',
      'infergate_endpoint_waiting_requests',
      'infergate_endpoint_kv_cache_usage',
      'infergate_endpoint_inflight_requests',
      'infergate_prefix_index_hit_ratio',
    ]) {
      assert.match(text, new RegExp(`^${name}`, 'm'), name);
    }
    assert.match(text, /^infergate_requests_total\{[^}]*code="request_shed"[^}]*\} [1-9]/m);
    assert.match(text, /^infergate_tokens_total\{[^}]*kind="completion"[^}]*\} [1-9]/m);
    const pools = await debugPools(gateway);
    assert.deepEqual(pools.map((p) => p.pool).sort(), ['default/busy', 'default/small']);
    assert.ok(pools.every((p) => p.endpoints.every((e) => e.healthy && e.metrics !== null)));
  });
});
