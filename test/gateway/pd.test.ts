import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Endpoint } from '../../src/core/endpoint.js';
import { GatewayError } from '../../src/core/errors.js';
import { seededRandom } from '../../src/core/weighted.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { bootstrapRoom, sequenceCount, sglangPdBody, vllmDecodeBody, vllmPrefillBody } from '../../src/gateway/pd-body.js';
import { chat, decideChat, machine, pdConfig, pdGateway } from '../support/pd-gateway.js';
import { memoryLogger, MemorySource } from '../support/memory-source.js';

const prefillAt = (address: string, bootstrapPort?: number): Endpoint =>
  new Endpoint({ address, port: 8000, name: 'p', podName: 'p', labels: {}, role: 'prefill', ...(bootstrapPort === undefined ? {} : { bootstrapPort }) });

test('SGLang PD body: bootstrap fields added once, port from the policy, else the pod annotation, else 8998; IPv6 in brackets', () => {
  const raw = Buffer.from('{"model":"m","messages":[{"role":"user","content":"hé"}],"stream":true}');
  const json = JSON.parse(raw.toString()) as Record<string, unknown>;
  const { body, rooms } = sglangPdBody(raw, json, prefillAt('10.0.0.5', 34001), 34000);
  const sent = JSON.parse(body.toString()) as Record<string, unknown>;
  assert.equal(sent['bootstrap_host'], '10.0.0.5');
  assert.equal(sent['bootstrap_port'], 34000, 'the traffic policy kvTransfer.bootstrapPort wins');
  assert.equal(sent['bootstrap_room'], rooms[0]);
  assert.ok(body.toString().endsWith(raw.toString().slice(1)), 'the rest of the body is forwarded byte for byte');
  assert.equal((JSON.parse(sglangPdBody(raw, json, prefillAt('10.0.0.5', 34001), undefined).body.toString()) as Record<string, unknown>)['bootstrap_port'], 34001, 'then the pod annotation');
  assert.equal((JSON.parse(sglangPdBody(raw, json, prefillAt('fd00::5'), undefined).body.toString()) as Record<string, unknown>)['bootstrap_host'], '[fd00::5]');
  assert.equal((JSON.parse(sglangPdBody(raw, json, prefillAt('fd00::5'), undefined).body.toString()) as Record<string, unknown>)['bootstrap_port'], 8998);
});

test('SGLang PD body: n > 1 and prompt lists get arrays of that length, a fresh room per item', () => {
  const cases: Array<{ body: Record<string, unknown>; count: number }> = [
    { body: { model: 'm', messages: [], n: 3 }, count: 3 },
    { body: { model: 'm', prompt: ['a', 'b'] }, count: 2 },
    { body: { model: 'm', prompt: [1, 2, 3] }, count: 1 },
    { body: { model: 'm', prompt: [[1, 2], [3]], n: 2 }, count: 4 },
    // SGLang's native /generate batches.
    { body: { text: ['a', 'b', 'c'] }, count: 3 },
    { body: { text: 'a', sampling_params: { n: 2 } }, count: 2 },
    { body: { input_ids: [[1, 2], [3], [4]] }, count: 3 },
    { body: { input_ids: [1, 2, 3] }, count: 1 },
  ];
  for (const c of cases) {
    assert.equal(sequenceCount(c.body), c.count);
    const raw = Buffer.from(JSON.stringify(c.body));
    const sent = JSON.parse(sglangPdBody(raw, c.body, prefillAt('10.0.0.1'), 1234).body.toString()) as Record<string, unknown>;
    if (c.count === 1) {
      assert.equal(typeof sent['bootstrap_room'], 'number');
      continue;
    }
    const rooms = sent['bootstrap_room'] as number[];
    assert.equal(rooms.length, c.count);
    assert.equal(new Set(rooms).size, c.count, 'a fresh room per item');
    assert.deepEqual(sent['bootstrap_host'], Array(c.count).fill('10.0.0.1'));
    assert.deepEqual(sent['bootstrap_port'], Array(c.count).fill(1234));
  }
  for (let i = 0; i < 1000; i++) {
    const r = bootstrapRoom();
    assert.ok(Number.isSafeInteger(r) && r >= 0, `${r} in [0, 2^53 - 1]`);
  }
});

