import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Endpoint } from '../../src/core/endpoint.js';
import { GatewayError, type ErrorCode } from '../../src/core/errors.js';
import { seededRandom } from '../../src/core/weighted.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { PREFILL_GRACE_MS, type PairStep, type PdLeg, type PdNext } from '../../src/gateway/index.js';
import { memoryLogger, MemorySource, type LogRecord } from '../support/memory-source.js';
import { chat, decideChat, machine, pdConfig, type MachineRun } from '../support/pd-gateway.js';

/** What the data plane reports, in order (the legs are sent as the machine says: SGLang both at once, vLLM the prefill first). */
type Event =
  | { readonly prefillAnswered: number; readonly body?: string }
  | { readonly prefillFailed: ErrorCode }
  | { readonly decodeAnswered: number; readonly said?: string }
  | { readonly firstByte: true }
  | { readonly decodeFailed: ErrorCode }
  | { readonly timedOut: PdLeg; readonly code: ErrorCode }
  | { readonly decodeDone: true }
  | { readonly end: true };

interface Scenario {
  readonly name: string;
  readonly runtime: 'sglang' | 'vllm';
  readonly events: readonly Event[];
  /** The machine's answer to the last event. */
  readonly last: PairStep['kind'];
  /** Whom the failed pair blames (undefined: it did not fail). */
  readonly blame?: 'prefill' | 'decode' | 'both' | 'none';
  /** The answer's status, for `answer`. */
  readonly status?: number;
  /** Passive health's consecutive failures of [prefill-0, the first decode] after the pair. */
  readonly failures: readonly [number, number];
  /** After `PdRun.pairFailed`: a fresh pair (and whether its decode differs), or the request's failure. */
  readonly then?: 'fresh-pair' | 'fail';
  /** A check of its own. */
  readonly check?: (m: MachineRun, steps: readonly PairStep[], lines: readonly LogRecord[]) => void;
}

const KV_ANSWER = '{"choices":[],"kv_transfer_params":{"do_remote_prefill":true,"remote_engine_id":"e","remote_block_ids":[1]}}';

const scenarios: readonly Scenario[] = [
  {
    name: 'SGLang: both legs answer; the decode answer is relayed, its endpoint released before the prefill grace',
    runtime: 'sglang',
    events: [{ prefillAnswered: 200 }, { decodeAnswered: 200 }, { firstByte: true }],
    last: 'relay',
    failures: [0, 0],
    check: (m) => {
      assert.equal(m.pair.committed, true);
      assert.deepEqual(m.pairStops, [], 'no leg cancelled');
      assert.equal(m.pair.decodeDone().graceMs, PREFILL_GRACE_MS);
      assert.equal(m.pair.plan.decode.inFlight, 0, 'the decode endpoint stops carrying the request when its answer is complete');
    },
  },
  {
    name: 'SGLang: the prefill refuses (4xx): the decode leg is stopped and the refusal is the answer; nobody is blamed',
    runtime: 'sglang',
    events: [{ prefillAnswered: 404, body: '{"object":"error","message":"no such model","code":404}' }, { decodeFailed: 'upstream_unavailable' }],
    last: 'answer',
    status: 404,
    blame: 'none',
    failures: [0, 0],
    check: (m) => assert.match(m.pairStops[0]?.message ?? '', /refused the request \(404\)/),
  },
  {
    name: 'vLLM: the prefill refuses (4xx): the refusal is the answer, no decode leg is sent',
    runtime: 'vllm',
    events: [{ prefillAnswered: 400, body: '{"error":{"message":"prompt too long"}}' }],
    last: 'answer',
    status: 400,
    failures: [0, 0],
  },
  {
    name: 'SGLang: the decode answers 5xx before its first byte: the pair (both) is blamed and retried with a fresh pair',
    runtime: 'sglang',
    events: [{ decodeAnswered: 503, said: '{"error":{"message":"bootstrap failed"}}' }],
    last: 'failed',
    blame: 'both',
    failures: [1, 1],
    then: 'fresh-pair',
    check: (m) => assert.match(m.pair.failure?.error.message ?? '', /^decode leg on .*answered 503: bootstrap failed/),
  },
  {
    name: 'vLLM: the decode answers 5xx: the decode is blamed and a fresh pair avoids it',
    runtime: 'vllm',
    events: [{ prefillAnswered: 200, body: KV_ANSWER }, { decodeAnswered: 500 }],
    last: 'failed',
    blame: 'decode',
    failures: [0, 1],
    then: 'fresh-pair',
  },
  {
    name: 'SGLang: the KV handshake deadline passes: both legs are stopped and blamed, a fresh pair follows',
    runtime: 'sglang',
    events: [{ timedOut: 'decode', code: 'kv_handshake_timeout' }, { decodeFailed: 'upstream_unavailable' }, { prefillFailed: 'upstream_unavailable' }],
    last: 'wait',
    blame: 'both',
    failures: [1, 1],
    then: 'fresh-pair',
    check: (m) => assert.equal(m.pairStops[0]?.code, 'kv_handshake_timeout'),
  },
  {
    name: 'vLLM: the prefill fails: the decode endpoint runs the whole request alone (no handshake deadline)',
    runtime: 'vllm',
    events: [{ prefillFailed: 'upstream_reset' }],
    last: 'send',
    failures: [1, 0],
    check: (m, steps, lines) => {
      const step = steps.at(-1);
      assert.ok(step?.kind === 'send');
      assert.equal(step.leg.leg, 'decode');
      assert.equal(step.leg.firstByte, undefined);
      assert.equal(JSON.parse(String(step.leg.body))['kv_transfer_params'], undefined, 'the client body, no KV params');
      void m;
      void lines;
    },
  },
  {
    name: 'vLLM: the prefill answers with KV params: the decode leg gets them and the handshake deadline',
    runtime: 'vllm',
    events: [{ prefillAnswered: 200, body: KV_ANSWER }],
    last: 'send',
    failures: [0, 0],
    check: (_m, steps) => {
      const step = steps.at(-1);
      assert.ok(step?.kind === 'send');
      assert.ok(step.leg.firstByte !== undefined, 'a streamed decode that reads KV has the handshake deadline');
      assert.deepEqual(JSON.parse(String(step.leg.body))['kv_transfer_params']['remote_block_ids'], [1]);
    },
  },
  {
    name: 'SGLang: the prefill grace expires: the pair ends, the prefill is cancelled, and its late failure blames no one',
    runtime: 'sglang',
    events: [{ decodeAnswered: 200 }, { firstByte: true }, { decodeDone: true }, { end: true }, { prefillFailed: 'upstream_reset' }],
    last: 'wait',
    failures: [0, 0],
    check: (m) => assert.match(m.prefillStops[0]?.message ?? '', /no longer needed/),
  },
];

