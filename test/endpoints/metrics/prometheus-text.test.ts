import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSampleValue, scanMetrics, type Sample } from '../../../src/endpoints/metrics/prometheus-text.js';
import { FIXTURES, readFixture } from './fixtures.js';

function only(text: string, family: string): readonly Sample[] {
  return scanMetrics(text, new Set([family])).families.get(family) ?? [];
}

test('every published fixture parses with no malformed line', () => {
  for (const name of FIXTURES) {
    const scan = scanMetrics(readFixture(name), 'all');
    assert.equal(scan.malformedLines, 0, `${name}: first malformed line ${scan.firstMalformedLine}`);
    assert.ok(scan.families.size > 0, name);
  }
});

test('fixture families, types and values come out as published', () => {
  const v1 = scanMetrics(readFixture('vllm-v1-docs.txt'), 'all');
  assert.deepEqual([...v1.families.keys()], [
    'vllm:num_requests_running',
    'vllm:generation_tokens_total',
    'vllm:request_success_total',
    'vllm:time_to_first_token_seconds',
  ]);
  assert.equal(v1.types.get('vllm:generation_tokens_total'), 'counter');
  assert.equal(v1.types.get('vllm:time_to_first_token_seconds'), 'histogram');
  // The docs' TTFT histogram stops at le="0.1" and has no +Inf bucket and no _sum.
  const ttft = v1.families.get('vllm:time_to_first_token_seconds') ?? [];
  assert.equal(ttft.filter((s) => s.name.endsWith('_bucket')).length, 8);
  assert.equal(ttft.some((s) => s.labels['le'] === '+Inf'), false);
  assert.deepEqual(ttft.at(-1), {
    name: 'vllm:time_to_first_token_seconds_count',
    labels: { model_name: 'meta-llama/Llama-3.1-8B-Instruct' },
    value: 140,
  });

  const lora = scanMetrics(readFixture('vllm-lora-info.txt'), 'all');
  assert.equal(lora.types.size, 0, 'the simulator lines carry no # TYPE');
  assert.deepEqual(
    lora.families.get('vllm:lora_requests_info')?.map((s) => s.value),
    [1.257894567e9, 1.257894569e9],
  );

  const sglang = scanMetrics(readFixture('sglang-docs.txt'), 'all');
  const hist = sglang.families.get('sglang:time_to_first_token_seconds') ?? [];
  assert.deepEqual(
    hist.map((s) => [s.name.slice('sglang:time_to_first_token_seconds'.length), s.labels['le'] ?? '', s.value]),
    [
      ['_sum', '', 2.3518979474117756e6],
      ['_bucket', '0.001', 0],
      ['_bucket', '1.0', 27],
      ['_bucket', '+Inf', 11008],
      ['_count', '', 11008],
    ],
  );
});

test('sample values: exponents, integers, infinities, NaN; hex and junk refused', () => {
  const good: [string, number][] = [
    ['1.257894567e+09', 1257894567],
    ['8', 8],
    ['8.0', 8],
    ['-3', -3],
    ['.5', 0.5],
    ['1E3', 1000],
    ['2.5e-3', 0.0025],
    ['+Inf', Infinity],
    ['Inf', Infinity],
    ['-Inf', -Infinity],
    ['+inf', Infinity],
  ];
  for (const [token, value] of good) assert.equal(parseSampleValue(token), value, token);
  assert.ok(Number.isNaN(parseSampleValue('NaN')));
  assert.ok(Number.isNaN(parseSampleValue('nan')));
  for (const bad of ['', '0x10', '0b1', 'abc', '1e', '--1', '1.2.3', 'Infx']) {
    assert.equal(parseSampleValue(bad), undefined, JSON.stringify(bad));
  }
  const page = 'a 1.257894567e+09\nb 42\nc +Inf\nd NaN\n';
  const scan = scanMetrics(page, 'all');
  assert.equal(scan.families.get('a')?.[0]?.value, 1257894567);
  assert.equal(scan.families.get('b')?.[0]?.value, 42);
  assert.equal(scan.families.get('c')?.[0]?.value, Infinity);
  assert.ok(Number.isNaN(scan.families.get('d')?.[0]?.value));
});

test('label values unescape \\" \\\\ and \\n; unknown escapes stay literal', () => {
  const page = String.raw`m{a="say \"hi\"",b="C:\\dir",c="two\nlines",d="tab\t",e="",f="x,y=z}"} 1` + '\n';
  const [s] = only(page, 'm');
  assert.deepEqual(s?.labels, { a: 'say "hi"', b: 'C:\\dir', c: 'two\nlines', d: 'tab\\t', e: '', f: 'x,y=z}' });
  // A line with an escape followed by plain lines: the fast path must not misread later values.
  const mixed = String.raw`m{a="\\"} 1` + '\nm{a="plain"} 2\nm{a="back\\\\slash"} 3\n';
  assert.deepEqual(
    only(mixed, 'm').map((x) => x.labels['a']),
    ['\\', 'plain', 'back\\slash'],
  );
});