test('vLLM P/D bodies: the prefill asks for a remote decode of one token, unstreamed; the decode gets the returned kv_transfer_params', () => {
  const forwarded = Buffer.from('{"model":"m","prompt":"hi","stream":true,"stream_options":{"include_usage":true},"max_tokens":64}');
  const prefill = JSON.parse(vllmPrefillBody(forwarded).toString()) as Record<string, unknown>;
  assert.equal(prefill['stream'], false);
  assert.equal(prefill['max_tokens'], 1);
  assert.equal(prefill['stream_options'], undefined);
  assert.deepEqual(prefill['kv_transfer_params'], { do_remote_decode: true, do_remote_prefill: false, remote_engine_id: null, remote_block_ids: null, remote_host: null, remote_port: null });
  const answer = Buffer.from('{"id":"x","choices":[],"kv_transfer_params":{"do_remote_prefill":true,"remote_engine_id":"e1","remote_block_ids":[1,2],"remote_host":"10.0.0.9","remote_port":5600}}');
  const decode = JSON.parse(vllmDecodeBody(forwarded, answer)?.toString() ?? '{}') as Record<string, unknown>;
  assert.equal(decode['max_tokens'], 64);
  assert.equal(decode['stream'], true);
  assert.deepEqual(decode['kv_transfer_params'], { do_remote_prefill: true, remote_engine_id: 'e1', remote_block_ids: [1, 2], remote_host: '10.0.0.9', remote_port: 5600 });
  assert.equal(vllmDecodeBody(forwarded, Buffer.from('{"choices":[]}')), undefined, 'no params: no decode body (the request runs on decode alone)');
});


test('a PD pool: role-less pods are left out with one warning; SGLang requests get a pair with the same body', async () => {
  const { gateway, lines } = await pdGateway('sglang');
  try {
    const pool = gateway.runtime?.pools.get('default/pd');
    assert.deepEqual(pool?.members.endpoints.map((e) => `${e.podName}:${e.role}`), ['prefill-0:prefill', 'decode-0:decode']);
    assert.equal(lines.filter((l) => l.msg === 'pod has no prefill/decode role: not routable in this prefill/decode pool' && l['pod'] === 'default/nobody-0').length, 1);
    const { h: h, d: d } = await decideChat(gateway, chat('hello'));
    assert.equal(d.pd?.protocol, 'sglang');
    assert.equal(d.pd?.prefill.podName, 'prefill-0');
    assert.equal(d.pd?.decode.podName, 'decode-0');
    assert.deepEqual(d.endpoints.map((e) => e.podName), ['decode-0']);
    assert.equal(d.pd?.prefillBody, d.pd?.decodeBody, 'one body, serialised once, for both legs');
    assert.equal(d.body, d.pd?.decodeBody);
    const sent = JSON.parse(d.body?.toString() ?? '{}') as Record<string, unknown>;
    assert.equal(sent['bootstrap_host'], '127.0.5.1');
    assert.equal(sent['bootstrap_port'], 34000);
    // Both legs carry load until they end; the decode leg computes no prompt of its own.
    const [prefill, decode] = [d.pd?.prefill as Endpoint, d.pd?.decode as Endpoint];
    const { pair } = machine(h, d);
    assert.equal(pair.concurrent, true, 'SGLang: both legs at once');
    pair.prefill();
    pair.decode();
    assert.equal(prefill.inFlight, 1);
    assert.equal(decode.inFlight, 1);
    assert.ok(prefill.pendingPrefillTokens > 0);
    assert.equal(decode.pendingPrefillTokens, 0);
    pair.prefillHeaders();
    assert.deepEqual(pair.prefillAnswered(200, Buffer.from('data: [DONE]\n\n')), { kind: 'wait' });
    assert.equal(prefill.inFlight, 0);
    assert.equal(pair.decodeAnswered(200).kind, 'first-byte');
    assert.equal(pair.decodeFirstByte().kind, 'relay');
    h.responseStarted(200, { 'content-type': 'text/event-stream' });
    h.responseData(Buffer.from('data: {"choices":[{"delta":{"content":"x"}}]}\n\n'));
    h.responseEnd();
    h.finished({ status: 200, bytesOut: 1 });
    assert.equal(decode.inFlight, 0);
    const line = lines.find((l) => l.msg === 'Request Handled');
    const pd = line?.['pd'] as Record<string, unknown> | undefined;
    assert.equal(pd?.['disaggregated'], true);
    assert.equal(pd?.['prefillPod'], 'prefill-0');
    assert.equal(pd?.['decodePod'], 'decode-0');
    assert.equal(pd?.['prefillRole'], 'prefill');
    assert.equal(typeof pd?.['kvTransferWaitMs'], 'number');
  } finally {
    await gateway.close();
  }
});

