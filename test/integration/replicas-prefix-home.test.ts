import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { configDir } from '../support/config.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';
import { debugPools, gatewayForPools, handled, PATIENT_SCRAPE_MS, poolYaml, startPods, waitFor, type SimPods } from '../support/smart.js';

const PREFIX = { 'inference.networking.x-k8s.io/routing-strategy': 'PREFIX_CACHE' };

/**
 * Two active gateway replicas over the same pods, as two replicas of one Deployment behind a
 * round-robin load balancer: neither sees the other's requests, so neither's prefix index knows
 * where the other put a group. The prefix home makes them agree anyway.
 */
describe('two gateway replicas: a shared-prefix group lands on one pod whichever replica routes it (prefix home)', { timeout: 180_000 }, () => {
  let pods: SimPods;
  const replicas: Array<{ gateway: GatewayProcess; base: string; remove: () => Promise<void> }> = [];

  before(async () => {
    const common = { model: ['mymodel', '/models/Qwen3-32B'], profile: 'llama-3.1-8b-h100', timeScale: 20 } as const;
    pods = await startPods([0, 1, 2, 3].map((i) => ({ name: `r-${i}`, host: `127.0.3.${i + 2}`, labels: { pool: 'shared' }, ...common })));
    for (let r = 0; r < 2; r++) {
      const port = await freePort();
      const cfg = await configDir(gatewayForPools(port, ['shared']) + poolYaml('shared', pods.port, PREFIX) + pods.podsYaml());
      const gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-timeout', String(PATIENT_SCRAPE_MS), '--metrics-staleness', String(PATIENT_SCRAPE_MS)]);
      replicas.push({ gateway, base: `http://127.0.0.1:${port}`, remove: cfg.remove });
      await waitFor('first scrapes', async () => (await debugPools(gateway)).every((p) => p.endpoints.every((e) => e.metrics !== null)), 20_000);
    }
  });

  after(async () => {
    for (const r of replicas) {
      await r.gateway.stop();
      await r.remove();
    }
    await pods?.close();
  });

  test('each group stays on one pod across both replicas, and the groups spread over the pool', async () => {
    const groups = 12;
    const users = 4;
    const system = (g: number): string => `You are assistant number ${g}. ${'Follow these long instructions carefully. '.repeat(40)}`;
    const body = (g: number, u: number): string =>
      JSON.stringify({ model: 'mymodel', max_tokens: 8, messages: [{ role: 'system', content: system(g) }, { role: 'user', content: `User ${u} asks question ${u * 7 + g}?` }] });
    // One at a time, a group's users alternate between the replicas: its first request is placed
    // by one replica, its next by the other, which has never seen the group.
    const replicaOf = (g: number, u: number): (typeof replicas)[number] => replicas[(g + u) % 2] as (typeof replicas)[number];
    for (let u = 0; u < users; u++) {
      for (let g = 0; g < groups; g++) {
        const r = replicaOf(g, u);
        const res = await fetch(`${r.base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': `g${g}-u${u}` }, body: body(g, u) });
        assert.equal(res.status, 200, await res.text());
      }
    }
    const podsOfGroup: string[][] = [];
    for (let u = 0; u < users; u++) {
      for (let g = 0; g < groups; g++) {
        const line = await handled(replicaOf(g, u).gateway, `g${g}-u${u}`);
        (podsOfGroup[g] ??= []).push(String(line['pod']));
      }
    }
    podsOfGroup.forEach((served, g) => assert.equal(new Set(served).size, 1, `group ${g} stayed on one pod: ${served.join(',')}`));
    // Homes are spread by hash: 12 groups all on one of 4 pods has probability 4^-11.
    assert.ok(new Set(podsOfGroup.map((p) => p[0])).size >= 2, `groups spread: ${podsOfGroup.map((p) => p[0]).join(',')}`);
  });
});
