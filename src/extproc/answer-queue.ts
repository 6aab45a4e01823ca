import { streamedAnswer, streamedPiece } from './codec.js';
import type { ProcessingResponse } from './messages.js';
import { STREAMED_CHUNK_BYTES } from './stream.js';

/** The part of a gRPC server stream the queue writes to. */
export interface AnswerSink {
  /** False when the stream's buffer is full: wait for 'drain' (or 'close'). */
  write(msg: ProcessingResponse): boolean;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

/**
 * Writes one ext_proc stream's answers in order, merging the streamed response-body pieces that
 * are ready in the same event-loop turn into fewer, larger StreamedBodyResponse messages (up to
 * STREAMED_CHUNK_BYTES each).
 *
 * Why: every response_body message Envoy sends must have its bytes sent back in
 * FULL_DUPLEX_STREAMED (Envoy forwards what the picker returns), and on the picker's side each
 * answer is a gRPC message and an HTTP/2 write whose fixed cost dwarfs copying its bytes.
 * Envoy sends a body in pieces as it reads them (16 KiB at most), so several usually arrive in
 * one socket read; in this mode the processor "can freely modify or chunk the body contents"
 * (Envoy's ProcessingMode.FULL_DUPLEX_STREAMED), which is what upstream's picker does with a
 * non-streamed answer (one buffered body, sent back in 62,000-byte pieces).
 *
 * Pieces wait at most until `setImmediate` (the end of the current poll phase: the messages read
 * with them have been handled; one timer for all streams); any other answer (the decision, headers, trailers, a refusal)
 * goes at once, after the pieces held before it. Nothing else is merged: other answers answer one
 * message each.
 */
export class AnswerQueue {
  readonly #sink: AnswerSink;
  #held: ProcessingResponse[] = [];
  /** Set while the sink's buffer is full; resolves on 'drain' or 'close'. */
  #blocked: Promise<void> | undefined;
  #closed = false;

  constructor(sink: AnswerSink) {
    this.#sink = sink;
  }

  /**
   * Queues answers (in order). Resolves when the caller may go on: at once, or once a full sink
   * has drained (the caller then stops reading, and gRPC flow control holds Envoy back).
   */
  send(answers: readonly ProcessingResponse[]): Promise<void> | undefined {
    if (this.#closed || answers.length === 0) return this.#blocked;
    if (answers.every(isResponsePiece)) {
      this.#held.push(...answers);
      holding(this);
      return this.#blocked;
    }
    this.flush();
    for (const a of answers) this.#write(a);
    return this.#blocked;
  }

  /** Writes what is held now (at the turn's end, or before the stream's own end). */
  flush(): void {
    const held = this.#held;
    if (held.length === 0) return;
    this.#held = [];
    for (const a of merged(held)) this.#write(a);
  }

  /** The stream is over: nothing more is written; held answers are dropped. */
  close(): void {
    this.#closed = true;
    this.#held = [];
    holdingQueues.delete(this);
  }

  #write(a: ProcessingResponse): void {
    if (this.#closed) return;
    if (this.#sink.write(a) || this.#blocked !== undefined) return;
    this.#blocked = new Promise<void>((resolve) => {
      const done = (): void => {
        this.#sink.off('drain', done);
        this.#sink.off('close', done);
        this.#blocked = undefined;
        resolve();
      };
      this.#sink.once('drain', done);
      this.#sink.once('close', done);
    });
  }
}

/** Queues holding pieces now; one setImmediate flushes them all (not one timer object per stream and turn). */
const holdingQueues = new Set<AnswerQueue>();
let flushScheduled = false;

function holding(q: AnswerQueue): void {
  holdingQueues.add(q);
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(flushHeld);
}

function flushHeld(): void {
  flushScheduled = false;
  const queues = [...holdingQueues];
  holdingQueues.clear();
  for (const q of queues) q.flush();
}

function isResponsePiece(a: ProcessingResponse): boolean {
  return streamedPiece(a)?.kind === 'response_body';
}

/** Adjacent response-body pieces joined, at most STREAMED_CHUNK_BYTES per answer, end_of_stream on the last when a piece had it. */
function merged(pieces: readonly ProcessingResponse[]): ProcessingResponse[] {
  if (pieces.length === 1) return [...pieces];
  const out: ProcessingResponse[] = [];
  let group: Buffer[] = [];
  let bytes = 0;
  /** The group's last answer, sent as it is when the group holds only it. */
  let last: ProcessingResponse | undefined;
  const close = (endOfStream: boolean): void => {
    if (group.length === 1 && last !== undefined) out.push(last);
    else if (group.length > 1) out.push(streamedAnswer('response_body', Buffer.concat(group, bytes), endOfStream));
    group = [];
    bytes = 0;
    last = undefined;
  };
  for (const a of pieces) {
    const p = streamedPiece(a);
    if (p === undefined) continue;
    if (group.length > 0 && bytes + p.body.length > STREAMED_CHUNK_BYTES) close(false);
    group.push(p.body);
    bytes += p.body.length;
    last = a;
    if (p.endOfStream) close(true);
  }
  close(false);
  return out;
}
