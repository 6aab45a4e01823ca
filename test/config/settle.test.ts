import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDocuments } from '../../src/api/index.js';
import type { Resource } from '../../src/api/types.js';
import { RemovalSettle } from '../../src/config/settle.js';
import { poolYaml } from '../support/config.js';

const read = (files: Record<string, string>): Resource[] => Object.entries(files).flatMap(([file, yaml]) => [...parseDocuments(yaml, file).resources]);
const stamps = (entries: Record<string, string>): Map<string, string> => new Map(Object.entries(entries));

test('RemovalSettle: a removal waits for the file to keep one stamp for the window; a new stamp restarts it', () => {
  const settle = new RemovalSettle(1000);
  const both = read({ 'p.yaml': poolYaml('a', 'a', 1) + poolYaml('b', 'b', 1) });
  settle.observe(stamps({ 'p.yaml': 's1' }), 0);
  settle.applied(both);
  const half = read({ 'p.yaml': poolYaml('a', 'a', 1) });
  settle.observe(stamps({ 'p.yaml': 's2' }), 100);
  assert.deepEqual(settle.decide(half, 100), { action: 'hold', untilMs: 1100, files: ['p.yaml'], removed: ['InferencePool/default/b'] });
  settle.observe(stamps({ 'p.yaml': 's3' }), 900); // written again, still short
  assert.equal(settle.decide(half, 1100).action, 'hold', 'the window restarts with the new stamp');
  settle.observe(stamps({ 'p.yaml': 's3' }), 1900);
  assert.deepEqual(settle.decide(half, 1900), { action: 'apply' }, 'unchanged for the window: a real removal');
  assert.deepEqual(settle.decide(both, 100), { action: 'apply' }, 'nothing removed: applies at once');
});

test('RemovalSettle: a resource moved to another file is no removal; a deleted file holds its resources', () => {
  const settle = new RemovalSettle(1000);
  settle.observe(stamps({ 'a.yaml': 'a1', 'b.yaml': 'b1' }), 0);
  settle.applied(read({ 'a.yaml': poolYaml('a', 'a', 1), 'b.yaml': poolYaml('b', 'b', 1) }));
  settle.observe(stamps({ 'a.yaml': 'a2', 'b.yaml': 'b2' }), 10);
  assert.deepEqual(settle.decide(read({ 'a.yaml': '', 'b.yaml': poolYaml('a', 'a', 1) + poolYaml('b', 'b', 1) }), 10), { action: 'apply' });
  settle.observe(stamps({ 'b.yaml': 'b2' }), 20); // a.yaml deleted
  const decision = settle.decide(read({ 'b.yaml': poolYaml('b', 'b', 1) }), 20);
  assert.deepEqual(decision, { action: 'hold', untilMs: 1020, files: ['a.yaml'], removed: ['InferencePool/default/a'] });
});

test('RemovalSettle: a file that serves and got shorter is held like a removal, even if every resource is still there', () => {
  // A route cut after its third rule still parses: the same resources, fewer rules.
  const settle = new RemovalSettle(1000);
  const whole = read({ 'r.yaml': poolYaml('a', 'a', 1) });
  settle.observe(stamps({ 'r.yaml': '7:900:1' }), 0);
  settle.applied(whole);
  settle.observe(stamps({ 'r.yaml': '7:480:2' }), 100);
  assert.deepEqual(settle.decide(whole, 100), { action: 'hold', untilMs: 1100, files: ['r.yaml'], removed: [] }, 'shorter: held');
  settle.observe(stamps({ 'r.yaml': '7:950:3' }), 600);
  assert.deepEqual(settle.decide(whole, 600), { action: 'apply' }, 'the rest arrived (longer than what served): applies at once');
  settle.applied(whole);
  settle.observe(stamps({ 'r.yaml': '7:940:4' }), 700);
  assert.equal(settle.decide(whole, 700).action, 'hold', 'a shortening edit (weight: 90 → 9) waits too');
  settle.observe(stamps({ 'r.yaml': '7:940:4' }), 1700);
  assert.deepEqual(settle.decide(whole, 1700), { action: 'apply' }, 'and applies once it stayed so for the window');
});
