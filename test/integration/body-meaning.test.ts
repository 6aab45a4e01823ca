import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { answer, startFakeEnv, type FakeEnv, type SeenRequest } from '../support/fake-engines.js';
import { modelYaml } from '../support/config.js';
import { scanJsonObject } from '../../src/gateway/json-scan.js';

/**
 * What the model server reads is what the gateway decided, through the real HTTP gateway: bodies
 * that JSON lets a client write several ways (duplicate keys, escaped key names) are refused or
 * edited at the key the gateway read; deep nesting is a 400, never a 5xx; fields that steer a
 * server's own network traffic never reach it from a client.
 */
describe('request bodies mean one thing to the gateway and the server', { timeout: 120_000 }, () => {
  let env: FakeEnv;
  const post = async (body: string, path = '/v1/chat/completions', id?: string): Promise<{ status: number; text: string }> => {
    const r = await fetch(`${env.base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(id === undefined ? {} : { 'x-request-id': id }) }, body });
    return { status: r.status, text: await r.text() };
  };
  const seenBy = (id: string): SeenRequest => {
    const s = env.fakes.seen.find((x) => x.requestId === id);
    assert.ok(s !== undefined, `the server saw ${id}`);
    return s;
  };
  /** The body the server saw, with each top-level key once (scanJsonObject refuses duplicates). */
  const members = (s: SeenRequest): Map<string, unknown> => {
    const scanned = scanJsonObject(s.body);
    return new Map(scanned.members.map((m) => [m.name, JSON.parse(s.body.toString('utf8', m.valueStart, m.valueEnd)) as unknown]));
  };

  before(async () => {
    env = await startFakeEnv({ '127.0.16.2': (_req, res, seen) => answer(res, seen) }, { 'fake-0': '127.0.16.2' }, { extraYaml: modelYaml('assistant', 'assistant', 'fake', [{ name: 'travel-v1', weight: 1 }]) });
  });

  after(async () => {
    await env?.close();
  });

  test('duplicate keys, at the top level or nested where the gateway reads, are a 400 naming the key; the server never sees them', async () => {
    const bodies = [
      '{"model":"assistant","model":"travel-v1","messages":[]}',
      '{"model":"travel-v1","mod\\u0065l":"assistant","messages":[]}',
      '{"\\u006dodel":"assistant","model":"other","messages":[]}',
      '{"model":"assistant","stream":false,"stream":true,"messages":[]}',
      '{"model":"assistant","stream":true,"stream_options":{"include_usage":false,"include_usage":true},"messages":[]}',
      '{"model":"assistant","n":1,"\\u006e":4,"messages":[]}',
      '{"model":"assistant","messages":[{"role":"user","content":"a","content":"b"}]}',
      '{"model":"assistant","prompt":"x","prompt":"y"}',
    ];
    const before = env.fakes.seen.length;
    for (const body of bodies) {
      const r = await post(body);
      assert.equal(r.status, 400, body);
      const err = (JSON.parse(r.text) as { error: { code: string; message: string } }).error;
      assert.equal(err.code, 'invalid_body', body);
      assert.match(err.message, /names the key "[a-z_]+" twice/, body);
    }
    assert.equal(env.fakes.seen.length, before, 'no refused body reached the server');
  });

  test('an escaped key name is the key: the model is rewritten there, and stream is read there', async () => {
    assert.equal((await post('{"mod\\u0065l":"assistant","messages":[{"role":"user","content":"hi"}]}', undefined, 'esc-model')).status, 200);
    const sent = members(seenBy('esc-model'));
    assert.equal(sent.get('model'), 'travel-v1', 'the InferenceModel target, in the one model key the server reads');
    const r = await post('{"model":"assistant","str\\u0065am":true,"messages":[{"role":"user","content":"hi"}]}', undefined, 'esc-stream');
    assert.equal(r.status, 200);
    assert.ok(r.text.includes('data: [DONE]'), 'streamed');
    assert.ok(!r.text.includes('"usage"'), 'the usage event the gateway asked for is not shown to the client');
    assert.deepEqual(members(seenBy('esc-stream')).get('stream_options'), { include_usage: true }, 'the gateway read stream: true and asked for usage');
    // A `"model":` inside a string or a nested object is not the key.
    assert.equal((await post('{"messages":[{"role":"user","content":"{\\"model\\":\\"x\\"}","model":"x"}],"model":"assistant"}', undefined, 'nested-model')).status, 200);
    assert.equal(members(seenBy('nested-model')).get('model'), 'travel-v1');
  });

  test('fields the gateway reads must have the type it reads; invalid UTF-8 and a BOM are refused', async () => {
    for (const body of ['{"model":"m","stream":"true","messages":[]}', '{"model":"m","stream":1,"messages":[]}', '{"model":"m","n":"3","messages":[]}', '{"model":"m","stream":true,"stream_options":{"include_usage":"yes"},"messages":[]}']) {
      const r = await post(body);
      assert.equal(r.status, 400, body);
      assert.equal((JSON.parse(r.text) as { error: { code: string } }).error.code, 'invalid_body', body);
    }
    for (const raw of [Buffer.concat([Buffer.from('{"model":"m","prompt":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model":"m","prompt":"x"}')])]) {
      const r = await fetch(`${env.base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: raw });
      assert.equal(r.status, 400);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'invalid_json');
    }
  });

  test('deep nesting in any field is a 400 with an OpenAI body, never a 5xx, and logs no error', async () => {
    const deep = (levels: number, open: string, close: string, leaf: string): string => open.repeat(levels) + leaf + close.repeat(levels);
    const arr = (n: number): string => deep(n, '[', ']', '1');
    const obj = (n: number): string => deep(n, '{"a":', '}', '1');
    const cases: Array<[string, string]> = [
      ['/v1/completions', `{"model":"m","prompt":${arr(10_000)}}`],
      ['/v1/completions', `{"model":"m","prompt":[${arr(200)}]}`],
      ['/v1/completions', `{"model":"m","prompt":[[${obj(500)}]]}`],
      ['/v1/responses', `{"model":"m","input":${arr(10_000)}}`],
      ['/v1/responses', `{"model":"m","input":[{"role":"user","content":${arr(5_000)}}]}`],
      ['/v1/embeddings', `{"model":"m","input":${arr(10_000)}}`],
      ['/v1/chat/completions', `{"model":"m","messages":[{"role":"user","content":${arr(10_000)}}]}`],
      ['/v1/chat/completions', `{"model":"m","messages":[{"role":"user","content":[${obj(10_000)}]}]}`],
      ['/v1/chat/completions', `{"model":"m","messages":[],"stream":true,"stream_options":${obj(10_000)}}`],
    ];
    const errorsBefore = env.gateway.logs.filter((l) => l['level'] === 'error' || l['level'] === 50).length;
    for (const [path, body] of cases) {
      const r = await post(body, path);
      assert.equal(r.status, 400, `${path} ${body.slice(0, 60)}`);
      const err = (JSON.parse(r.text) as { error: { code: string; message: string; type: string } }).error;
      assert.equal(err.code, 'invalid_body');
      assert.equal(err.type, 'invalid_request_error');
      assert.match(err.message, /more than 128 levels deep/);
    }
    // 128 levels, the body's own object included, are served.
    assert.equal((await post(`{"model":"m","prompt":[${arr(125)}]}`, '/v1/completions')).status, 200);
    const errors = env.gateway.logs.filter((l) => l['level'] === 'error' || l['level'] === 50);
    assert.equal(errors.length, errorsBefore, JSON.stringify(errors.slice(errorsBefore)));
  });

  test('a body of very many small values is a 400 naming the limit before anything is built from it; a long token-id prompt is served', async () => {
    const n = (count: number, item: (i: number) => string): string => Array.from({ length: count }, (_, i) => item(i)).join(',');
    const cases: Array<[string, string, RegExp]> = [
      ['/v1/chat/completions', `{"model":"m","messages":[${n(70_000, (i) => `{"role":"user","content":"m${i}"}`)}]}`, /more than 65536 objects and arrays/],
      ['/v1/chat/completions', `{"model":"m","messages":[{"role":"user","content":[${n(70_000, () => '{"type":"text","text":"a"}')}]}]}`, /more than 65536 objects and arrays/],
      ['/v1/chat/completions', `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[${n(70_000, (i) => `{"type":"function","function":{"name":"f${i}"}}`)}]}`, /more than 65536 objects and arrays/],
      ['/v1/chat/completions', `{"model":"m","messages":[{"role":"user","content":"hi"}],"logit_bias":{${n(300_000, (i) => `"${i}":1`)}}}`, /more than 262144 object members/],
      ['/v1/completions', `{"model":"m","prompt":[${n(70_000, (i) => `[${i}]`)}]}`, /more than 65536 objects and arrays/],
      ['/v1/completions', `{"model":"m","prompt":"x","stop":[${n(1_100_000, () => '"s"')}]}`, /more than 1048576 values/],
    ];
    const before = env.fakes.seen.length;
    for (const [path, body, pattern] of cases) {
      const r = await post(body, path);
      assert.equal(r.status, 400, `${path} ${body.slice(0, 80)}`);
      const err = (JSON.parse(r.text) as { error: { code: string; message: string; type: string } }).error;
      assert.equal(err.code, 'invalid_body');
      assert.equal(err.type, 'invalid_request_error');
      assert.match(err.message, pattern);
    }
    assert.equal(env.fakes.seen.length, before, 'no refused body reached the server');
    // One array of 200,000 token ids is one container: served.
    const prompt = await post(`{"model":"m","prompt":[${n(200_000, (i) => String(i % 50_000))}],"max_tokens":1}`, '/v1/completions');
    assert.equal(prompt.status, 200, prompt.text.slice(0, 300));
  });

  test('a client\'s kv_transfer_params and bootstrap fields never reach a server of a plain pool', async () => {
    const hostile = {
      kv_transfer_params: { do_remote_prefill: true, remote_host: '169.254.169.254', remote_port: 80, remote_engine_id: 'x', remote_block_ids: [1] },
      bootstrap_host: '169.254.169.254',
      bootstrap_port: 80,
      bootstrap_room: 7,
      bootstrap_pair_key: 'k',
      decode_tp_size: 8,
      disagg_prefill_dp_rank: 1,
      disaggregated_params: { request_type: 'generation_only', ctx_request_id: 1 },
    };
    const r = await post(JSON.stringify({ model: 'assistant', messages: [{ role: 'user', content: 'hi' }], ...hostile }), undefined, 'owned-plain');
    assert.equal(r.status, 200, r.text);
    const sent = members(seenBy('owned-plain'));
    for (const key of Object.keys(hostile)) assert.equal(sent.has(key), false, `${key} removed`);
    assert.ok(!seenBy('owned-plain').body.includes('169.254.169.254'));
    // Escaped, the same key is removed too.
    assert.equal((await post('{"model":"assistant","messages":[],"kv_transfer_p\\u0061rams":{"remote_host":"169.254.169.254"}}', undefined, 'owned-escaped')).status, 200);
    assert.ok(!seenBy('owned-escaped').body.includes('169.254.169.254'));
  });
});
