import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BenchConfigError,
  createWorkload,
  MultiTurnWorkload,
  promptText,
  resolveWorkloadParams,
  syntheticText,
  type MultiTurnParams,
  type RequestSpec,
  type SharedPrefixParams,
  type Workload,
} from '../../src/bench/workloads/index.js';
import { seededRandom } from '../../src/core/weighted.js';
import { binomialZ } from '../support/stats.js';

function take(w: Workload, n: number): RequestSpec[] {
  const out: RequestSpec[] = [];
  for (let i = 0; i < n; i++) {
    const s = w.next();
    assert.ok(s !== undefined);
    out.push(s);
  }
  return out;
}

test('synthetic text: exactly 4 characters per token, words, seeded', () => {
  for (const tokens of [0, 1, 7, 100, 2048]) {
    const t = syntheticText(seededRandom(1), tokens);
    assert.equal(t.length, tokens * 4);
    assert.ok(!t.endsWith(' '));
  }
  assert.equal(syntheticText(seededRandom(9), 50), syntheticText(seededRandom(9), 50));
  assert.notEqual(syntheticText(seededRandom(9), 50), syntheticText(seededRandom(10), 50));
  assert.match(syntheticText(seededRandom(2), 30), /^[a-z]+( [a-z]+)+/);
});

test('shared-prefix: G×U prompts per pass, each (group, user) once, groups share their system prompt exactly', () => {
  const params = resolveWorkloadParams({ type: 'shared-prefix', groups: 4, usersPerGroup: 3, systemTokens: 64, questionTokens: 16, outputTokens: 8 });
  const w = createWorkload(params, 42, 'm');
  assert.equal(w.size, 12);
  const pass = take(w, 12);
  assert.deepEqual(
    pass.map((s) => `${s.group}/${s.user}`).sort(),
    Array.from({ length: 12 }, (_, i) => `${Math.floor(i / 3)}/${i % 3}`).sort(),
  );
  const systemByGroup = new Map<number, Set<string>>();
  for (const s of pass) {
    assert.equal(s.messages.length, 2);
    assert.equal(s.messages[0]?.role, 'system');
    assert.equal(s.messages[0]?.content.length, 64 * 4);
    assert.equal(s.messages[1]?.content.length, 16 * 4);
    assert.equal(s.maxTokens, 8);
    assert.equal(s.model, 'm');
    const set = systemByGroup.get(s.group as number) ?? new Set();
    set.add(s.messages[0]?.content as string);
    systemByGroup.set(s.group as number, set);
  }
  for (const set of systemByGroup.values()) assert.equal(set.size, 1, 'one system prompt per group');
  const systems = [...systemByGroup.values()].map((s) => [...s][0]);
  assert.equal(new Set(systems).size, 4, 'groups have different system prompts');
  assert.equal(new Set(pass.map((s) => s.messages[1]?.content)).size, 12, 'every user asks their own question');
  // The completions prompt keeps the shared system prompt as a prefix.
  assert.ok(promptText(pass[0]!.messages).startsWith(pass[0]!.messages[0]!.content));
  // The next pass repeats the same sequence.
  assert.deepEqual(take(w, 12).map((s) => s.messages), pass.map((s) => s.messages));
});

test('shared-prefix: seeded order repeats; ordered keeps groups together; presets and overrides', () => {
  const params = resolveWorkloadParams({ type: 'shared-prefix', groups: 5, usersPerGroup: 4, systemTokens: 8, questionTokens: 4, outputTokens: 2 }) as SharedPrefixParams;
  const seq = (seed: number): string[] => take(createWorkload(params, seed, 'm'), 20).map((s) => JSON.stringify(s));
  assert.deepEqual(seq(7), seq(7));
  assert.notDeepEqual(seq(7), seq(8));
  const ordered = take(createWorkload({ ...params, ordered: true }, 7, 'm'), 20);
  assert.deepEqual(ordered.map((s) => s.group), [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4]);
  const shuffled = take(createWorkload(params, 7, 'm'), 20);
  assert.notDeepEqual(shuffled.map((s) => s.group), ordered.map((s) => s.group), 'default order interleaves groups');

  assert.deepEqual(resolveWorkloadParams({ type: 'shared-prefix' }), {
    type: 'shared-prefix', groups: 10, usersPerGroup: 10, systemTokens: 100, questionTokens: 50, outputTokens: 50, ordered: false,
  });
  assert.deepEqual(resolveWorkloadParams({ type: 'shared-prefix', preset: 'gie-high-cache', groups: 3 }), {
    type: 'shared-prefix', groups: 3, usersPerGroup: 5, systemTokens: 6000, questionTokens: 1200, outputTokens: 1000, ordered: false,
  });
});

test('workload parameter errors name the field', () => {
  const problems = (raw: unknown): readonly string[] => {
    try {
      resolveWorkloadParams(raw);
    } catch (err) {
      assert.ok(err instanceof BenchConfigError);
      return err.problems;
    }
    assert.fail('expected an error');
  };
  assert.match(problems({ type: 'shared-prefix', groups: 0 }).join('\n'), /^workload\.groups: /);
  assert.match(problems({ type: 'shared-prefix', groups: 'many' }).join('\n'), /workload\.groups: .*number/);
  assert.match(problems({ type: 'random', grops: 1 }).join('\n'), /unknown field\(s\) grops/);
  assert.match(problems({ type: 'lora', adapters: ['a', ''] }).join('\n'), /workload\.adapters\[1\]/);
  assert.match(problems({ type: 'lora', adapters: ['a'], adapterCount: 2 }).join('\n'), /workload\.adapterCount/);
  assert.match(problems({ type: 'nope' }).join('\n'), /workload\.type/);
});

