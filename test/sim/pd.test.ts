import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateAnswer, renderChat, tokenize } from '../../src/sim/engine/index.js';
import { kvTransferMsPerToken, parseBootstrap, PROFILES, type RunningSimServer } from '../../src/sim/index.js';
import { freePort } from '../support/ports.js';
import { assertDecodeDropped, post, sseEvents, tinyServer, until, type Completion } from './helpers.js';

const messages = [{ role: 'user', content: 'Plan a three day trip to Beijing for a family of four, please.' }];
const promptTokens = tokenize(renderChat(messages)).length;
/** The tiny profile's 32 KiB per token over one 400 Gb/s link, per prompt token. */
const tinyMsPerToken = kvTransferMsPerToken(PROFILES.tiny.kvBytesPerToken, 400);
/** `x-sim-kv-transfer-ms` is rounded to the µs. */
const toUs = (ms: number): number => Math.round(ms * 1000) / 1000;

interface SglangError {
  object: string;
  message: string;
  type: string;
  code: number;
}

describe('SGLang prefill/decode disaggregation', () => {
  let prefill: RunningSimServer;
  let decode: RunningSimServer;
  let room = 1000;
  const legs = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    model: 'mymodel',
    messages,
    max_tokens: 12,
    ignore_eos: true,
    bootstrap_host: '127.0.0.1',
    bootstrap_port: prefill.bootstrapPort,
    bootstrap_room: room++,
    ...extra,
  });

  before(async () => {
    prefill = await tinyServer({ runtime: 'sglang', name: 'prefill-0', pdRole: 'prefill', bootstrapPort: 0 });
    decode = await tinyServer({ runtime: 'sglang', name: 'decode-0', pdRole: 'decode' });
  });

  after(async () => {
    await prefill?.close();
    await decode?.close();
  });

  test('success: prefill answers one token with finish_reason "length" after the transfer; decode streams the answer', async () => {
    const body = legs({ stream: true, stream_options: { include_usage: true } });
    const [p, d] = await Promise.all([post(prefill, '/v1/chat/completions', { ...body, stream: false, stream_options: undefined }), post(decode, '/v1/chat/completions', body)]);
    assert.equal(p.status, 200);
    assert.equal(p.headers.get('x-sim-pod'), 'prefill-0');
    assert.equal(Number(p.headers.get('x-sim-kv-transfer-ms')), toUs(promptTokens * tinyMsPerToken), '32 KiB per prompt token over 400 Gb/s');
    const pb = (await p.json()) as Completion;
    assert.equal(pb.choices[0]?.finish_reason, 'length');
    assert.equal(pb.usage.completion_tokens, 1);
    assert.equal(pb.usage.prompt_tokens, promptTokens);

    assert.equal(d.status, 200);
    assert.equal(d.headers.get('x-sim-pod'), 'decode-0');
    const events = sseEvents(await d.text());
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { choices: Array<{ delta: { content?: string }; finish_reason: string | null }>; usage?: { completion_tokens: number } });
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    const expected = generateAnswer(tokenize(renderChat(messages)), 'mymodel', 12, true);
    assert.equal(text, expected.texts.join(''), 'the decode server streams the whole answer');
    assert.equal(pb.choices[0]?.message?.content, expected.texts[0], 'the prefill token is the answer’s first');
    assert.equal(chunks.at(-1)?.usage?.completion_tokens, 12);

    // The decode engine did no prefill work: its prompt arrived as KV.
    assert.equal(decode.engine.stats().prefixQueriesTokens, promptTokens);
    assert.equal(decode.engine.stats().prefillTokensTotal, 0, 'no prompt token computed on the decode engine');
    assert.equal(decode.engine.stats().remotePrefillTokensTotal, promptTokens);
    assert.equal(prefill.engine.stats().generationTokensTotal, 1);
    assert.equal(prefill.engine.stats().prefillTokensTotal, promptTokens, 'the prefill engine computed the prompt');
    assert.equal(prefill.engine.stats().heldKvBlocks, 0, 'the prefill freed its KV once it was sent');
  });

  const LINK_GBPS = 0.00002;
  test('the KV link: prompt tokens × KV bytes per token over kvLinkGbps, and transfers from one prefill server queue on its link', async () => {
    const slow = await tinyServer({ runtime: 'sglang', name: 'prefill-slow', pdRole: 'prefill', bootstrapPort: 0, kvLinkGbps: LINK_GBPS, timeScale: 50 });
    try {
      // 32 KiB per token takes 13 s (modelled) on this link, a 4-token prompt's KV 52 s: 1 s of real
      // time at 50×. The two legs reach the server a few real ms apart (more on a busy machine), so
      // the second finds the first's transfer under way unless it arrives over half a second late.
      const perToken = kvTransferMsPerToken(PROFILES.tiny.kvBytesPerToken, LINK_GBPS);
      const leg = (r: number, prompt: string): Record<string, unknown> => ({ model: 'mymodel', prompt, max_tokens: 2, bootstrap_host: '127.0.0.1', bootstrap_port: slow.bootstrapPort, bootstrap_room: r });
      const first = leg(room++, 'aaaa bbbb cccc dddd');
      const second = leg(room++, 'aaaa bbbb cccc eeee');
      const results = await Promise.all([post(slow, '/v1/completions', first), post(decode, '/v1/completions', first), post(slow, '/v1/completions', second), post(decode, '/v1/completions', second)]);
      for (const r of results) assert.equal(r.status, 200);
      const tokens = tokenize('aaaa bbbb cccc dddd').length;
      assert.equal(tokenize('aaaa bbbb cccc eeee').length, tokens);
      const ms = [Number(results[0]?.headers.get('x-sim-kv-transfer-ms')), Number(results[2]?.headers.get('x-sim-kv-transfer-ms'))].sort((a, b) => a - b);
      assert.equal(ms[0], toUs(tokens * perToken), 'the first transfer takes its wire time');
      assert.ok((ms[1] ?? 0) > (ms[0] ?? 0) * 1.5, `the second waited for the first on the link: ${ms.join(', ')} ms`);
    } finally {
      await slow.close();
    }
  });

  test('either leg may come first, and the room may be a list of one (SGLang batch form)', async () => {
    const body = legs();
    const r = body['bootstrap_room'];
    const d = post(decode, '/v1/completions', { ...body, messages: undefined, prompt: 'decode first', bootstrap_room: [r], bootstrap_host: ['127.0.0.1'], bootstrap_port: [prefill.bootstrapPort] });
    await until('the decode leg to wait', () => (decode.stats().inFlight === 1 ? true : undefined));
    await new Promise((res) => setTimeout(res, 20));
    const p = await post(prefill, '/v1/completions', { ...body, messages: undefined, prompt: 'decode first' });
    assert.equal(p.status, 200);
    const db = (await (await d).json()) as Completion;
    assert.equal(db.usage.completion_tokens, 12);
  });

  test('a room already in use on the prefill server is refused', async () => {
    const body = legs();
    const first = post(prefill, '/v1/completions', { ...body, prompt: 'x', messages: undefined });
    await until('the first prefill leg', () => (prefill.stats().inFlight === 1 ? true : undefined));
    const second = await post(prefill, '/v1/completions', { ...body, prompt: 'x', messages: undefined });
    assert.equal(second.status, 400);
    assert.match(((await second.json()) as SglangError).message, /already in use/);
    // Computed, the first leg holds its prompt's KV on the prefill engine until the decode pulls it.
    await until('the first leg to hold its KV', () => (prefill.engine.stats().heldKvBlocks > 0 ? true : undefined));
    const d = await post(decode, '/v1/completions', { ...body, prompt: 'x', messages: undefined });
    assert.equal(d.status, 200);
    assert.equal((await first).status, 200);
    assert.equal(prefill.engine.stats().heldKvBlocks, 0);
  });

  test('requests without the bootstrap fields are refused with 400 on both roles; bad fields too', async () => {
    for (const s of [prefill, decode]) {
      const r = await post(s, '/v1/chat/completions', { model: 'mymodel', messages });
      assert.equal(r.status, 400);
      const b = (await r.json()) as SglangError;
      assert.equal(b.object, 'error');
      assert.equal(b.type, 'Bad Request');
      assert.match(b.message, /bootstrap_host, bootstrap_port and bootstrap_room/);
    }
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ bootstrap_room: -1 }, /bootstrap_room must be an integer/],
      [{ bootstrap_room: 2 ** 53 }, /bootstrap_room must be an integer/],
      [{ bootstrap_room: [1, 2] }, /list of 2/],
      [{ bootstrap_host: '' }, /bootstrap_host/],
      [{ bootstrap_port: 'x' }, /bootstrap_port/],
    ];
    for (const [extra, message] of cases) {
      const r = await post(decode, '/v1/chat/completions', legs(extra));
      assert.equal(r.status, 400, JSON.stringify(extra));
      assert.match(((await r.json()) as SglangError).message, message);
    }
    assert.equal(prefill.stats().inFlight + decode.stats().inFlight, 0);
  });

  test('parseBootstrap: absent, int or list of one, [0, 2^53-1], IPv6 host in brackets', () => {
    assert.deepEqual(parseBootstrap({}), { kind: 'absent' });
    assert.deepEqual(parseBootstrap({ bootstrap_host: '[::1]', bootstrap_port: null, bootstrap_room: 2 ** 53 - 1 }), {
      kind: 'ok',
      fields: { host: '::1', port: null, room: 2 ** 53 - 1 },
    });
    assert.equal(parseBootstrap({ bootstrap_host: 'h', bootstrap_port: 1, bootstrap_room: 1.5 }).kind, 'invalid');
  });
});

