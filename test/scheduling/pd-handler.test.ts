import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Endpoint, EndpointRole } from '../../src/core/endpoint.js';
import { seededRandom } from '../../src/core/weighted.js';
import { blockHashes } from '../../src/prefix/block-hash.js';
import type { RoutingConfig } from '../../src/api/types.js';
import { PrefixIndex } from '../../src/prefix/index.js';
import { buildScheduler } from '../../src/scheduling/config.js';
import { PD_DECISION } from '../../src/scheduling/plugins/pd-profile-handler.js';
import { builtinRegistry, pdPolicy } from '../../src/scheduling/policies.js';
import { endpoint, handle, request, type EndpointSpec } from './support.js';

function roles(specs: Array<EndpointSpec & { role: EndpointRole }>): Endpoint[] {
  return specs.map((s, i) => {
    const e = endpoint(i, s);
    e.role = s.role;
    return e;
  });
}

const PROMPT = 'Summarise the following report carefully. '.repeat(100);

function scheduler(decodeCanServeAlone: boolean, index = new PrefixIndex(), prefix = true, routing?: RoutingConfig): ReturnType<typeof buildScheduler>['scheduler'] {
  const { config } = pdPolicy({ prefillPolicy: prefix ? 'prefixCache' : undefined, decodePolicy: undefined, decodeCanServeAlone }, routing);
  return buildScheduler(config, builtinRegistry(), handle(index)).scheduler;
}

test('PD handler: prefill and decode profiles each pick from their role; decode is primary', () => {
  const eps = roles([
    { role: 'prefill', metrics: { waitingRequests: 2 } },
    { role: 'prefill', metrics: { waitingRequests: 0 } },
    { role: 'decode', metrics: { waitingRequests: 0 } },
    { role: 'decode', metrics: { waitingRequests: 3 } },
  ]);
  const req = request({ prompt: PROMPT, promptTokens: 1100 });
  // Load alone within each role: without the prefix home, whose bonus (a full match's worth)
  // outweighs a queue 2 deeper for a prompt no replica has placed yet (prefix-home.test.ts).
  const result = scheduler(false, new PrefixIndex(), true, { prefix: { homeBonus: 0 } }).schedule(req, eps, seededRandom(1));
  assert.equal(result.primaryProfile, 'decode');
  assert.equal(result.profiles.get('prefill')?.endpoints[0]?.name, 'pod-1');
  assert.equal(result.profiles.get('decode')?.endpoints[0]?.name, 'pod-2');
  assert.deepEqual(req.state.read(PD_DECISION), { disaggregated: true, reason: 'disaggregated', uncachedOnDecode: 1100 });
});

test('PD handler: prefix affinity on the prefill side keeps a prompt on the prefill pod that computed it', () => {
  const index = new PrefixIndex();
  const eps = roles([{ role: 'prefill', metrics: {} }, { role: 'prefill', metrics: {} }, { role: 'decode', metrics: {} }]);
  index.record(eps[1] as Endpoint, blockHashes(PROMPT, 'm'));
  for (let i = 0; i < 10; i++) {
    const result = scheduler(false, index).schedule(request({ prompt: PROMPT, promptTokens: 1100 }), eps, seededRandom(i));
    assert.equal(result.profiles.get('prefill')?.endpoints[0]?.name, 'pod-1');
  }
});

test('PD decider (vLLM): a prompt mostly cached on the decode pod runs there alone; SGLang always disaggregates', () => {
  const index = new PrefixIndex();
  const eps = roles([{ role: 'prefill', metrics: {} }, { role: 'decode', metrics: {} }]);
  index.record(eps[1] as Endpoint, blockHashes(PROMPT, 'm'));
  const cached = request({ prompt: PROMPT, promptTokens: 1100 });
  const vllm = scheduler(true, index).schedule(cached, eps, seededRandom(1));
  assert.equal(vllm.profiles.has('prefill'), false, 'no prefill profile ran');
  assert.equal(cached.state.read(PD_DECISION)?.reason, 'cached-on-decode');
  const sglangReq = request({ prompt: PROMPT, promptTokens: 1100 });
  assert.equal(scheduler(false, index).schedule(sglangReq, eps, seededRandom(1)).profiles.has('prefill'), true);
  assert.equal(sglangReq.state.read(PD_DECISION)?.disaggregated, true);
  const cold = request({ prompt: `${PROMPT} and something new`.split('').reverse().join(''), promptTokens: 1100 });
  assert.equal(scheduler(true, index).schedule(cold, eps, seededRandom(1)).profiles.has('prefill'), true, 'an uncached prompt is disaggregated');
});

test('PD decider (vLLM): a saturated prefill role sends requests to an idle decode role alone', () => {
  const eps = roles([
    { role: 'prefill', metrics: { waitingRequests: 9 } },
    { role: 'prefill', metrics: { waitingRequests: 7 } },
    { role: 'decode', metrics: { waitingRequests: 0 } },
  ]);
  const req = request({ prompt: PROMPT, promptTokens: 1100 });
  assert.equal(scheduler(true).schedule(req, eps, seededRandom(1)).profiles.has('prefill'), false);
  assert.equal(req.state.read(PD_DECISION)?.reason, 'prefill-saturated');
  const busyDecode = roles([
    { role: 'prefill', metrics: { waitingRequests: 9 } },
    { role: 'decode', metrics: { waitingRequests: 8 } },
  ]);
  const both = request({ prompt: PROMPT, promptTokens: 1100 });
  assert.equal(scheduler(true).schedule(both, busyDecode, seededRandom(1)).profiles.has('prefill'), true, 'both saturated: disaggregate anyway');
});

test('PD pool without a prefill endpoint: the prefill profile finds none (503)', () => {
  const eps = roles([{ role: 'decode', metrics: {} }]);
  assert.throws(() => scheduler(false).schedule(request({ prompt: PROMPT, promptTokens: 1100 }), eps, seededRandom(1)), { code: 'no_ready_endpoint' });
});