const DECODE_1 = '---\napiVersion: v1\nkind: Pod\nmetadata: {name: decode-1, labels: {app: pd, role: decode}}\nstatus: {podIP: 127.0.5.4}\n';

for (const s of scenarios) {
  test(`PD machine: ${s.name}`, async () => {
    const { logger, lines } = memoryLogger();
    const gateway = await Gateway.start({ sources: [new MemorySource(pdConfig(s.runtime, DECODE_1))], logger, scrapeIntervalMs: 0, random: seededRandom(1) });
    try {
      const { h, d } = await decideChat(gateway, chat(`a long enough question: ${'why '.repeat(900)}`));
      const m = machine(h, d);
      const [prefill, decode] = [m.pair.plan.prefill, m.pair.plan.decode];
      const steps: PairStep[] = [];
      const prefillLeg = m.pair.prefill();
      assert.equal(prefillLeg.endpoint, prefill);
      if (m.pair.concurrent) m.pair.decode();
      for (const e of s.events) {
        if ('prefillAnswered' in e) steps.push(m.pair.prefillAnswered(e.prefillAnswered, Buffer.from(e.body ?? '{}')));
        else if ('prefillFailed' in e) steps.push(m.pair.prefillFailed(new GatewayError(e.prefillFailed, 'x')));
        else if ('decodeAnswered' in e) {
          let step = m.pair.decodeAnswered(e.decodeAnswered);
          if (step.kind === 'read-error') step = m.pair.decodeErrorBody(e.decodeAnswered, Buffer.from(e.said ?? ''));
          steps.push(step);
        } else if ('firstByte' in e) steps.push(m.pair.decodeFirstByte());
        else if ('decodeFailed' in e) steps.push(m.pair.decodeFailed(new GatewayError(e.decodeFailed, 'x')));
        else if ('timedOut' in e) m.pair.timedOut(e.timedOut, new GatewayError(e.code, 'x'));
        else if ('decodeDone' in e) m.pair.decodeDone();
        else m.pair.end();
      }
      const last = steps.at(-1);
      assert.equal(last?.kind, s.last);
      if (s.status !== undefined) assert.equal(last?.kind === 'answer' ? last.status : undefined, s.status);
      assert.equal(m.pair.failure?.blame, s.blame);
      let next: PdNext | undefined;
      if (m.pair.failure !== undefined && last?.kind !== 'answer') {
        m.run.pairFailed(m.pair);
        next = m.next();
      }
      assert.deepEqual([prefill.consecutiveFailures, decode.consecutiveFailures], s.failures, 'passive health heard the blamed legs');
      if (s.then === 'fresh-pair') {
        assert.equal(next?.kind, 'pair');
        if (next?.kind === 'pair') assert.notEqual(next.pair.plan.decode, decode, 'a fresh decode partner');
        if (next?.kind === 'pair') assert.equal(m.next().kind, 'pair', 'next() repeats until reported');
      } else assert.equal(next?.kind, s.then === 'fail' ? 'fail' : undefined);
      s.check?.(m, steps, lines);
      h.finished({ status: 200, bytesOut: 0 });
      const pool = gateway.runtime?.pools.get('default/pd');
      assert.ok(pool?.members.endpoints.every((e: Endpoint) => e.inFlight === 0 && e.pendingPrefillTokens === 0), 'nothing leaks');
    } finally {
      await gateway.close();
    }
  });
}

test('PD machine: a stopped request ends its pair with the stop, judges no one and is not retried', async () => {
  const { logger } = memoryLogger();
  const gateway = await Gateway.start({ sources: [new MemorySource(pdConfig('sglang', DECODE_1))], logger, scrapeIntervalMs: 0, random: seededRandom(1) });
  try {
    const { h, d } = await decideChat(gateway, chat('a question the client gives up on'));
    let stopped: GatewayError | undefined;
    const m = machine(h, d, () => stopped);
    m.pair.prefill();
    m.pair.decode();
    stopped = new GatewayError('client_gone', 'the client left');
    m.pair.requestStopped(stopped);
    assert.equal(m.pairStops[0]?.code, 'client_gone', 'both legs are cut');
    assert.deepEqual(m.pair.decodeFailed(new GatewayError('upstream_unavailable', 'aborted')), { kind: 'stopped', error: stopped });
    m.run.pairFailed(m.pair);
    assert.deepEqual(m.next(), { kind: 'fail', error: stopped });
    h.failed(stopped);
    assert.ok(gateway.runtime?.pools.get('default/pd')?.members.endpoints.every((e) => e.consecutiveFailures === 0 && e.inFlight === 0));
  } finally {
    await gateway.close();
  }
});
