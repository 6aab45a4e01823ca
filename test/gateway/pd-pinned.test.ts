import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Endpoint } from '../../src/core/endpoint.js';
import { GatewayError } from '../../src/core/errors.js';
import { parsePrefillerHostPort, pinnedPair, pinnedPrefill } from '../../src/gateway/index.js';
import { chat, decideChat, machine, pdGateway } from '../support/pd-gateway.js';

const at = (address: string, port: number, role: 'prefill' | 'decode' | 'both'): Endpoint => new Endpoint({ address, port, name: `${role}@${address}`, podName: `${role}-${address}`, labels: {}, role });
const members = [at('10.0.0.1', 8000, 'prefill'), at('10.0.0.2', 8000, 'decode'), at('fd00::1', 8000, 'prefill'), at('10.0.0.3', 8000, 'both')];

const refused = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;

test('x-prefiller-host-port: only a prefill endpoint of the pool is allowed (an allow-list, never an open relay)', () => {
  assert.equal(pinnedPrefill(undefined, members), undefined, 'no header: the local decode alone');
  assert.equal(pinnedPrefill('10.0.0.1:8000', members)?.podName, 'prefill-10.0.0.1');
  assert.equal(pinnedPrefill(' 10.0.0.1:8000\t', members)?.podName, 'prefill-10.0.0.1', 'surrounding whitespace is not part of a field value');
  assert.equal(pinnedPrefill(['10.0.0.1:8000'], members)?.podName, 'prefill-10.0.0.1');
  assert.equal(pinnedPrefill('10.0.0.3:8000', members)?.role, 'both', 'a pod that plays both roles may prefill');
  assert.equal(pinnedPrefill('[fd00::1]:8000', members)?.address, 'fd00::1');
  assert.equal(pinnedPrefill('[FD00:0:0::0001]:8000', members)?.address, 'fd00::1', 'IPv6 compared in its canonical form');
  // Well-formed, but not a prefill endpoint of this pool: 403.
  for (const hostile of ['10.0.0.9:8000', '10.0.0.1:8001', '10.0.0.2:8000', '127.0.0.1:8000', '169.254.169.254:80', '[::1]:8000', '[fd00::2]:8000', '0.0.0.0:8000']) {
    assert.throws(() => pinnedPrefill(hostile, members), refused('prefill_not_allowed'), hostile);
  }
  // Malformed: 400 invalid_header; nothing is looked up, nothing dialled.
  const malformed = [
    '',
    '10.0.0.1',
    '10.0.0.1:',
    ':8000',
    '10.0.0.1:8000,10.0.0.2:8000',
    '10.0.0.1:8000,',
    ',10.0.0.1:8000',
    '10.0.0.1 :8000',
    '10.0.0.1: 8000',
    '10.0.0.1:0',
    '10.0.0.1:65536',
    '10.0.0.1:+80',
    '10.0.0.1:8000/path',
    'http://10.0.0.1:8000',
    'prefill-0.pd.svc:8000',
    'localhost:8000',
    '999.0.0.1:8000',
    '10.0.0.1.5:8000',
    'fd00::1:8000',
    '[fd00::1]',
    '[fd00::1%eth0]:8000',
    '[fd00:::1]:8000',
    '[10.0.0.1]:8000',
    `10.0.0.1:8000${' '.repeat(200)}`,
    `${'1'.repeat(100_000)}:8000`,
    '10.0.0.1:8000\r\nx-evil: 1',
  ];
  for (const bad of malformed) assert.throws(() => pinnedPrefill(bad, members), refused('invalid_header'), JSON.stringify(bad.slice(0, 40)));
  assert.throws(() => pinnedPrefill(['10.0.0.1:8000', '10.0.0.1:8000'], members), refused('invalid_header'), 'sent twice');
  assert.deepEqual(parsePrefillerHostPort('[::ffff:10.0.0.1]:8000'), { host: '::ffff:a00:1', port: 8000 });
});

test('a pinned pair: the named prefill (validated) and the local decode, planned as the PD machine runs it', async () => {
  for (const runtime of ['sglang', 'vllm'] as const) {
    const { gateway } = await pdGateway(runtime);
    try {
      const pool = gateway.runtime?.pools.get('default/pd');
      const decode = pool?.members.endpoints.find((e) => e.podName === 'decode-0') as Endpoint;
      const { h } = await decideChat(gateway, chat(`pinned for ${runtime}`));
      assert.throws(() => pinnedPair(h, '127.0.5.2:8000', decode), refused('prefill_not_allowed'), 'the decode pod is no prefill');
      assert.throws(() => pinnedPair(h, '127.0.5.1:8000, 127.0.5.1:8000', decode), refused('invalid_header'));
      const alone = pinnedPair(h, undefined, decode);
      assert.equal(alone.pd, undefined, 'no header: the local decode server alone');
      assert.deepEqual(alone.endpoints, [decode]);
      const d = pinnedPair(h, '127.0.5.1:8000', decode);
      assert.equal(d.pd?.prefill.podName, 'prefill-0');
      assert.equal(d.pd?.decode, decode);
      assert.deepEqual(d.endpoints, [decode]);
      const prefillBody = JSON.parse(String(d.pd?.prefillBody)) as Record<string, unknown>;
      if (runtime === 'sglang') {
        assert.equal(prefillBody['bootstrap_host'], '127.0.5.1', 'SGLang bootstrap fields name that prefill');
        assert.equal(d.body, d.pd?.decodeBody);
      } else {
        assert.equal((prefillBody['kv_transfer_params'] as Record<string, unknown>)['do_remote_decode'], true, 'vLLM prefill body');
        assert.equal(prefillBody['stream'], false);
      }
      // The machine runs it like any pair.
      const m = machine(h, d);
      assert.equal(m.pair.prefill().endpoint.podName, 'prefill-0');
      h.failed(new GatewayError('upstream_unavailable', 'not sent'));
      assert.ok(pool?.members.endpoints.every((e) => e.inFlight === 0), 'nothing leaks');
    } finally {
      await gateway.close();
    }
  }
});