test('label order, spacing, empty sets and trailing commas do not matter', () => {
  const page = [
    'm{b="2",a="1"} 1',
    'm{a="1",b="2"} 2',
    'm{ a = "1" , b = "2" , } 3',
    'm{} 4',
    'm 5',
    '   m{a="1"}   6   ',
    'm\t7',
  ].join('\n');
  const samples = only(page, 'm');
  assert.deepEqual(samples.map((s) => s.value), [1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(samples[0]?.labels, samples[1]?.labels);
  assert.deepEqual(samples[2]?.labels, { a: '1', b: '2' });
  assert.deepEqual(samples[3]?.labels, {});
  assert.equal(scanMetrics(page, 'all').malformedLines, 0);
});

test('optional timestamps are accepted', () => {
  const scan = scanMetrics('m 1 1700000000000\nm{a="x"} 2 -5\nm 3 0 \n', 'all');
  assert.equal(scan.malformedLines, 0);
  assert.deepEqual(scan.families.get('m')?.map((s) => s.value), [1, 2, 3]);
});

test('CRLF line endings, blank lines and a missing final newline', () => {
  const lf = readFixture('sglang-docs.txt');
  const crlf = `\r\n\r\n${lf.replace(/\n/g, '\r\n\r\n   \r\n')}`;
  const a = scanMetrics(lf, 'all');
  const b = scanMetrics(crlf, 'all');
  assert.equal(b.malformedLines, 0);
  assert.deepEqual([...b.families], [...a.families]);
  assert.deepEqual([...b.types], [...a.types]);
  assert.equal(only('m{a="1"} 7', 'm')[0]?.value, 7);
  assert.equal(only('m 7\r', 'm')[0]?.value, 7);
});

test('malformed lines are skipped and counted, never thrown', () => {
  const bad = [
    'm{a="1" 1', // unclosed label set
    'm{a=1} 1', // unquoted value
    'm{a="1} 1', // unclosed quote
    'm{a="1"b="2"} 1', // missing comma
    'm{a="1",a="2"} 1', // repeated label
    'm{1a="1"} 1', // bad label name
    'm', // no value
    'm{}', // no value
    'm  ', // no value
    '1m 1', // bad metric name
    'm-x 1', // bad metric name
    'm 1 x', // bad timestamp
    'm 1 2 3', // trailing junk
    'm 1 12.5', // non-integer timestamp
    'm 0x10', // hex value
    'm one', // junk value
    '# TYPE m bogus', // unknown type
    '# TYPE', // no name
    '# TYPE m', // no type
    '# HELP 1m docs', // bad name
    '{a="1"} 1', // no name at all
  ];
  const lines = ['# TYPE m gauge', 'm{a="ok"} 1', ...bad, 'm{a="ok"} 2', '# a comment', '#HELPFUL remark', ''];
  const scan = scanMetrics(lines.join('\n'), 'all');
  assert.equal(scan.malformedLines, bad.length);
  assert.equal(scan.firstMalformedLine, 3);
  assert.deepEqual(scan.families.get('m')?.map((s) => s.value), [1, 2]);
  for (const line of bad) {
    assert.equal(scanMetrics(`${line}\n`, 'all').malformedLines, 1, line);
  }
});

test('targeted scans return only wanted families and skip the rest unparsed', () => {
  const text = readFixture('vllm-v1-docs.txt');
  const scan = scanMetrics(text, new Set(['vllm:num_requests_running', 'vllm:not_on_page']));
  assert.deepEqual([...scan.families.keys()], ['vllm:num_requests_running']);
  assert.deepEqual([...scan.types], [['vllm:num_requests_running', 'gauge']]);
  // A broken line of an unwanted family is not looked at past its name.
  const junk = `${text}vllm:other{a="unclosed 1\n`;
  assert.equal(scanMetrics(junk, new Set(['vllm:num_requests_running'])).malformedLines, 0);
  assert.equal(scanMetrics(junk, 'all').malformedLines, 1);
});

test('histogram and counter suffixes fold into the wanted family; an exact name wins', () => {
  // No # TYPE lines: a wanted base still collects its suffixed lines.
  const page = ['h_bucket{le="1"} 1', 'h_bucket{le="+Inf"} 2', 'h_sum 3', 'h_count 2', 'c_total 9', 'g_count 4'].join('\n');
  const scan = scanMetrics(page, new Set(['h', 'c', 'g_count']));
  assert.deepEqual(scan.families.get('h')?.map((s) => s.name), ['h_bucket', 'h_bucket', 'h_sum', 'h_count']);
  assert.deepEqual(scan.families.get('c')?.map((s) => s.name), ['c_total']);
  assert.deepEqual(scan.families.get('g_count')?.map((s) => s.value), [4]);
  // A declared gauge does not swallow a `_count` series of another family.
  const typed = scanMetrics('# TYPE q gauge\nq 1\nq_count 5\n', new Set(['q']));
  assert.deepEqual(typed.families.get('q')?.map((s) => s.value), [1]);
  // OpenMetrics-style counter: declared without _total, sampled with it.
  const om = scanMetrics('# TYPE r counter\nr_total 7\n', new Set(['r_total']));
  assert.equal(om.types.get('r_total'), 'counter');
  assert.equal(om.families.get('r_total')?.[0]?.value, 7);
});

test('name prefixes are reported for every family, wanted or not', () => {
  const scan = scanMetrics(readFixture('triton-trtllm-docs.txt'), new Set(), {
    prefixes: ['vllm:', 'nv_trt_llm_', 'nv_inference_', 'trtllm_'],
  });
  assert.deepEqual(scan.seenPrefixes, ['nv_trt_llm_', 'nv_inference_']);
  assert.equal(scan.families.size, 0);
});

test('arbitrary input never throws', () => {
  let seed = 12345;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648);
  const alphabet = 'm_:{}="\\,\n\r\t #01.e+-InfNaTYPEHELPabc';
  for (let round = 0; round < 500; round++) {
    let s = '';
    const n = next() % 120;
    for (let i = 0; i < n; i++) s += alphabet[next() % alphabet.length];
    const scan = scanMetrics(s, round % 2 === 0 ? 'all' : new Set(['m', 'm_']));
    assert.ok(scan.malformedLines >= 0);
  }
});
