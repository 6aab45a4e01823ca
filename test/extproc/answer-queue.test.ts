import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { test } from 'node:test';
import { AnswerQueue } from '../../src/extproc/answer-queue.js';
import { streamedAnswer } from '../../src/extproc/codec.js';
import type { ProcessingResponse } from '../../src/extproc/messages.js';
import { STREAMED_CHUNK_BYTES } from '../../src/extproc/stream.js';

class Sink extends EventEmitter {
  readonly written: ProcessingResponse[] = [];
  full = false;
  write(msg: ProcessingResponse): boolean {
    this.written.push(msg);
    return !this.full;
  }
}

const piece = (text: string, eos = false): ProcessingResponse => streamedAnswer('response_body', Buffer.from(text), eos);
const bodyOf = (m: ProcessingResponse): string => Buffer.from(m.response_body?.response?.body_mutation?.streamed_response?.body ?? []).toString();
const eosOf = (m: ProcessingResponse): boolean => m.response_body?.response?.body_mutation?.streamed_response?.end_of_stream === true;

test('response-body pieces ready in one turn go out as one answer, end_of_stream on it', async () => {
  const sink = new Sink();
  const q = new AnswerQueue(sink);
  q.send([piece('a')]);
  q.send([piece('b')]);
  q.send([piece('c', true)]);
  assert.equal(sink.written.length, 0, 'held until the turn ends');
  await nextTurn();
  assert.deepEqual(sink.written.map(bodyOf), ['abc']);
  assert.deepEqual(sink.written.map(eosOf), [true]);
});

test('a single piece goes out as it was; merged answers stay within the 62,000-byte piece', async () => {
  const sink = new Sink();
  const q = new AnswerQueue(sink);
  const one = piece('only');
  q.send([one]);
  await nextTurn();
  assert.equal(sink.written[0], one);
  sink.written.length = 0;
  const big = 'x'.repeat(16_384);
  for (let i = 0; i < 7; i++) q.send([piece(big, i === 6)]);
  await nextTurn();
  assert.deepEqual(sink.written.map((m) => bodyOf(m).length), [49_152, 49_152, 16_384]);
  assert.ok(sink.written.every((m) => bodyOf(m).length <= STREAMED_CHUNK_BYTES));
  assert.deepEqual(sink.written.map(eosOf), [false, false, true]);
});

test('any other answer goes at once, after the pieces held before it, in order', () => {
  const sink = new Sink();
  const q = new AnswerQueue(sink);
  q.send([piece('a')]);
  q.send([piece('b')]);
  const trailers: ProcessingResponse = { response_trailers: {} };
  q.send([trailers]);
  assert.deepEqual(sink.written.map((m) => (m === trailers ? 'trailers' : bodyOf(m))), ['ab', 'trailers']);
  // Request-body pieces (the decision's body) are never held.
  const decision: ProcessingResponse[] = [{ request_headers: { response: {} } }, streamedAnswer('request_body', Buffer.from('{}'), true)];
  q.send(decision);
  assert.deepEqual(sink.written.slice(2), decision);
});

test('a full sink holds the caller until it drains; a closed queue writes nothing more', async () => {
  const sink = new Sink();
  const q = new AnswerQueue(sink);
  sink.full = true;
  const wait = q.send([{ response_trailers: {} }]);
  assert.ok(wait instanceof Promise);
  let drained = false;
  void wait.then(() => (drained = true));
  await nextTurn();
  assert.equal(drained, false);
  sink.full = false;
  sink.emit('drain');
  await wait;
  assert.equal(q.send([{ response_trailers: {} }]), undefined);
  q.send([piece('held')]);
  q.close();
  await nextTurn();
  assert.equal(sink.written.length, 2, 'the held piece was dropped');
});
