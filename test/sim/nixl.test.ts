import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { vllmDecodeBody, vllmPrefillBody } from '../../src/gateway/pd-body.js';
import { generateAnswer, renderChat, tokenize } from '../../src/sim/engine/index.js';
import { kvTransferMsPerToken, parseKvTransferParams, PROFILES, type RunningSimServer } from '../../src/sim/index.js';
import { freePort } from '../support/ports.js';
import { assertDecodeDropped, post, scrape, sseEvents, tinyServer, until, type Completion } from './helpers.js';

/*
 * vLLM's NixlConnector P/D face (src/sim/nixl.ts). The bodies come from the gateway's own
 * builders (src/gateway/pd-body.ts), so these tests hold the simulator to the dialect the gateway
 * speaks: prefill body → answer with kv_transfer_params → decode body with those parameters.
 */

/** Each test's own prompt (a new one misses the prefix cache, so every prompt token is computed). */
let asked = 0;
const ask = (): Array<{ role: string; content: string }> => [{ role: 'user', content: `Plan trip number ${++asked} to Beijing for a family of four, please.` }];
const messages = ask();
const promptTokens = tokenize(renderChat(messages)).length;
const blocksOfPrompt = Math.ceil(promptTokens / 16);

interface VllmError {
  error: { message: string; type: string; param: null; code: number };
}

interface KvParams {
  do_remote_prefill: boolean;
  do_remote_decode: boolean;
  remote_engine_id: string;
  remote_block_ids: number[];
  remote_host: string;
  remote_port: number;
  tp_size: number;
}

type PrefillAnswer = Completion & { kv_transfer_params?: KvParams | null };

/** What the gateway forwards for a client's body (the prefill and decode bodies derive from it); a fresh prompt of `promptTokens` each time. */
function forwarded(extra: Record<string, unknown> = {}): { body: Buffer; messages: Array<{ role: string; content: string }> } {
  const m = ask();
  assert.equal(tokenize(renderChat(m)).length, promptTokens);
  return { body: Buffer.from(JSON.stringify({ model: 'mymodel', messages: m, max_tokens: 12, ignore_eos: true, ...extra })), messages: m };
}

async function prefillOn(server: RunningSimServer, body: Buffer): Promise<{ status: number; answer: PrefillAnswer; raw: Buffer; headers: Headers }> {
  const r = await post(server, '/v1/chat/completions', body.toString('utf8'));
  const raw = Buffer.from(await r.arrayBuffer());
  return { status: r.status, answer: JSON.parse(raw.toString('utf8')) as PrefillAnswer, raw, headers: r.headers };
}

