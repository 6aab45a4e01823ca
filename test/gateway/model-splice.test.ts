import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseInferenceBody } from '../../src/gateway/body.js';
import { spliceModel } from '../../src/gateway/model-splice.js';
import { scanJsonObject } from '../../src/gateway/json-scan.js';
import { GatewayError } from '../../src/core/errors.js';

const cases: Array<{ name: string; body: string }> = [
  { name: 'simple', body: '{"model":"a","prompt":"hi"}' },
  { name: 'model last, spaces', body: '{ "prompt" : "x" ,\n  "model" :  "a" }' },
  { name: 'nested model keys are not top-level', body: '{"messages":[{"model":"no","content":"{\\"model\\":\\"no\\"}"}],"model":"a"}' },
  { name: 'escaped quotes and unicode before', body: '{"prompt":"say \\"model\\": 北京 \\\\","model":"a","stream":true}' },
  { name: 'value that looks like a key', body: '{"x":"model","model":"a"}' },
  { name: 'object value containing model', body: '{"meta":{"model":"no"},"model":"a"}' },
];

test('spliceModel replaces only the top-level model and leaves every other byte as it was', () => {
  for (const { name, body } of cases) {
    const out = spliceModel(Buffer.from(body), 'travel-helper-v2');
    assert.ok(out !== undefined, name);
    const parsed = JSON.parse(out.toString()) as Record<string, unknown>;
    const original = JSON.parse(body) as Record<string, unknown>;
    assert.deepEqual(parsed, { ...original, model: 'travel-helper-v2' }, name);
    // Everything outside the value is byte-identical.
    const raw = Buffer.from(body);
    const member = scanJsonObject(raw).members.find((m) => m.name === 'model');
    assert.ok(member !== undefined);
    const span = { start: member.valueStart, end: member.valueEnd };
    const tail = raw.length - span.end;
    assert.ok(out.subarray(0, span.start).equals(raw.subarray(0, span.start)), name);
    assert.ok(out.subarray(out.length - tail).equals(raw.subarray(span.end)), name);
  }
});

test('spliceModel escapes the new value and returns undefined when model is not a top-level string', () => {
  const out = spliceModel(Buffer.from('{"model":"a"}'), 'we"ird\\name');
  assert.deepEqual(JSON.parse(String(out)), { model: 'we"ird\\name' });
  assert.equal(spliceModel(Buffer.from('{"model":7}'), 'x'), undefined);
  assert.equal(spliceModel(Buffer.from('{"messages":[{"model":"a"}]}'), 'x'), undefined);
});

test('parseInferenceBody refuses what is not an OpenAI request, with stable codes', () => {
  const bad: Array<[string, string]> = [
    ['{"model": ', 'invalid_json'],
    ['[1,2]', 'invalid_body'],
    ['"text"', 'invalid_body'],
    ['{"prompt":"x"}', 'missing_model'],
    ['{"model":""}', 'missing_model'],
    ['{"model":42}', 'missing_model'],
  ];
  for (const [body, code] of bad) {
    assert.throws(() => parseInferenceBody(Buffer.from(body)), (err: unknown) => err instanceof GatewayError && err.code === code && err.status === 400, body);
  }
  const ok = parseInferenceBody(Buffer.from('{"model":"m","stream":true}'));
  assert.equal(ok.model, 'm');
  assert.equal(ok.stream, true);
});