test('a PD pool: a failed SGLang prefill fails the pair; vLLM falls back to decode alone on 5xx, refuses on 4xx', async () => {
  for (const runtime of ['sglang', 'vllm'] as const) {
    const { gateway } = await pdGateway(runtime);
    try {
      const { h: h, d: d } = await decideChat(gateway, chat(`a long enough question for ${runtime}: ${'why '.repeat(900)}`));
      assert.ok(d.pd !== undefined, 'disaggregated');
      const m = machine(h, d);
      m.pair.prefill();
      if (runtime === 'sglang') {
        m.pair.decode();
        assert.equal(m.pair.prefillAnswered(500, Buffer.from('{}')).kind, 'wait');
        assert.match(m.pairStops[0]?.message ?? '', /^prefill leg on prefill-0/, 'the pair (its decode leg) is stopped');
        assert.equal(m.pair.decodeFailed(new GatewayError('upstream_unavailable', 'aborted')).kind, 'failed');
        assert.equal(m.pair.failure?.blame, 'prefill');
      } else {
        const step = m.pair.prefillAnswered(503, Buffer.from('{}'));
        assert.ok(step.kind === 'send' && step.leg.leg === 'decode' && step.leg.firstByte === undefined, 'decode alone, an ordinary request');
        const { h: h2, d: d2 } = await decideChat(gateway, chat(`another question: ${'how '.repeat(900)}`));
        const m2 = machine(h2, d2);
        m2.pair.prefill();
        assert.equal(m2.pair.prefillAnswered(400, Buffer.from('{"error":{"message":"bad"}}')).kind, 'answer');
        h2.failed(new Error('done'));
      }
      h.failed(new Error('done'));
      assert.ok(gateway.runtime?.pools.get('default/pd')?.members.endpoints.every((e) => e.inFlight === 0), 'nothing leaks');
    } finally {
      await gateway.close();
    }
  }
});

test('vLLM PD: a prompt the decode pod received before runs there alone the next time (the decider learns from every dispatch)', async () => {
  const { gateway, lines } = await pdGateway('vllm');
  try {
    const body = chat(`the same long question: ${'and why? '.repeat(200)}`);
    const decide = (): ReturnType<typeof decideChat> => decideChat(gateway, body);
    const first = await decide();
    assert.ok(first.d.pd !== undefined, 'cold: disaggregated');
    const { pair } = machine(first.h, first.d);
    pair.prefill();
    const step = pair.prefillAnswered(200, Buffer.from('{"choices":[],"kv_transfer_params":{"do_remote_prefill":true,"remote_block_ids":[1]}}'));
    assert.ok(step.kind === 'send' && step.leg.leg === 'decode' && step.leg.endpoint === first.d.pd.decode);
    first.h.responseStarted(200, { 'content-type': 'application/json' });
    first.h.responseData(Buffer.from('{"choices":[{"message":{"content":"Because."}}],"usage":{"prompt_tokens":900,"completion_tokens":2}}'));
    first.h.responseEnd();
    first.h.finished({ status: 200, bytesOut: 10 });
    const second = await decide();
    assert.equal(second.d.pd, undefined, 'warm on its decode pod: no prefill leg');
    assert.equal(second.d.endpoints[0]?.podName, 'decode-0');
    second.h.failed(new Error('not sent'));
    const pd = lines.filter((l) => l.msg === 'Request Handled').map((l) => (l['pd'] as Record<string, unknown>)['reason']);
    assert.deepEqual(pd, ['disaggregated', 'cached-on-decode']);
  } finally {
    await gateway.close();
  }
});

