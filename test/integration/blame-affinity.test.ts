import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { chatJson, readAll } from '../support/fake-engines.js';
import { debugPools, gatewayForPools, poolYaml, post, startSmartEnv, type SmartEnv } from '../support/smart.js';

/**
 * Affinity (prefix here; LoRA and session alike) sends one client's requests to one pod. A client's
 * own bad requests (the servers' request-validation 4xx) and its aborts then land on that pod alone:
 * none of them may back off or eject it (docs/routing.md, "Passive health").
 */

const PREFIX = { 'inference.networking.x-k8s.io/routing-strategy': 'PREFIX_CACHE' };
const IDLE_METRICS = ['vllm:num_requests_running{model_name="mymodel"} 0', 'vllm:num_requests_waiting{model_name="mymodel"} 0', 'vllm:kv_cache_usage_perc{model_name="mymodel"} 0', ''].join('\n');
const TRITON_422 = '{"error":"Unprocessable Entity: sampling parameter \'temperature\' must be non-negative"}';

/** A ~4 KB system prompt, one per member so each concentrates on a pod of its own choosing. */
function systemPrompt(tag: string): string {
  return `You are assistant ${tag}. ` + Array.from({ length: 400 }, (_, i) => `rule ${i} of ${tag}.`).join(' ');
}

function body(tag: string, extra: Record<string, unknown>): string {
  return JSON.stringify({ model: 'mymodel', messages: [{ role: 'system', content: systemPrompt(tag) }, { role: 'user', content: 'hello' }], ...extra });
}

describe('a client\'s bad requests and aborts, concentrated on one pod by prefix affinity, back off no one', { timeout: 120_000 }, () => {
  let env: SmartEnv;
  const fakes: Server[] = [];

  before(async () => {
    env = await startSmartEnv(
      [
        { name: 'sim-0', host: '127.0.6.100', labels: { pool: 'v' } },
        { name: 'sim-1', host: '127.0.6.101', labels: { pool: 'v' } },
      ],
      (port, pods) => {
        // Two Triton-like servers in pool `t`: 422 for a request whose parameters they reject, else an answer.
        for (const [name, host] of [['tri-0', '127.0.6.102'], ['tri-1', '127.0.6.103']] as const) {
          fakes.push(
            createServer((req, res) => {
              void readAll(req).then((b) => {
                if (req.url === '/metrics') return res.end(IDLE_METRICS);
                if (req.url === '/v1/models') return res.end(JSON.stringify({ object: 'list', data: [{ id: 'mymodel', object: 'model' }] }));
                if (b.includes('"temperature":-1')) {
                  res.writeHead(422, { 'content-type': 'application/json', 'x-sim-pod': name });
                  return res.end(TRITON_422);
                }
                res.writeHead(200, { 'content-type': 'application/json', 'x-sim-pod': name });
                res.end(chatJson('mymodel'));
              });
            }).listen(pods.port, host),
          );
        }
        const tritons = ['tri-0', 'tri-1'].map((n, i) => `---\napiVersion: v1\nkind: Pod\nmetadata: {name: ${n}, labels: {app: sim, pool: t}}\nstatus: {phase: Running, podIP: 127.0.6.10${2 + i}}\n`).join('');
        return gatewayForPools(port, ['v', 't']) + poolYaml('v', pods.port, PREFIX) + poolYaml('t', pods.port, PREFIX) + pods.podsYaml() + tritons;
      },
    );
    // Normal traffic first, as the user's trial had: both pods of each pool have served.
    for (let i = 0; i < 30; i++) {
      assert.equal((await post(env.base, body(`normal ${i}`, { max_tokens: 4 }))).status, 200);
      assert.equal((await post(env.base, body(`normal ${i}`, { max_tokens: 4 }), { 'x-pool': 't' })).status, 200);
    }
  });

  after(async () => {
    await env?.close();
    await Promise.all(fakes.map((f) => new Promise((r) => f.close(r))));
  });

  const noneSetAside = async (): Promise<void> => {
    assert.ok(!env.gateway.logs.some((l) => l.msg?.startsWith('endpoint backed off') === true || l.msg?.startsWith('endpoint ejected') === true), 'no pod backed off or ejected');
    for (const p of await debugPools(env.gateway)) for (const e of p.endpoints) assert.equal((e as unknown as { backoffForMs: number }).backoffForMs, 0, `${e.name} not backed off`);
  };

  const MEMBERS: ReadonlyArray<{ name: string; extra: Record<string, unknown>; status: number; pool?: string }> = [
    { name: 'max_tokens -1 (vLLM 400)', extra: { max_tokens: -1 }, status: 400 },
    { name: 'context too long (vLLM 400)', extra: { max_tokens: 10_000_000 }, status: 400 },
    { name: 'a sampling parameter a Triton-like server refuses (422)', extra: { max_tokens: 4, temperature: -1 }, status: 422, pool: 't' },
  ];

  for (const m of MEMBERS) {
    test(`${m.name}: 15 of them, each the server's own answer, and no pod set aside`, async () => {
      const pods = new Map<string | null, number>();
      for (let i = 0; i < 15; i++) {
        const r = await post(env.base, body(m.name, m.extra), m.pool === undefined ? {} : { 'x-pool': m.pool });
        assert.equal(r.status, m.status, r.text);
        pods.set(r.pod, (pods.get(r.pod) ?? 0) + 1);
      }
      // Affinity did concentrate them (the case the error-share comparison used to misjudge).
      assert.ok(Math.max(...pods.values()) >= 10, `concentrated: ${JSON.stringify([...pods])}`);
      await noneSetAside();
    });
  }

  test('clients leaving mid-stream move no pod\'s error share, and set none aside', async () => {
    const shares = async (): Promise<string> => JSON.stringify((await debugPools(env.gateway)).flatMap((p) => p.endpoints.map((e) => [e.name, (e as unknown as { errorShare: number }).errorShare])));
    // A share to move: the misconfigured-server evidence (a 404 for the pool's model) on no pod yet, so
    // compare the whole view before and after.
    const before = await shares();
    for (let i = 0; i < 15; i++) {
      const ac = new AbortController();
      const r = await fetch(`${env.base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body('leaving', { max_tokens: 200, stream: true }), signal: ac.signal });
      assert.equal(r.status, 200);
      const reader = r.body?.getReader();
      await reader?.read();
      ac.abort();
      await reader?.cancel().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await shares(), before);
    await noneSetAside();
  });
});