describe('vLLM P/D (NixlConnector)', () => {
  let prefill: RunningSimServer;
  let decode: RunningSimServer;

  before(async () => {
    prefill = await tinyServer({ runtime: 'vllm', name: 'prefill-0', pdRole: 'prefill', sideChannelPort: 0 });
    decode = await tinyServer({ runtime: 'vllm', name: 'decode-0', pdRole: 'decode' });
  });

  after(async () => {
    await prefill?.close();
    await decode?.close();
  });

  test('the gateway’s flow: the prefill answers one token and kv_transfer_params, the decode reads the KV and answers (streamed and not) without computing the prompt', async () => {
    for (const stream of [false, true]) {
      const { body: client, messages } = forwarded(stream ? { stream: true, stream_options: { include_usage: true } } : {});
      const before = { decode: decode.engine.stats(), prefill: prefill.engine.stats() };
      const p = await prefillOn(prefill, vllmPrefillBody(client));
      assert.equal(p.status, 200);
      assert.equal(p.answer.choices[0]?.finish_reason, 'length');
      assert.equal(p.answer.usage.completion_tokens, 1);
      const params = p.answer.kv_transfer_params as KvParams;
      assert.deepEqual(
        { ...params, remote_engine_id: typeof params.remote_engine_id, remote_block_ids: params.remote_block_ids.length },
        { do_remote_prefill: true, do_remote_decode: false, remote_engine_id: 'string', remote_block_ids: blocksOfPrompt, remote_host: '127.0.0.1', remote_port: prefill.sideChannelPort, tp_size: 1 },
      );
      assert.match(params.remote_engine_id, /^[0-9a-f-]{36}$/, 'a UUID, as vLLM’s engine_id');
      assert.equal(prefill.engine.stats().heldKvBlocks, blocksOfPrompt, 'the prefill holds the prompt’s KV until it is read');
      assert.equal(prefill.engine.stats().prefillTokensTotal - before.prefill.prefillTokensTotal, promptTokens, 'the prefill computed the prompt');

      const decodeBody = vllmDecodeBody(client, p.raw);
      assert.ok(decodeBody !== undefined, 'the gateway found the parameters in the answer');
      const d = await post(decode, '/v1/chat/completions', decodeBody.toString('utf8'));
      assert.equal(d.status, 200);
      assert.equal(d.headers.get('x-sim-pod'), 'decode-0');
      const expected = generateAnswer(tokenize(renderChat(messages)), 'mymodel', 12, true).texts.join('');
      if (stream) {
        const events = sseEvents(await d.text());
        assert.equal(events.at(-1), '[DONE]');
        const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { choices: Array<{ delta: { content?: string } }>; usage?: { completion_tokens: number } });
        assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), expected);
        assert.equal(chunks.at(-1)?.usage?.completion_tokens, 12);
      } else {
        const body = (await d.json()) as Completion;
        assert.equal(body.choices[0]?.message?.content, expected);
        assert.equal(Number(d.headers.get('x-sim-kv-transfer-ms')), Math.round(promptTokens * kvTransferMsPerToken(PROFILES.tiny.kvBytesPerToken, 400) * 1000) / 1000);
      }
      const after = decode.engine.stats();
      assert.equal(after.prefillTokensTotal, before.decode.prefillTokensTotal, 'no prompt token computed on the decode engine');
      assert.equal(after.remotePrefillTokensTotal - before.decode.remotePrefillTokensTotal, promptTokens);
      assert.equal(prefill.engine.stats().heldKvBlocks, 0, 'read, the KV is freed on the prefill');
    }
  });

  test('the same blocks cannot be read twice: the second decode answers 500 in vLLM’s shape', async () => {
    const client = forwarded({ max_tokens: 2 }).body;
    const p = await prefillOn(prefill, vllmPrefillBody(client));
    const body = (vllmDecodeBody(client, p.raw) as Buffer).toString('utf8');
    assert.equal((await post(decode, '/v1/chat/completions', body)).status, 200);
    const again = await post(decode, '/v1/chat/completions', body);
    assert.equal(again.status, 500);
    const e = (await again.json()) as VllmError;
    assert.equal(e.error.type, 'InternalServerError');
    assert.equal(e.error.code, 500);
    assert.match(e.error.message, /^KV transfer from 127\.0\.0\.1:\d+ \(engine [0-9a-f-]+\) failed: blocks \[.*\] are not held on prefill-0: never offered, read already/);
  });

  test('requests without kv_transfer_params run whole on either role (a vLLM instance is a full engine)', async () => {
    for (const server of [prefill, decode]) {
      const before = server.engine.stats().prefillTokensTotal;
      const r = await post(server, '/v1/chat/completions', { model: 'mymodel', messages: forwarded().messages, max_tokens: 5, ignore_eos: true });
      assert.equal(r.status, 200);
      const body = (await r.json()) as PrefillAnswer;
      assert.equal(body.usage.completion_tokens, 5);
      assert.equal(body.kv_transfer_params, undefined);
      assert.equal(server.engine.stats().prefillTokensTotal - before, promptTokens, `${server.name} computed the prompt itself`);
    }
    // Parameters with neither flag set are no disaggregation either.
    const none = await post(decode, '/v1/completions', { model: 'mymodel', prompt: 'plain', max_tokens: 2, kv_transfer_params: { do_remote_decode: false, do_remote_prefill: false } });
    assert.equal(none.status, 200);
  });

  test('bad kv_transfer_params, the wrong role and a streamed producer request are refused with 400 in vLLM’s shape', async () => {
    const remote = { do_remote_prefill: true, remote_engine_id: 'e', remote_block_ids: [1, 2], remote_host: '127.0.0.1', remote_port: 5600 };
    const cases: Array<[RunningSimServer, Record<string, unknown>, RegExp]> = [
      [decode, { kv_transfer_params: 'yes' }, /kv_transfer_params must be an object/],
      [decode, { kv_transfer_params: { do_remote_prefill: 'true' } }, /do_remote_prefill must be a boolean/],
      [decode, { kv_transfer_params: { ...remote, do_remote_decode: true } }, /cannot both be true/],
      [decode, { kv_transfer_params: { ...remote, remote_engine_id: null } }, /remote_engine_id/],
      [decode, { kv_transfer_params: { ...remote, remote_block_ids: [] } }, /remote_block_ids must be a list of 1 to 64 block ids/],
      [decode, { kv_transfer_params: { ...remote, remote_block_ids: Array.from({ length: 65 }, (_, i) => i) } }, /remote_block_ids/],
      [decode, { kv_transfer_params: { ...remote, remote_block_ids: [1, -2] } }, /remote_block_ids/],
      [decode, { kv_transfer_params: { ...remote, remote_host: '' } }, /remote_host/],
      [decode, { kv_transfer_params: { ...remote, remote_port: 70000 } }, /remote_port/],
      [decode, { kv_transfer_params: { ...remote, tp_size: 0 } }, /tp_size/],
      [decode, { kv_transfer_params: { do_remote_decode: true } }, /this server is a decode instance/],
      [prefill, { kv_transfer_params: remote }, /this server is a prefill instance/],
      [prefill, { stream: true, kv_transfer_params: { do_remote_decode: true } }, /needs stream: false/],
    ];
    for (const [server, extra, message] of cases) {
      const r = await post(server, '/v1/completions', { model: 'mymodel', prompt: 'x', max_tokens: 1, ...extra });
      assert.equal(r.status, 400, JSON.stringify(extra));
      const e = (await r.json()) as VllmError;
      assert.equal(e.error.type, 'BadRequestError');
      assert.match(e.error.message, message);
    }
    assert.equal(prefill.stats().inFlight + decode.stats().inFlight, 0);
    assert.equal(prefill.engine.stats().heldKvBlocks, 0);
  });

  test('parseKvTransferParams: absent, produce, consume (IPv6 host without brackets), bounded', () => {
    assert.deepEqual(parseKvTransferParams({}, 8), { kind: 'none' });
    assert.deepEqual(parseKvTransferParams({ kv_transfer_params: null }, 8), { kind: 'none' });
    assert.deepEqual(parseKvTransferParams({ kv_transfer_params: { do_remote_decode: true, do_remote_prefill: false, remote_engine_id: null } }, 8), { kind: 'produce' });
    assert.deepEqual(parseKvTransferParams({ kv_transfer_params: { do_remote_prefill: true, remote_engine_id: 'e', remote_block_ids: [3], remote_host: '[::1]', remote_port: 1, tp_size: 2 } }, 8), {
      kind: 'consume',
      remote: { engineId: 'e', blockIds: [3], host: '::1', port: 1, tpSize: 2 },
    });
    assert.equal(parseKvTransferParams({ kv_transfer_params: { do_remote_prefill: true, remote_engine_id: 'x'.repeat(257), remote_block_ids: [3], remote_host: 'h', remote_port: 1 } }, 8).kind, 'invalid');
  });
});

