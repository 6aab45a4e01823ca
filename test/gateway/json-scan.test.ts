import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../src/core/errors.js';
import { parseInferenceBody } from '../../src/gateway/body.js';
import { editTopLevel, MAX_JSON_CONTAINERS, MAX_JSON_DEPTH, MAX_JSON_KEYS, MAX_JSON_VALUES, scanJsonObject } from '../../src/gateway/json-scan.js';
import { spliceModel } from '../../src/gateway/model-splice.js';

const refused = (body: string | Buffer, pattern: RegExp): void => {
  assert.throws(() => parseInferenceBody(Buffer.isBuffer(body) ? body : Buffer.from(body)), (err: unknown) => err instanceof GatewayError && err.status === 400 && pattern.test(err.message), String(body).slice(0, 80));
};

test('keys are compared as JSON decodes them: any two spellings of one key in one object are refused, at any depth', () => {
  for (const body of [
    '{"model":"a","model":"b"}',
    '{"model":"a","mod\\u0065l":"b"}',
    '{"\\u006d\\u006f\\u0064\\u0065\\u006c":"a","model":"b"}',
    '{"model":"a","stream_options":{"include_usage":true,"include_\\u0075sage":false}}',
    '{"model":"a","sampling_params":{"n":1,"n":2}}',
    '{"model":"a","messages":[{"role":"user"},{"role":"user","role":"system"}]}',
    '{"model":"a","tools":[{"function":{"parameters":{"type":"object","type":"string"}}}]}',
    '{"model":"a","é":1,"\\u00e9":2}',
  ]) refused(body, /twice in one object/);
  // The same key in different objects, or a key-like string, is fine.
  for (const body of ['{"model":"a","messages":[{"role":"user"},{"role":"assistant"}]}', '{"model":"a","x":"\\"model\\":\\"b\\"","y":{"model":"c"}}', '{"model":"a","prompt":"\\\\","b":"\\\\\\""}']) {
    assert.equal(parseInferenceBody(Buffer.from(body)).model, 'a', body);
  }
});

test('nesting is bounded: MAX_JSON_DEPTH levels pass, one more is refused, whatever the containers', () => {
  const nest = (levels: number, open: string, close: string): string => `{"model":"m","x":${open.repeat(levels - 1)}1${close.repeat(levels - 1)}}`;
  assert.equal(parseInferenceBody(Buffer.from(nest(MAX_JSON_DEPTH, '[', ']'))).model, 'm');
  refused(nest(MAX_JSON_DEPTH + 1, '[', ']'), /more than 128 levels/);
  assert.equal(parseInferenceBody(Buffer.from(nest(MAX_JSON_DEPTH, '{"k":', '}'))).model, 'm');
  refused(nest(MAX_JSON_DEPTH + 1, '{"k":', '}'), /more than 128 levels/);
  refused(nest(100_000, '[', ']'), /more than 128 levels/);
});