describe('SGLang PD timeouts', () => {
  test('a prefill leg whose decode partner never connects fails after bootstrapTimeoutMs (modelled)', async () => {
    const prefill = await tinyServer({ runtime: 'sglang', pdRole: 'prefill', bootstrapPort: 0, bootstrapTimeoutMs: 2000 });
    try {
      const r = await post(prefill, '/v1/completions', { model: 'mymodel', prompt: 'alone', bootstrap_host: '127.0.0.1', bootstrap_port: prefill.bootstrapPort, bootstrap_room: 7 });
      assert.equal(r.status, 500);
      const b = (await r.json()) as SglangError;
      assert.deepEqual([b.object, b.type, b.code], ['error', 'Internal Server Error', 500]);
      assert.match(b.message, /bootstrap_room 7 failed: no decode server connected within 2000 ms \(bootstrap timeout\)/);
      assert.deepEqual(prefill.stats(), { received: 1, served: 0, inFlight: 0, aborted: 0 });
      assert.equal(prefill.engine.stats().heldKvBlocks, 0, 'the KV nobody pulled was freed');
    } finally {
      await prefill.close();
    }
  });

  test('a decode leg whose prefill request never comes fails after bootstrapTimeoutMs (waiting timeout)', async () => {
    const prefill = await tinyServer({ runtime: 'sglang', pdRole: 'prefill', bootstrapPort: 0 });
    const decode = await tinyServer({ runtime: 'sglang', pdRole: 'decode', bootstrapTimeoutMs: 2000 });
    try {
      const r = await post(decode, '/v1/completions', { model: 'mymodel', prompt: 'alone', bootstrap_host: '127.0.0.1', bootstrap_port: prefill.bootstrapPort, bootstrap_room: 8 });
      assert.equal(r.status, 500);
      assert.match(((await r.json()) as SglangError).message, /bootstrap_room 8 failed: no KV from the prefill server .* within 2000 ms \(waiting timeout\)/);
      assertDecodeDropped(decode);
    } finally {
      await prefill.close();
      await decode.close();
    }
  });

  test('a decode leg whose bootstrap server is unreachable fails at once', async () => {
    const decode = await tinyServer({ runtime: 'sglang', pdRole: 'decode' });
    try {
      const port = await freePort();
      const r = await post(decode, '/v1/completions', { model: 'mymodel', prompt: 'x', bootstrap_host: '127.0.0.1', bootstrap_port: port, bootstrap_room: 9 });
      assert.equal(r.status, 500);
      assert.match(((await r.json()) as SglangError).message, /cannot reach the bootstrap server 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    } finally {
      await decode.close();
    }
  });

  test('a decode client that goes away fails its prefill partner (the transfer cannot happen)', async () => {
    // A bootstrap timeout well above the test's needs, and well below SGLang's 300 s: a failure ends in seconds.
    const prefill = await tinyServer({ runtime: 'sglang', pdRole: 'prefill', bootstrapPort: 0, timeScale: 1, bootstrapTimeoutMs: 20_000, overrides: { prefillPerTokenMs: 50 } });
    const decode = await tinyServer({ runtime: 'sglang', pdRole: 'decode' });
    try {
      const body = { model: 'mymodel', prompt: 'a longer prompt that takes a while to prefill here', bootstrap_host: '127.0.0.1', bootstrap_port: prefill.bootstrapPort, bootstrap_room: 10 };
      const controller = new AbortController();
      const d = post(decode, '/v1/completions', body, {}, controller.signal).catch(() => undefined);
      const p = post(prefill, '/v1/completions', body);
      // The decode leg has reached the prefill's bootstrap server (its being in flight is too early on a busy machine).
      await until('both legs to be there', () => (prefill.stats().inFlight === 1 && prefill.decodeRegistered(10) ? true : undefined));
      controller.abort();
      await d;
      const r = await p;
      assert.equal(r.status, 500);
      assert.match(((await r.json()) as SglangError).message, /the decode server went away/);
      assert.equal(prefill.engine.stats().heldKvBlocks, 0);
      await until('the decode abort to be counted', () => (decode.stats().aborted === 1 ? true : undefined));
    } finally {
      await prefill.close();
      await decode.close();
    }
  });

  test('pdRole needs runtime sglang', async () => {
    await assert.rejects(tinyServer({ runtime: 'trtllm', pdRole: 'prefill' }), /pdRole needs runtime sglang/);
  });
});
