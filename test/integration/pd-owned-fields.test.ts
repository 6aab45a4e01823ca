import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { ServerResponse } from 'node:http';
import { configDir, gatewayAndRoute } from '../support/config.js';
import { answer, startFakeEngines, type FakeEngines, type SeenRequest } from '../support/fake-engines.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';

/**
 * SSRF through the body, in prefill/decode pools: whatever `kv_transfer_params` or bootstrap
 * fields a client sends, the prefill and decode servers see only the gateway's (its chosen
 * prefill, the prefill's own answer), on every path: disaggregated, and vLLM's decode-alone
 * fallbacks. Fake servers record what they were sent.
 */
const HOSTILE = '169.254.169.254';
const hostileFields = {
  kv_transfer_params: { do_remote_prefill: true, do_remote_decode: false, remote_host: HOSTILE, remote_port: 80, remote_engine_id: 'evil', remote_block_ids: [1, 2] },
  bootstrap_host: HOSTILE,
  bootstrap_port: 80,
  bootstrap_room: 12345,
  bootstrap_pair_key: 'evil',
  decode_tp_size: 64,
  disagg_prefill_dp_rank: 3,
};

function pdYaml(port: number, podPort: number, runtime: 'vllm' | 'sglang', prefill: string, decode: string): string {
  return `${gatewayAndRoute(port, ['  - matches: [{path: {type: PathPrefix, value: /}}]\n    backendRefs: [{group: inference.networking.k8s.io, kind: InferencePool, name: pd}]'])}apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {name: pd}
spec: {selector: {matchLabels: {app: pd}}, targetPorts: [{number: ${podPort}}]}
---
apiVersion: inferenceextension.alibabacloud.com/v1alpha1
kind: InferenceTrafficPolicy
metadata: {name: pd}
spec:
  poolRef: {name: pd}
  modelServerRuntime: ${runtime}
  profile: {pd: {pdRoleLabelName: role, kvTransfer: {bootstrapPort: 34000}, trafficPolicy: {prefixCache: {mode: estimate}}, prefillPolicyRef: prefixCache}}
---
apiVersion: v1
kind: Pod
metadata: {name: prefill-0, labels: {app: pd, role: prefill}}
status: {phase: Running, podIP: ${prefill}}
---
apiVersion: v1
kind: Pod
metadata: {name: decode-0, labels: {app: pd, role: decode}}
status: {phase: Running, podIP: ${decode}}
`;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

/** A vLLM prefill: answers with its own kv_transfer_params, or 503 / no params when the prompt asks. */
function vllmPrefill(_req: unknown, res: ServerResponse, seen: SeenRequest): void {
  const text = seen.body.toString();
  if (text.includes('FAIL-503')) return json(res, 503, { error: { message: 'busy' } });
  const params = text.includes('NO-PARAMS') ? {} : { kv_transfer_params: { do_remote_prefill: true, do_remote_decode: false, remote_engine_id: 'engine-p', remote_block_ids: [7], remote_host: '127.0.17.2', remote_port: 5600 } };
  json(res, 200, { id: 'p', object: 'chat.completion', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'x' }, finish_reason: 'length' }], usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 }, ...params });
}

async function startPd(runtime: 'vllm' | 'sglang', prefill: string, decode: string): Promise<{ fakes: FakeEngines; gateway: GatewayProcess; base: string; close: () => Promise<void> }> {
  const fakes = await startFakeEngines({ [prefill]: runtime === 'vllm' ? vllmPrefill : (_q, res, seen) => answer(res, seen), [decode]: (_q, res, seen) => answer(res, seen) });
  const port = await freePort();
  const cfg = await configDir(pdYaml(port, fakes.port, runtime, prefill, decode));
  const gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-interval', '0']);
  return {
    fakes,
    gateway,
    base: `http://127.0.0.1:${port}`,
    close: async () => {
      await gateway.stop();
      await fakes.close();
      await cfg.remove();
    },
  };
}

const long = (tag: string): string => `${tag} ${'Explain each step of the reasoning in detail. '.repeat(100)}`;

/** Every body the fakes saw for request `id` carries none of the client's values. */
function assertClean(fakes: FakeEngines, id: string, legs: number): SeenRequest[] {
  const seen = fakes.seen.filter((s) => s.requestId === id);
  assert.equal(seen.length, legs, `${id}: ${legs} leg(s) reached a server`);
  for (const s of seen) {
    const text = s.body.toString();
    assert.ok(!text.includes(HOSTILE), `${id} on ${s.host}: no client address`);
    assert.ok(!text.includes('evil'), `${id} on ${s.host}: no client engine id or pair key`);
    const body = JSON.parse(text) as Record<string, unknown>;
    for (const key of ['bootstrap_pair_key', 'decode_tp_size', 'disagg_prefill_dp_rank']) assert.equal(key in body, false, `${id} on ${s.host}: ${key} removed`);
  }
  return seen;
}

