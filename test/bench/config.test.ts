import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveBenchPlan } from '../../src/bench/config.js';
import { BenchConfigError } from '../../src/bench/workloads/index.js';

function problems(flags: Record<string, string | boolean | string[]>, file?: unknown): string {
  try {
    resolveBenchPlan(flags, file, 'bench.yaml');
  } catch (err) {
    assert.ok(err instanceof BenchConfigError, String(err));
    return err.problems.join('\n');
  }
  assert.fail('expected an error');
}

test('flags alone: defaults filled, closed loop of 8 by default', () => {
  const plan = resolveBenchPlan({ url: 'http://127.0.0.1:8080', workload: 'shared-prefix', groups: '3' });
  assert.equal(plan.model, 'mymodel');
  assert.equal(plan.api, 'chat');
  assert.equal(plan.seed, 1);
  assert.deepEqual(plan.arrivals, { kind: 'closed', concurrency: 8 });
  assert.equal(plan.workload.type === 'shared-prefix' && plan.workload.groups, 3);
  assert.equal(plan.endpointHeader, 'x-sim-pod');
  assert.equal(plan.timeoutMs, 300_000);
  assert.equal(plan.ignoreEos, true);
});

test('arrival flags: rate, sweep, concurrency; flags override the file', () => {
  const base = { url: 'http://h:1', workload: 'random' };
  assert.deepEqual(resolveBenchPlan({ ...base, rate: '4.5' }).arrivals, { kind: 'poisson', rate: 4.5 });
  assert.deepEqual(resolveBenchPlan({ ...base, rates: '2,4,8', 'stage-seconds': '10' }).arrivals, {
    kind: 'sweep',
    stages: [{ rate: 2, seconds: 10 }, { rate: 4, seconds: 10 }, { rate: 8, seconds: 10 }],
  });
  const file = {
    url: 'http://file:1',
    model: 'filemodel',
    workload: { type: 'shared-prefix', preset: 'gie-ci', groups: 4 },
    load: { rate: 3, requests: 50 },
    metricsUrls: ['http://m:1'],
  };
  const plan = resolveBenchPlan({ concurrency: '2', 'users-per-group': '2', 'no-ignore-eos': true }, file);
  assert.equal(plan.url, 'http://file:1');
  assert.equal(plan.model, 'filemodel');
  assert.deepEqual(plan.arrivals, { kind: 'closed', concurrency: 2 }, 'a flag choosing the arrival process replaces the file\'s');
  assert.equal(plan.maxRequests, 50);
  assert.deepEqual(plan.metricsUrls, ['http://m:1']);
  assert.equal(plan.ignoreEos, false);
  assert.deepEqual(plan.workload, { type: 'shared-prefix', groups: 4, usersPerGroup: 2, systemTokens: 2048, questionTokens: 512, outputTokens: 256, ordered: false });
  assert.equal(resolveBenchPlan({ workload: 'random' }, file).workload.type, 'random', 'another --workload drops the file\'s parameters');
});

test('errors name the field and the flag or file it came from', () => {
  assert.match(problems({ workload: 'random' }), /url \(--url\): required/);
  assert.match(problems({ url: 'http://h:1' }), /workload \(--workload\): required/);
  assert.match(problems({ url: 'http://h:1', workload: 'random', rate: '0' }), /load\.rate \(--rate\): /);
  assert.match(problems({ url: 'http://h:1', workload: 'random', rate: 'fast' }), /load\.rate \(--rate\): .*number/);
  assert.match(problems({ url: 'http://h:1', workload: 'shared-prefix', groups: '1.5' }), /workload\.groups \(--groups\): /);
  assert.match(problems({ url: 'http://h:1', workload: 'random', groups: '2' }), /--groups does not apply to the random workload/);
  assert.match(problems({ url: 'http://h:1', workload: 'random', rate: '1', concurrency: '2' }), /load.*give one of rate, rates, concurrency/);
  assert.match(problems({ url: 'nope', workload: 'random' }), /url \(--url\): /);
  assert.match(problems({ url: 'http://h:1', workload: 'bogus' }), /workload\.type \(--workload\): must be one of shared-prefix, multi-turn, random, lora/);
  assert.match(problems({}, { url: 'http://h:1', workload: { type: 'multi-turn', turns: 0 } }), /workload\.turns \(in bench\.yaml\): /);
  assert.match(problems({}, { url: 'http://h:1', workload: { type: 'random' }, lod: {} }), /unknown field\(s\) lod/);
  assert.match(problems({}, 'just text'), /bench\.yaml: must be a mapping/);
});
