import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { GatewayProcess } from '../support/gateway-process.js';
import { runConcurrently } from '../support/stats.js';
import { gatewayForPools, handled, poolYaml, startSmartEnv, type SmartEnv } from '../support/smart.js';

const REQUESTS = fileURLToPath(new URL('../../../test/fixtures/requests/', import.meta.url));
const PREFIX = { 'inference.networking.x-k8s.io/routing-strategy': 'PREFIX_CACHE' };

describe('smart routing: prefix-cache aware (PREFIX_CACHE)', { timeout: 120_000 }, () => {
  let env: SmartEnv;
  let gateway: GatewayProcess;
  let base: string;

  before(async () => {
    const common = { model: ['mymodel', '/models/Qwen3-32B'], profile: 'llama-3.1-8b-h100', timeScale: 20 } as const;
    env = await startSmartEnv(
      [
        ...[0, 1, 2, 3].map((i) => ({ name: `p-${i}`, host: `127.0.2.${i + 2}`, labels: { pool: 'prefix' }, ...common })),
        // Few running slots, so one hot prefix builds a queue quickly.
        ...[0, 1, 2].map((i) => ({ name: `h-${i}`, host: `127.0.2.${i + 10}`, labels: { pool: 'hot' }, ...common, overrides: { maxNumSeqs: 2 } })),
      ],
      (port, pods) => gatewayForPools(port, ['prefix', 'hot']) + poolYaml('prefix', pods.port, PREFIX) + poolYaml('hot', pods.port, PREFIX) + pods.podsYaml(),
    );
    ({ gateway, base } = env);
  });

  after(async () => {
    await env?.close();
  });

  const send = async (body: string, id: string, pool = 'prefix'): Promise<{ status: number; text: string }> => {
    const r = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id, 'x-pool': pool }, body });
    return { status: r.status, text: await r.text() };
  };

  test("seed 002: round1 then round2 land on the same pod, as the Request Handled logs show, and round2 hits the pod's cache", async () => {
    const round1 = await readFile(`${REQUESTS}round1.json`, 'utf8');
    const round2 = await readFile(`${REQUESTS}round2.json`, 'utf8');
    for (let i = 0; i < 3; i++) {
      const r1 = await send(round1, `round1-${i}`);
      assert.equal(r1.status, 200);
      const r2 = await send(round2, `round2-${i}`);
      assert.equal(r2.status, 200);
      const [l1, l2] = await Promise.all([handled(gateway, `round1-${i}`), handled(gateway, `round2-${i}`)]);
      assert.equal(l2['pod'], l1['pod'], `round2 followed round1 (${String(l1['pod'])})`);
      // The client asked for usage (stream_options.include_usage), so it got the event, and the
      // server reported the prompt tokens it found in its own prefix cache.
      const usage = r2.text.split('\n\n').find((e) => e.includes('"usage"') && e.includes('"choices":[]'));
      assert.ok(usage !== undefined, 'the client that asked for usage keeps the usage event');
      assert.ok(Number(l2['cachedTokens']) > 0, `round2 was served partly from cache: ${JSON.stringify(l2)}`);
      assert.match(String(l2['prefixBlocks']), /^[1-9]\d*\/\d+$/);
    }
  });

  test('shared prefixes: each group stays on one pod while the groups spread over the pool', async () => {
    const groups = 8;
    const users = 6;
    const system = (g: number): string => `You are assistant number ${g}. ${'Follow these long instructions carefully. '.repeat(40)}`;
    const body = (g: number, u: number): string =>
      JSON.stringify({ model: 'mymodel', max_tokens: 8, messages: [{ role: 'system', content: system(g) }, { role: 'user', content: `User ${u} asks question ${u * 7 + g}?` }] });
    // First one request per group at once.
    await runConcurrently(groups, groups, async (g) => assert.equal((await send(body(g, 0), `group-${g}-0`)).status, 200));
    // Then the rest, interleaved, a few at a time.
    const rest = Array.from({ length: groups * (users - 1) }, (_, i) => ({ g: i % groups, u: 1 + Math.floor(i / groups) }));
    await runConcurrently(rest.length, 4, async (i) => {
      const { g, u } = rest[i] as { g: number; u: number };
      assert.equal((await send(body(g, u), `group-${g}-${u}`)).status, 200);
    });
    const podOf = new Map<number, string[]>();
    for (let g = 0; g < groups; g++) {
      const lines = await Promise.all(Array.from({ length: users }, (_, u) => handled(gateway, `group-${g}-${u}`)));
      podOf.set(g, lines.map((l) => String(l['pod'])));
    }
    for (const [g, served] of podOf) {
      const top = Math.max(...[...new Set(served)].map((p) => served.filter((x) => x === p).length));
      assert.ok(top >= users - 1, `group ${g} stayed on one pod: ${served.join(',')}`);
    }
    // New groups go to their prefix homes (rendezvous hashing, docs/routing.md §4) unless load
    // differs clearly, not to whichever pod is idlest: 8 groups are spread by hash, so all 4 pods
    // are not always used, but all on one pod has probability 4^-7.
    const homes = new Set([...podOf.values()].map((served) => served[0]));
    assert.ok(homes.size >= 2, `groups spread over the pool: ${[...homes].join(',')}`);
  });

  test('hot-spot guard: one very hot prefix does not pin all its traffic on one pod', async () => {
    const hot = JSON.stringify({ model: 'mymodel', max_tokens: 200, ignore_eos: true, messages: [{ role: 'system', content: 'The one popular system prompt. '.repeat(60) }, { role: 'user', content: 'Go.' }] });
    const n = 36;
    await runConcurrently(n, 12, async (i) => assert.equal((await send(hot, `hot-${i}`, 'hot')).status, 200));
    const lines = await Promise.all(Array.from({ length: n }, (_, i) => handled(gateway, `hot-${i}`)));
    const counts = new Map<string, number>();
    for (const l of lines) counts.set(String(l['pod']), (counts.get(String(l['pod'])) ?? 0) + 1);
    assert.ok(counts.size >= 2, `the hot prefix spread: ${JSON.stringify([...counts])}`);
    assert.ok(Math.max(...counts.values()) < n * 0.8, `no pod took 80% or more: ${JSON.stringify([...counts])}`);
  });
});
