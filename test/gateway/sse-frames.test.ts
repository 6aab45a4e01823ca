import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endsWithDone, SseFramer } from '../../src/gateway/sse-frames.js';
import { GatewayError } from '../../src/core/errors.js';
import { seededRandom } from '../../src/core/weighted.js';

const EVENTS = ['data: {"a":1}', 'event: x\ndata: {"b":"é"}', ': comment', 'data: [DONE]'];

/** Bytes of whole events within the first `k`: an event ending in CRLF is whole at its CR. */
function completeWithin(ends: readonly number[], eol: string, k: number): number {
  return Math.max(0, ...ends.map((e) => (e <= k ? e : eol === '\r\n' && e - 1 === k ? k : 0)));
}

/** Feeds `bytes` cut at `cuts`; returns what went out after each piece. */
function feed(framer: SseFramer, bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(framer.push(bytes.subarray(at, cut)));
    at = cut;
  }
  return out;
}

for (const eol of ['\n', '\r\n', '\r']) {
  const stream = Buffer.from(EVENTS.map((e) => e.replaceAll('\n', eol) + eol + eol).join(''), 'utf8');
  const ends: number[] = [];
  for (let i = 0, at = 0; i < EVENTS.length; i++) ends.push((at += Buffer.byteLength((EVENTS[i] as string).replaceAll('\n', eol) + eol + eol)));

  test(`framer (${JSON.stringify(eol)}): a stream cut into two at any byte passes whole, each event as soon as it is complete`, () => {
    for (let k = 0; k <= stream.length; k++) {
      const framer = new SseFramer();
      const [first, second] = feed(framer, stream, [k]);
      // What goes out after k bytes: every event complete within them (a CR ending an event is
      // complete at once; the LF of its CRLF follows with the next bytes).
      const complete = completeWithin(ends, eol, k);
      assert.equal(first?.length, complete, `k=${k}`);
      assert.ok(Buffer.concat([first as Buffer, second as Buffer]).equals(stream), `k=${k}`);
      assert.deepEqual(framer.end(), { rest: undefined, dropped: false });
    }
  });

  test(`framer (${JSON.stringify(eol)}): a stream ending at any byte drops the partial event only`, () => {
    for (let k = 0; k < stream.length; k++) {
      const framer = new SseFramer();
      const out = Buffer.concat(feed(framer, stream.subarray(0, k), Array.from({ length: k }, (_, i) => i)));
      const complete = completeWithin(ends, eol, k);
      assert.equal(out.length, complete, `k=${k}`);
      const { rest, dropped } = framer.end();
      // Only `data: [DONE]` without its blank line is completed; anything else partial is dropped.
      const tail = stream.subarray(complete, k).toString();
      if (tail === '' || /^[\r\n]+$/.test(tail)) assert.equal(dropped, false, `k=${k}`);
      else if (tail.startsWith('data: [DONE]')) assert.equal(rest?.toString(), 'data: [DONE]\n\n', `k=${k}`);
      else assert.equal(dropped, true, `k=${k}: ${JSON.stringify(tail)}`);
    }
  });
}

test('endsWithDone: only a last event that is data: [DONE]', () => {
  assert.ok(endsWithDone(Buffer.from('data: {"a":1}\n\ndata: [DONE]\n\n')));
  assert.ok(endsWithDone(Buffer.from('data:[DONE]\r\n\r\n')));
  assert.ok(endsWithDone(Buffer.from('data: [DONE]\r\r')));
  assert.ok(!endsWithDone(Buffer.from('data: {"t":"[DONE]"}\n\n')));
  assert.ok(!endsWithDone(Buffer.from('data: x [DONE]\n\n')));
  assert.ok(!endsWithDone(Buffer.from('data: {"a":1}\n\n')));
});

test('framer: an event that never ends is refused past its bound, however it is chunked; smaller ones pass', () => {
  const framer = new SseFramer(64);
  assert.deepEqual(framer.push(Buffer.from('data: {"a":1}\n\n')).toString(), 'data: {"a":1}\n\n');
  // 60 bytes of an open event held, in pieces; the next piece takes it past 64.
  for (let i = 0; i < 6; i++) assert.equal(framer.push(Buffer.from('x'.repeat(10))).length, 0);
  assert.throws(() => framer.push(Buffer.from('x'.repeat(10))), (err: unknown) => err instanceof GatewayError && err.code === 'upstream_event_too_large');
  const ok = new SseFramer(64);
  assert.equal(ok.push(Buffer.from(`data: ${'y'.repeat(50)}`)).length, 0);
  assert.equal(ok.push(Buffer.from('\n\n')).toString(), `data: ${'y'.repeat(50)}\n\n`, 'an event within the bound, completed by a later chunk, passes whole');
});

/**
 * The event-stream grammar byte by byte (the HTML Living Standard: a line ends with CRLF, LF or
 * CR; an empty line ends an event): the end of the last complete event in `bytes`, whole stream.
 */
function lastEventEnd(bytes: Buffer): number {
  let end = 0;
  let lineEmpty = true;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b === 0x0a && i > 0 && bytes[i - 1] === 0x0d) {
      if (end === i) end = i + 1;
      continue;
    }
    if (b === 0x0a || b === 0x0d) {
      if (lineEmpty) end = i + 1;
      lineEmpty = true;
    } else lineEmpty = false;
  }
  return end;
}

test('framer: however a stream of LF, CR and CRLF lines is cut, what has gone out is exactly its complete events so far', () => {
  const random = seededRandom(16);
  // Mostly LF-only streams (the native search) and some with CR (the byte scan), mixed mid-stream.
  const alphabets = ['ab\n', 'ab\n\n\n', 'a\r\n', 'a\n\r', 'ab\n\r\r\n'];
  for (let round = 0; round < 2000; round++) {
    const alphabet = alphabets[round % alphabets.length] as string;
    const length = 1 + Math.floor(random() * 60);
    let text = '';
    for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
    const bytes = Buffer.from(text, 'latin1');
    const cuts = Array.from({ length: Math.floor(random() * 6) }, () => Math.floor(random() * bytes.length)).sort((a, b) => a - b);
    const framer = new SseFramer();
    let sent = 0;
    let at = 0;
    for (const cut of [...cuts, bytes.length]) {
      const out = framer.push(bytes.subarray(at, cut));
      at = cut;
      // A CR at the end of what arrived may yet be followed by the LF of its CRLF: both reference
      // and framer decide at the CR (its event is complete), and the LF goes with the next bytes.
      const expected = lastEventEnd(bytes.subarray(0, at));
      assert.deepEqual(out, bytes.subarray(sent, Math.max(sent, expected)), `${JSON.stringify(text)} cut at ${JSON.stringify(cuts)}, piece ending ${at}`);
      sent = Math.max(sent, expected);
    }
  }
});