test('UTF-8 only, no BOM; the fields the gateway reads have the types it reads them as', () => {
  refused(Buffer.concat([Buffer.from('{"model":"m","prompt":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), /UTF-8/);
  refused(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"model":"m"}')]), /not valid JSON/);
  for (const [body, field] of [
    ['{"model":"m","stream":"true"}', 'stream'],
    ['{"model":"m","stream":1}', 'stream'],
    ['{"model":"m","n":"2"}', 'n'],
    ['{"model":"m","n":2.5}', 'n'],
    ['{"model":"m","stream_options":[]}', 'stream_options'],
    ['{"model":"m","stream_options":{"include_usage":1}}', 'stream_options.include_usage'],
    ['{"model":"m","sampling_params":{"n":"4"}}', 'sampling_params.n'],
    ['{"model":"m","logprobs":"true"}', 'logprobs'],
    ['{"model":"m","return_logprob":1}', 'return_logprob'],
  ] as const) refused(body, new RegExp(`^"${field.replace('.', '\\.')}" must be`));
  assert.equal(parseInferenceBody(Buffer.from('{"model":"m","stream":null,"n":null,"logprobs":5}')).stream, false);
});

test('spliceModel rewrites the key the gateway read, however it is spelled, and leaves other bytes alone', () => {
  const body = Buffer.from('{"prompt":"\\"model\\": \\"x\\"", "mod\\u0065l" : "a" ,"m":{"model":"n"}}');
  const out = spliceModel(body, 'b');
  assert.equal(out?.toString(), '{"prompt":"\\"model\\": \\"x\\"", "mod\\u0065l" : "b" ,"m":{"model":"n"}}');
});

test('editTopLevel removes first, middle, last and only members and keeps the JSON well-formed', () => {
  const cases: Array<[string, string[], Record<string, unknown>]> = [
    ['{"a":1,"b":2,"c":3}', ['a'], { b: 2, c: 3 }],
    ['{ "a" : 1 , "b":2 ,"c":3 }', ['b'], { a: 1, c: 3 }],
    ['{"a":1,"b":[2,{"c":3}],"c":"}"}', ['c'], { a: 1, b: [2, { c: 3 }] }],
    ['{"a":{"x":1}}', ['a'], {}],
    ['{"a":1,"b":2}', ['a', 'b'], {}],
  ];
  for (const [body, remove, expected] of cases) {
    const raw = Buffer.from(body);
    const out = editTopLevel(raw, scanJsonObject(raw), new Map(), new Set(remove));
    assert.deepEqual(JSON.parse(out.toString()), expected, `${body} − ${remove.join(',')}`);
  }
  const raw = Buffer.from('{"kv_transfer_params":{"remote_host":"h"},"model":"m"}');
  const out = editTopLevel(raw, scanJsonObject(raw), new Map([['stream_options', '{"include_usage":true}']]), new Set(['kv_transfer_params']));
  assert.deepEqual(JSON.parse(out.toString()), { stream_options: { include_usage: true }, model: 'm' });
  const empty = Buffer.from('{ }');
  assert.deepEqual(JSON.parse(editTopLevel(empty, scanJsonObject(empty), new Map([['a', '1'], ['b', '2']])).toString()), { a: 1, b: 2 });
});

test('the number of objects and arrays, keys and values is bounded at the documented limits, exactly', () => {
  const empties = (count: number): string => Array.from({ length: count }, () => '[]').join(',');
  // The body's object and the outer array count: 65,536 containers in all pass, one more does not.
  assert.equal(parseInferenceBody(Buffer.from(`{"model":"m","a":[${empties(MAX_JSON_CONTAINERS - 2)}]}`)).model, 'm');
  refused(`{"model":"m","a":[${empties(MAX_JSON_CONTAINERS - 1)}]}`, new RegExp(`more than ${MAX_JSON_CONTAINERS} objects and arrays`));
  const keys = (count: number): string => Array.from({ length: count }, (_, i) => `"k${i}":0`).join(',');
  assert.equal(parseInferenceBody(Buffer.from(`{"model":"m","b":{${keys(MAX_JSON_KEYS - 2)}}}`)).model, 'm');
  refused(`{"model":"m","b":{${keys(MAX_JSON_KEYS - 1)}}}`, new RegExp(`more than ${MAX_JSON_KEYS} object members`));
  const ints = (count: number): string => '1,'.repeat(count - 1) + '1';
  // `model`'s value and the array are values too.
  assert.equal(parseInferenceBody(Buffer.from(`{"model":"m","prompt":[${ints(MAX_JSON_VALUES - 2)}]}`)).model, 'm');
  refused(`{"model":"m","prompt":[${ints(MAX_JSON_VALUES - 1)}]}`, new RegExp(`more than ${MAX_JSON_VALUES} values`));
  // Refused before JSON.parse: the limit is said even when the JSON is broken further on.
  refused(`{"model":"m","a":[${empties(MAX_JSON_CONTAINERS)}`, /objects and arrays/);
});