test('a failed pair is judged by its blame: decode, both (a handshake that never completed), or nobody (a refusal); the decode is not judged again at the end', async () => {
  const { gateway } = await pdGateway('sglang');
  try {
    const pool = gateway.runtime?.pools.get('default/pd');
    const [prefill, decode] = ['prefill-0', 'decode-0'].map((n) => pool?.members.endpoints.find((e) => e.podName === n) as Endpoint) as [Endpoint, Endpoint];
    const fail = async (blame: 'prefill' | 'decode' | 'both' | 'none', prefillStatus?: number): Promise<void> => {
      const { h: h, d: d } = await decideChat(gateway, chat(`question for ${blame}`));
      const { run, pair } = machine(h, d);
      pair.prefill();
      pair.decode();
      if (prefillStatus !== undefined) pair.prefillAnswered(prefillStatus, Buffer.from('{"message":"no such model","code":404}'));
      if (blame === 'both') pair.timedOut('decode', new GatewayError('kv_handshake_timeout', 'x'));
      const step = pair.decodeFailed(new GatewayError('upstream_unavailable', 'x'));
      assert.equal(pair.failure?.blame, blame);
      if (step.kind === 'answer') {
        // A refusal is the client's answer: the request ends answered.
        h.finished({ status: step.status, bytesOut: step.raw.length });
        return;
      }
      run.pairFailed(pair);
      h.failed(new GatewayError('upstream_unavailable', 'x'));
    };
    await fail('none', 404);
    assert.deepEqual([prefill.consecutiveFailures, decode.consecutiveFailures], [0, 0], 'a refused request blames no one');
    await fail('prefill', 500);
    assert.deepEqual([prefill.consecutiveFailures, decode.consecutiveFailures], [1, 0], 'only the prefill');
    await fail('decode');
    assert.equal(decode.consecutiveFailures, 1, 'the decode, once');
    await fail('both');
    assert.deepEqual([prefill.consecutiveFailures, decode.consecutiveFailures], [2, 2], 'a handshake that never completed counts against both');
    assert.ok(pool?.members.endpoints.every((e) => e.inFlight === 0), 'nothing leaks');
  } finally {
    await gateway.close();
  }
});

test('SGLang PD: a prefill that refuses the request (4xx) is the client\'s answer, OpenAI-shaped with the server\'s message', async () => {
  const { gateway } = await pdGateway('sglang');
  try {
    const { h: h, d: d } = await decideChat(gateway, chat('which model?'));
    const { pair } = machine(h, d);
    pair.prefill();
    pair.decode();
    assert.equal(pair.prefillAnswered(404, Buffer.from('{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","code":404}')).kind, 'wait');
    // The decode leg, stopped by the refusal, gives way to it.
    const out = pair.decodeFailed(new GatewayError('upstream_unavailable', 'aborted'));
    assert.equal(out.kind, 'answer');
    if (out.kind === 'answer') {
      assert.equal(out.status, 404);
      assert.match((out.body as { error: { message: string } }).error.message, /does not exist/);
    }
    h.failed(new GatewayError('upstream_unavailable', 'x'));
  } finally {
    await gateway.close();
  }
});

