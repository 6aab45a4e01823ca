import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Endpoint } from '../../src/core/endpoint.js';
import { seededRandom } from '../../src/core/weighted.js';
import { buildScheduler, type SchedulerConfig } from '../../src/scheduling/config.js';
import { builtinRegistry, policyFor } from '../../src/scheduling/policies.js';
import { PluginConfigError } from '../../src/scheduling/registry.js';
import type { Filter, ProfileHandler, ProfileResult, RunnableProfile, SchedulingRequest } from '../../src/scheduling/types.js';
import { endpoints, handle, request } from './support.js';

/** A test filter keeping endpoints whose name ends with a parameter. */
function suffixFilter(name: string, parameters: Readonly<Record<string, unknown>>): Filter {
  const suffix = String(parameters['suffix']);
  return { typedName: { type: 'suffix-filter', name }, filter: (_r: SchedulingRequest, eps: readonly Endpoint[]) => eps.filter((e) => e.name.endsWith(suffix)) };
}

/** A test handler: runs `first`, then `second`; `second` is primary. */
function twoStepHandler(name: string): ProfileHandler {
  return {
    typedName: { type: 'two-step', name },
    pick: (_r, profiles: ReadonlyMap<string, RunnableProfile>, results: ReadonlyMap<string, ProfileResult>) => {
      const next = results.has('first') ? (results.has('second') ? undefined : profiles.get('second')) : profiles.get('first');
      return next === undefined ? [] : [next];
    },
    processResults: () => 'second',
  };
}

function registry(): ReturnType<typeof builtinRegistry> {
  const r = builtinRegistry();
  r.register('suffix-filter', suffixFilter);
  r.register('two-step', twoStepHandler);
  return r;
}

const TWO_PROFILES: SchedulerConfig = {
  plugins: [
    { name: 'even', type: 'suffix-filter', parameters: { suffix: '0' } },
    { name: 'odd', type: 'suffix-filter', parameters: { suffix: '1' } },
    { name: 'queue', type: 'queue-scorer' },
    { name: 'handler', type: 'two-step' },
  ],
  profiles: [
    { name: 'first', plugins: [{ pluginRef: 'even' }, { pluginRef: 'queue', weight: 2 }] },
    { name: 'second', plugins: [{ pluginRef: 'odd' }, { pluginRef: 'queue' }] },
  ],
  profileHandler: 'handler',
};

test('scheduler: a profile handler runs several profiles (filters with parameters) and names the primary', () => {
  const { scheduler } = buildScheduler(TWO_PROFILES, registry(), handle());
  const result = scheduler.schedule(request(), endpoints([{}, {}, {}, {}]), seededRandom(1));
  assert.deepEqual([...result.profiles.keys()], ['first', 'second']);
  assert.equal(result.primaryProfile, 'second');
  assert.equal(result.primary, result.profiles.get('second'));
  assert.deepEqual(result.profiles.get('first')?.endpoints.map((e) => e.name), ['pod-0']);
  assert.deepEqual(result.profiles.get('second')?.endpoints.map((e) => e.name), ['pod-1']);
});

test('scheduler config: every mistake is refused with the plugin or profile and the field', () => {
  const cases: Array<{ name: string; config: SchedulerConfig; match: RegExp }> = [
    { name: 'dangling pluginRef', config: { plugins: [], profiles: [{ name: 'p', plugins: [{ pluginRef: 'nope' }] }] }, match: /profile p: plugins\[0\]\.pluginRef: no plugin named "nope"/ },
    { name: 'unknown type', config: { plugins: [{ name: 'x', type: 'warp-scorer' }], profiles: [{ name: 'p', plugins: [] }] }, match: /x \(warp-scorer\): type: unknown plugin type/ },
    { name: 'bad parameter', config: { plugins: [{ name: 'pick', type: 'max-score-picker', parameters: { maxNumOfEndpoints: 0 } }], profiles: [{ name: 'p', plugins: [] }] }, match: /pick \(max-score-picker\): parameters\.maxNumOfEndpoints/ },
    { name: 'misspelt parameter', config: { plugins: [{ name: 'px', type: 'prefix-cache-scorer', parameters: { hotspotQueueDelt: 1 } }], profiles: [{ name: 'p', plugins: [] }] }, match: /px \(prefix-cache-scorer\): parameters/ },
    { name: 'negative weight', config: { plugins: [{ name: 'q', type: 'queue-scorer' }], profiles: [{ name: 'p', plugins: [{ pluginRef: 'q', weight: -1 }] }] }, match: /plugins\[0\]\.weight/ },
    {
      name: 'two pickers',
      config: { plugins: [{ name: 'a', type: 'max-score-picker' }, { name: 'b', type: 'round-robin-picker' }], profiles: [{ name: 'p', plugins: [{ pluginRef: 'a' }, { pluginRef: 'b' }] }] },
      match: /one picker/,
    },
    { name: 'single handler, two profiles', config: { plugins: [], profiles: [{ name: 'a', plugins: [] }, { name: 'b', plugins: [] }] }, match: /exactly one profile/ },
    { name: 'no profile', config: { plugins: [], profiles: [] }, match: /at least one scheduling profile/ },
  ];
  for (const c of cases) assert.throws(() => buildScheduler(c.config, registry(), handle()), (e: unknown) => e instanceof PluginConfigError && c.match.test(e.message), c.name);
});

test('scheduler config: unchanged plugin instances are reused from the previous build', () => {
  const first = buildScheduler(TWO_PROFILES, registry(), handle());
  const second = buildScheduler(TWO_PROFILES, registry(), handle(), first.cache);
  assert.deepEqual(second.scheduler.plugins(), first.scheduler.plugins());
  const changed = buildScheduler({ ...TWO_PROFILES, plugins: TWO_PROFILES.plugins.map((p) => (p.name === 'even' ? { ...p, parameters: { suffix: '2' } } : p)) }, registry(), handle(), first.cache);
  const names = (s: typeof changed): Map<string, unknown> => new Map(s.scheduler.plugins().map((p) => [p.typedName.name, p]));
  assert.notEqual(names(changed).get('even'), names(first).get('even'));
  assert.equal(names(changed).get('queue'), names(first).get('queue'));
});

test('policies: annotations map onto plugin instances and weights', () => {
  const weights = (cfg: SchedulerConfig): string =>
    (cfg.profiles[0]?.plugins ?? []).map((r) => `${r.pluginRef}×${r.weight ?? 1}`).join(' ');
  assert.equal(weights(policyFor('DEFAULT', undefined).config), 'queue×2 kvCache×2 inflight×1 prefill×2 lora×1');
  assert.equal(weights(policyFor('PREFIX_CACHE', undefined).config), 'queue×2 kvCache×2 inflight×1 prefill×2 lora×1 prefix×3');
  assert.equal(weights(policyFor('DEFAULT', { scorers: { prefix: 5, lora: 0 } }).config), 'queue×2 kvCache×2 inflight×1 prefill×2 prefix×5');
  const prefix = policyFor('PREFIX_CACHE', { prefix: { hotspotQueueDelta: 9 } }).config.plugins.find((p) => p.name === 'prefix');
  assert.deepEqual(prefix?.parameters, { hotspotQueueDelta: 9 });
  assert.equal(policyFor('PREFIX_CACHE', { policy: 'random' }).name, 'RANDOM');
  assert.equal(policyFor('DEFAULT', { policy: 'round-robin' }).config.plugins[0]?.type, 'round-robin-picker');
  for (const strategy of ['DEFAULT', 'PREFIX_CACHE'] as const) buildScheduler(policyFor(strategy, undefined).config, builtinRegistry(), handle());
});
