import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Progress } from '../../src/bench/progress.js';

test('progress: redrawn in place on a terminal, plain lines elsewhere', () => {
  const tty: string[] = [];
  const p = new Progress(10, 60, { stream: { write: (t: string) => tty.push(t), isTTY: true }, label: 'x' });
  p.start();
  p.sent();
  p.sent();
  p.finished(true, 120);
  p.finished(false, undefined);
  p.stop();
  assert.equal(tty.length, 1, 'nothing is drawn between ticks');
  assert.match(tty[0] ?? '', /^\r\[x\] 2\/10 done · [\d.]+ req\/s · 1 error · p50 TTFT 120 ms · 0 in flight · \d+\/60 s\x1b\[K\n$/);

  const plain: string[] = [];
  const q = new Progress(undefined, undefined, { stream: { write: (t: string) => plain.push(t) } });
  q.stop();
  assert.match(plain[0] ?? '', /^\[bench\] 0 done · 0\.0 req\/s · 0 errors · p50 TTFT – · 0 in flight · \d+ s\n$/);
});