describe('P/D pools: only the gateway sets the fields that steer a server\'s KV traffic', { timeout: 120_000 }, () => {
  describe('vLLM (NIXL)', () => {
    let env: Awaited<ReturnType<typeof startPd>>;
    before(async () => {
      env = await startPd('vllm', '127.0.17.1', '127.0.17.2');
    });
    after(async () => {
      await env?.close();
    });
    const send = async (id: string, content: string, path = '/v1/chat/completions'): Promise<number> => {
      const body = path.endsWith('chat/completions') ? { model: 'm', max_tokens: 5, messages: [{ role: 'user', content }], ...hostileFields } : { model: 'm', max_tokens: 5, prompt: content, ...hostileFields };
      const r = await fetch(`${env.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id }, body: JSON.stringify(body) });
      await r.text();
      return r.status;
    };

    test('disaggregated: the prefill gets the gateway\'s remote-decode request, the decode the prefill\'s own params', async () => {
      for (const path of ['/v1/chat/completions', '/v1/completions']) {
        const id = `vllm-pd-${path}`;
        assert.equal(await send(id, long(path), path), 200);
        const [p, d] = assertClean(env.fakes, id, 2);
        assert.deepEqual((JSON.parse(String(p?.body)) as Record<string, unknown>)['kv_transfer_params'], { do_remote_decode: true, do_remote_prefill: false, remote_engine_id: null, remote_block_ids: null, remote_host: null, remote_port: null });
        assert.deepEqual((JSON.parse(String(d?.body)) as { kv_transfer_params: { remote_engine_id: string } }).kv_transfer_params.remote_engine_id, 'engine-p');
      }
    });

    test('decode alone after a prefill 5xx, or a prefill answer without params: the decode gets no kv_transfer_params at all', async () => {
      for (const marker of ['FAIL-503', 'NO-PARAMS']) {
        const id = `vllm-alone-${marker}`;
        assert.equal(await send(id, long(marker)), 200);
        const [, d] = assertClean(env.fakes, id, 2);
        assert.equal('kv_transfer_params' in (JSON.parse(String(d?.body)) as Record<string, unknown>), false);
      }
    });

    test('decided to stay on decode (its prompt is cached there): the decode gets no kv_transfer_params', async () => {
      const prompt = long('repeat');
      assert.equal(await send('vllm-warm-1', prompt), 200);
      assert.equal(await send('vllm-warm-2', prompt), 200);
      const seen = env.fakes.seen.filter((s) => s.requestId === 'vllm-warm-2');
      assert.ok(seen.length >= 1);
      assertClean(env.fakes, 'vllm-warm-2', seen.length);
      if (seen.length === 1) assert.equal('kv_transfer_params' in (JSON.parse(String(seen[0]?.body)) as Record<string, unknown>), false);
    });
  });

  describe('SGLang', () => {
    let env: Awaited<ReturnType<typeof startPd>>;
    before(async () => {
      env = await startPd('sglang', '127.0.17.11', '127.0.17.12');
    });
    after(async () => {
      await env?.close();
    });

    test('both legs get the gateway\'s bootstrap host, port and room; chat, completions batches and /generate alike', async () => {
      const bodies: Array<[string, Record<string, unknown>, number]> = [
        ['/v1/chat/completions', { model: 'm', max_tokens: 5, messages: [{ role: 'user', content: long('chat') }] }, 1],
        ['/v1/completions', { model: 'm', max_tokens: 5, prompt: [long('a'), long('b')] }, 2],
        ['/generate', { model: 'm', text: [long('g1'), long('g2'), long('g3')], sampling_params: { max_new_tokens: 5 } }, 3],
      ];
      for (const [path, body, count] of bodies) {
        const id = `sglang-${path}`;
        const r = await fetch(`${env.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': id }, body: JSON.stringify({ ...body, ...hostileFields }) });
        await r.text();
        assert.equal(r.status, 200, path);
        const seen = assertClean(env.fakes, id, 2);
        for (const s of seen) {
          const sent = JSON.parse(String(s.body)) as Record<string, unknown>;
          const many = count > 1;
          assert.deepEqual(sent['bootstrap_host'], many ? Array(count).fill('127.0.17.11') : '127.0.17.11', `${path} on ${s.host}`);
          assert.deepEqual(sent['bootstrap_port'], many ? Array(count).fill(34000) : 34000);
          assert.notEqual(sent['bootstrap_room'], 12345);
          assert.equal('kv_transfer_params' in sent, false);
        }
      }
    });
  });
});
