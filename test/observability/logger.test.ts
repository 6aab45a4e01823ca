import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../src/observability/logger.js';

function capture(): { text: () => string; sink: Writable } {
  let out = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString('utf8');
      done();
    },
  });
  return { text: () => out, sink };
}

test('log formats: json is one object per line; pretty is a readable line with the fields below it', () => {
  for (const format of ['json', 'pretty'] as const) {
    const { text, sink } = capture();
    const logger = createLogger('info', sink, format);
    logger.info({ pod: 'qwen-0', status: 200 }, 'Request Handled');
    logger.debug({ pod: 'qwen-1' }, 'not at info');
    const out = text();
    if (format === 'json') {
      const lines = out.trim().split('\n');
      assert.equal(lines.length, 1);
      const record = JSON.parse(lines[0] as string) as Record<string, unknown>;
      assert.equal(record['msg'], 'Request Handled');
      assert.equal(record['pod'], 'qwen-0');
    } else {
      assert.doesNotMatch(out, /^\{/, 'not JSON');
      assert.match(out, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: Request Handled$/m);
      assert.match(out, /^\s+pod: "qwen-0"$/m);
      assert.match(out, /^\s+status: 200$/m);
      assert.doesNotMatch(out, /qwen-1/);
      assert.doesNotMatch(out, /\u001b\[/, 'no colour codes when not writing to a terminal');
    }
  }
});