function multiTurn(over: Partial<MultiTurnParams> = {}): MultiTurnParams {
  return { ...(resolveWorkloadParams({ type: 'multi-turn' }) as MultiTurnParams), systemTokens: 20, userTokens: 10, outputTokens: 5, ...over };
}

test('multi-turn: a turn is issued only after the previous answer, and its history holds every earlier question and answer', () => {
  const w = new MultiTurnWorkload(multiTurn({ conversations: 3, turns: 3, activeConversations: 2 }), 1, 'm');
  assert.equal(w.size, 9);
  const first = [w.next(), w.next()];
  assert.equal(w.next(), undefined, 'both active conversations wait for answers');
  assert.equal(w.done, false);
  assert.deepEqual(first.map((s) => [s?.conversationId, s?.turn]), [[0, 0], [1, 0]]);

  const sent: RequestSpec[] = [...(first as RequestSpec[])];
  const pending = [...(first as RequestSpec[])];
  while (pending.length > 0) {
    const spec = pending.shift() as RequestSpec;
    w.complete(spec, { ok: true, text: `answer c${spec.conversationId} t${spec.turn}` });
    for (let s = w.next(); s !== undefined; s = w.next()) {
      sent.push(s);
      pending.push(s);
    }
  }
  assert.equal(w.done, true);
  assert.equal(sent.length, 9);
  for (const s of sent) {
    const t = s.turn as number;
    // system + (user, assistant) per earlier turn + the new user message.
    assert.equal(s.messages.length, 1 + 2 * t + 1);
    assert.equal(s.messages[0]?.role, 'system');
    for (let k = 0; k < t; k++) {
      assert.equal(s.messages[2 + 2 * k]?.role, 'assistant');
      assert.equal(s.messages[2 + 2 * k]?.content, `answer c${s.conversationId} t${k}`);
    }
    assert.equal(s.messages.at(-1)?.role, 'user');
    if (t > 0) {
      const prev = sent.find((p) => p.conversationId === s.conversationId && p.turn === t - 1) as RequestSpec;
      assert.deepEqual(s.messages.slice(0, prev.messages.length), prev.messages, 'history is a prefix of the next turn');
    }
  }
  // The third conversation opened only when one of the first two finished.
  const firstOfThird = sent.findIndex((s) => s.conversationId === 2);
  assert.ok(firstOfThird > 3);
});

test('multi-turn: the same seed and answers give the same requests; a failed turn ends its conversation', () => {
  const run = (seed: number, failAt?: string): RequestSpec[] => {
    const w = new MultiTurnWorkload(multiTurn({ conversations: 2, turns: 3, activeConversations: 2, commonPrefixTokens: 8 }), seed, 'm');
    const out: RequestSpec[] = [];
    for (;;) {
      const s = w.next();
      if (s === undefined) break;
      out.push(s);
      const key = `${s.conversationId}/${s.turn}`;
      w.complete(s, { ok: key !== failAt, text: `a${key}` });
    }
    assert.equal(w.done, true);
    return out;
  };
  assert.deepEqual(run(3), run(3));
  assert.notDeepEqual(run(3), run(4));
  const all = run(3);
  assert.equal(all.length, 6);
  const commons = all.map((s) => s.messages[0]?.content.slice(0, 32));
  assert.equal(new Set(commons).size, 1, 'the common prefix starts every system prompt');
  const failed = run(3, '0/1');
  assert.equal(failed.length, 5, 'conversation 0 stops after its failed second turn');
  assert.ok(!failed.some((s) => s.conversationId === 0 && s.turn === 2));
});

test('random: no two prompts share a prefix; repeats under a seed', () => {
  const params = resolveWorkloadParams({ type: 'random', inputTokens: 32, outputTokens: 4 });
  const specs = take(createWorkload(params, 5, 'm'), 300);
  const heads = specs.map((s) => s.messages[0]?.content.slice(0, 40));
  assert.equal(new Set(heads).size, 300);
  assert.deepEqual(take(createWorkload(params, 5, 'm'), 300), specs);
  assert.equal(specs[0]?.messages[0]?.content.length, 128);
});

test('lora: adapters drawn by Zipf weights (uniform at skew 0), deterministic', () => {
  const n = 8000;
  const uniform = take(createWorkload(resolveWorkloadParams({ type: 'lora', adapterCount: 4, inputTokens: 4 }), 1, 'base'), n);
  const counts = new Map<string, number>();
  for (const s of uniform) counts.set(s.model, (counts.get(s.model) ?? 0) + 1);
  assert.deepEqual([...counts.keys()].sort(), ['lora-0', 'lora-1', 'lora-2', 'lora-3']);
  for (const [name, c] of counts) assert.ok(Math.abs(binomialZ(c, n, 0.25)) < 4.5, `${name}: ${c}`);

  const skewed = take(createWorkload(resolveWorkloadParams({ type: 'lora', adapters: ['a', 'b', 'c'], skew: 1, inputTokens: 4 }), 1, 'base'), n);
  const total = 1 + 1 / 2 + 1 / 3;
  for (const [i, name] of ['a', 'b', 'c'].entries()) {
    const c = skewed.filter((s) => s.model === name).length;
    assert.ok(Math.abs(binomialZ(c, n, 1 / (i + 1) / total)) < 4.5, `${name}: ${c}`);
  }
  const again = take(createWorkload(resolveWorkloadParams({ type: 'lora', adapters: ['a', 'b', 'c'], skew: 1, inputTokens: 4 }), 1, 'base'), n);
  assert.deepEqual(again.map((s) => s.model), skewed.map((s) => s.model));
});