describe('vLLM P/D failures', () => {
  test('KV nobody reads is freed after kvAbortTimeoutMs (modelled); a later read answers 500', async () => {
    const prefill = await tinyServer({ runtime: 'vllm', name: 'prefill-t', pdRole: 'prefill', sideChannelPort: 0, kvAbortTimeoutMs: 2_000 });
    const decode = await tinyServer({ runtime: 'vllm', name: 'decode-t', pdRole: 'decode' });
    try {
      const client = forwarded({ max_tokens: 2 }).body;
      const p = await prefillOn(prefill, vllmPrefillBody(client));
      assert.equal(prefill.engine.stats().heldKvBlocks, blocksOfPrompt);
      // 2 s of modelled time at 20× is 100 ms of wall clock; wait for the outcome, not the clock.
      await until('the unread KV to be freed', () => (prefill.engine.stats().heldKvBlocks === 0 ? true : undefined), 4_000);
      const d = await post(decode, '/v1/chat/completions', (vllmDecodeBody(client, p.raw) as Buffer).toString('utf8'));
      assert.equal(d.status, 500);
      assert.match(((await d.json()) as VllmError).error.message, /freed after 2000 ms \(VLLM_NIXL_ABORT_REQUEST_TIMEOUT\)/);
      assertDecodeDropped(decode);
    } finally {
      await prefill.close();
      await decode.close();
    }
  });

  test('an unreachable side channel or another engine id fails the decode at once', async () => {
    const prefill = await tinyServer({ runtime: 'vllm', name: 'prefill-u', pdRole: 'prefill', sideChannelPort: 0 });
    const decode = await tinyServer({ runtime: 'vllm', name: 'decode-u', pdRole: 'decode' });
    try {
      const client = forwarded({ max_tokens: 2 }).body;
      const p = await prefillOn(prefill, vllmPrefillBody(client));
      const params = p.answer.kv_transfer_params as KvParams;
      const send = (kv: Partial<KvParams>): Promise<Response> => post(decode, '/v1/chat/completions', { ...(JSON.parse(client.toString('utf8')) as object), kv_transfer_params: { ...params, ...kv } });
      const unreachable = await send({ remote_port: await freePort() });
      assert.equal(unreachable.status, 500);
      assert.match(((await unreachable.json()) as VllmError).error.message, /cannot reach the side channel \(ECONNREFUSED\)/);
      const stranger = await send({ remote_engine_id: '00000000-0000-0000-0000-000000000000' });
      assert.equal(stranger.status, 500);
      assert.match(((await stranger.json()) as VllmError).error.message, /this side channel serves engine [0-9a-f-]+, not 00000000-/);
      assert.equal(prefill.engine.stats().heldKvBlocks, blocksOfPrompt, 'the blocks still wait for their reader');
      assert.equal((await send({})).status, 200, 'which still gets them');
      assert.equal(prefill.engine.stats().heldKvBlocks, 0);
    } finally {
      await prefill.close();
      await decode.close();
    }
  });

  test('a decode client that leaves during the read frees the prefill’s KV', async () => {
    // 0.001 Gb/s: 32 KiB per token takes 262 modelled ms, so the read lasts long enough to leave in.
    const prefill = await tinyServer({ runtime: 'vllm', name: 'prefill-a', pdRole: 'prefill', sideChannelPort: 0, kvLinkGbps: 0.001 });
    const decode = await tinyServer({ runtime: 'vllm', name: 'decode-a', pdRole: 'decode' });
    try {
      const client = forwarded({ max_tokens: 2 }).body;
      const p = await prefillOn(prefill, vllmPrefillBody(client));
      const controller = new AbortController();
      const d = post(decode, '/v1/chat/completions', (vllmDecodeBody(client, p.raw) as Buffer).toString('utf8'), {}, controller.signal).catch(() => undefined);
      await until('the decode leg to read', () => (decode.engine.stats().awaitingKv === 1 ? true : undefined));
      // vLLM keeps a request waiting for remote KV in its waiting queue, and counts it there.
      assert.match(await scrape(decode), /^vllm:num_requests_waiting\{[^}]*\} 1\.0$/m);
      controller.abort();
      await d;
      await until('the KV to be freed', () => (prefill.engine.stats().heldKvBlocks === 0 ? true : undefined), 4_000);
      await until('the decode abort to be counted', () => (decode.stats().aborted === 1 ? true : undefined));
      assertDecodeDropped(decode);
    } finally {
      await prefill.close();
      await decode.close();
    }
  });

  test('pdRole needs runtime sglang or vllm', async () => {
    await assert.rejects(tinyServer({ runtime: 'trtllm', pdRole: 'prefill' }), /pdRole needs runtime sglang .* or vllm/);
  });
});