test('a PD pool whose decode endpoints are all ejected keeps them as candidates (the panic rule holds per role)', async () => {
  const { gateway } = await pdGateway('sglang');
  try {
    const pool = gateway.runtime?.pools.get('default/pd');
    const decode = pool?.members.endpoints.find((e) => e.podName === 'decode-0') as Endpoint;
    decode.ejectedUntil = performance.now() + 60_000;
    const { h: h, d: d } = await decideChat(gateway, chat('still served?'));
    assert.equal(d.pd?.decode.podName, 'decode-0');
    assert.equal(d.pd?.prefill.podName, 'prefill-0');
    h.failed(new GatewayError('upstream_unavailable', 'x'));
  } finally {
    await gateway.close();
  }
});

test('after a KV handshake that never completed, the retry avoids both pods while it can, and uses the only pod of a role with a fresh partner', async () => {
  const decode1 = '---\napiVersion: v1\nkind: Pod\nmetadata: {name: decode-1, labels: {app: pd, role: decode}}\nstatus: {podIP: 127.0.5.4}\n';
  const { logger } = memoryLogger();
  const gateway = await Gateway.start({ sources: [new MemorySource(pdConfig('sglang', decode1))], logger, scrapeIntervalMs: 0, random: seededRandom(1) });
  try {
    const { h: h, d: d } = await decideChat(gateway, chat('a handshake that hangs'));
    const first = d.pd?.decode.podName;
    const m = machine(h, d);
    m.pair.prefill();
    m.pair.decode();
    m.pair.timedOut('decode', new GatewayError('kv_handshake_timeout', 'x'));
    assert.equal(m.pair.decodeFailed(new GatewayError('upstream_unavailable', 'aborted')).kind, 'failed');
    m.run.pairFailed(m.pair);
    // One prefill pod: avoiding it too would leave no pair at all.
    const retry = m.next();
    assert.equal(retry.kind, 'pair');
    if (retry.kind === 'pair') {
      assert.equal(retry.pair.plan.prefill.podName, 'prefill-0');
      assert.notEqual(retry.pair.plan.decode.podName, first, 'a fresh decode partner');
    }
    h.failed(new GatewayError('upstream_unavailable', 'x'));
  } finally {
    await gateway.close();
  }
});

test('PD pools: a deeply nested body is the client\'s 400, never an overflow while building the legs; client KV fields never reach a leg', async () => {
  for (const runtime of ['sglang', 'vllm'] as const) {
    const { gateway } = await pdGateway(runtime);
    try {
      const deep = `${'['.repeat(10_000)}1${']'.repeat(10_000)}`;
      for (const body of [
        `{"model":"qwen","prompt":${deep},"bootstrap_room":1}`,
        `{"model":"qwen","text":[${deep}],"kv_transfer_params":{"remote_host":"x"}}`,
        `{"model":"qwen","messages":[{"role":"user","content":${deep}}]}`,
      ]) {
        await assert.rejects(decideChat(gateway, Buffer.from(body)), (err: unknown) => err instanceof GatewayError && err.code === 'invalid_body' && err.status === 400, `${runtime}: ${body.slice(0, 40)}`);
      }
      const { d } = await decideChat(gateway, Buffer.from(JSON.stringify({ model: 'qwen', messages: [{ role: 'user', content: 'why '.repeat(900) }], kv_transfer_params: { remote_host: '169.254.169.254' }, bootstrap_host: '169.254.169.254', bootstrap_pair_key: 'k' })));
      assert.ok(d.pd !== undefined, `${runtime}: disaggregated`);
      for (const leg of [d.pd.prefillBody, d.pd.decodeBody, d.body]) {
        if (leg === undefined) continue;
        assert.ok(!leg.includes('169.254.169.254'), `${runtime}: the client's address reaches no leg`);
        assert.ok(!('bootstrap_pair_key' in (JSON.parse(leg.toString()) as Record<string, unknown>)));
      }
      gateway.runtime?.pools.get('default/pd')?.members.endpoints.forEach((e) => assert.equal(e.inFlight, 0));
    } finally {
      await gateway.close();
    }
  }
});
