import { GatewayError } from '../core/errors.js';

/**
 * Largest SSE event passed on, in bytes: an OpenAI chunk is a few hundred bytes, one with 20 top
 * logprobs a few KiB, and vLLM's first chunk with prompt_logprobs of a long prompt can reach
 * megabytes; 16 MiB (the body limit a listener accepts by default) leaves that room and bounds
 * what one server's unending event can hold.
 */
export const MAX_SSE_EVENT_BYTES = 16 * 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);

/**
 * Cuts an SSE byte stream at event boundaries, so that only complete events go on to the client:
 * a stream the model server cuts mid-event (at any byte) then ends with the events that were
 * whole, and the data plane adds its error event after them instead of after half an event.
 *
 * Per the HTML Living Standard's event-stream grammar a line ends with CRLF, LF or CR, and an
 * empty line ends (dispatches) an event: so `\n\n`, `\r\n\r\n`, `\r\r` and their mixtures. Each
 * complete event is handed on as soon as its blank line arrives (no added latency); only the
 * bytes of the event still arriving are held, at most one partial event. A chunk that ends with
 * a blank line while nothing is held (servers write whole events) is passed as it is; one the
 * socket cut mid-event is searched from its end by native `lastIndexOf` when it has LF line
 * endings only, and scanned byte by byte (once) only when it has a CR.
 */
export class SseFramer {
  /** Bytes of the event still arriving, as they came (joined only when the event completes). */
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** The bytes scanned so far end at the start of a line with nothing on it yet. */
  #lineEmpty = true;
  /** The last byte scanned was a CR: a following LF belongs to the same line ending. */
  #afterCr = false;
  readonly #maxEventBytes: number;

  /** `maxEventBytes`: the largest event accepted (MAX_SSE_EVENT_BYTES). */
  constructor(maxEventBytes = MAX_SSE_EVENT_BYTES) {
    this.#maxEventBytes = maxEventBytes;
  }

  /** True while part of an event is held. */
  get holding(): boolean {
    return this.#heldBytes > 0;
  }

  /**
   * One chunk from upstream; returns the complete events it finishes (maybe none). Each chunk
   * is searched once, when it arrives (held bytes are never searched again), so the cost is
   * linear in the stream whatever the chunking. Throws `upstream_event_too_large` when the event
   * still arriving passes the bound: a server that never ends its event would otherwise hold
   * memory and the client's stream without end.
   */
  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    if (this.#heldBytes === 0 && endsWithBlankLine(chunk)) {
      this.#lineEmpty = true;
      this.#afterCr = false;
      return chunk;
    }
    const boundary = this.#afterCr || chunk.includes(CR) ? this.#scan(chunk) : this.#scanLf(chunk);
    if (boundary <= 0) {
      this.#hold(chunk);
      return EMPTY;
    }
    const events = this.#heldBytes === 0 ? chunk.subarray(0, boundary) : Buffer.concat([...this.#held, chunk.subarray(0, boundary)]);
    this.#held = [];
    this.#heldBytes = 0;
    if (boundary < chunk.length) this.#hold(chunk.subarray(boundary));
    return events;
  }

  /**
   * `push`'s boundary for a chunk without CR, and no CR just before it (what servers send: LF
   * line endings): an event ends right after an LF that follows an LF, or that starts the chunk
   * when the bytes before it ended a line. The last such LF is found by native `lastIndexOf`
   * from the chunk's end, instead of a JavaScript loop over every byte: the same answer as
   * `#scan`, usually after one search (a chunk cut mid-event by the socket took 10 ns a byte).
   */
  #scanLf(chunk: Buffer): number {
    const atLineStart = this.#lineEmpty;
    this.#lineEmpty = chunk[chunk.length - 1] === LF;
    // The last LF that follows an LF: from the last LF back, one native search per line (a
    // two-byte needle's lastIndexOf walks the whole chunk; one byte's is memrchr).
    for (let lf = chunk.lastIndexOf(LF); lf !== -1; lf = lf === 0 ? -1 : chunk.lastIndexOf(LF, lf - 1)) {
      if (lf > 0 ? chunk[lf - 1] === LF : atLineStart) return lf + 1;
    }
    return this.#heldBytes === 0 ? 0 : -1;
  }

  /**
   * `push`'s boundary, byte by byte, for chunks with CR line endings (CRLF, or CR alone): the end
   * (exclusive) of the last complete event in the chunk; 0 when nothing is held and none ends
   * here (the chunk starts at an event boundary), -1 when an event is still open and none ends.
   */
  #scan(chunk: Buffer): number {
    let boundary = this.#heldBytes === 0 ? 0 : -1;
    // Locals, not the private fields, in the loop: this runs once per byte.
    let lineEmpty = this.#lineEmpty;
    let afterCr = this.#afterCr;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (afterCr) {
        afterCr = false;
        if (b === LF) {
          // The LF of a CRLF whose CR ended an event goes out with that event.
          if (boundary === i) boundary = i + 1;
          continue;
        }
      }
      if (b === LF || b === CR) {
        if (lineEmpty) boundary = i + 1;
        lineEmpty = true;
        afterCr = b === CR;
      } else {
        lineEmpty = false;
      }
    }
    this.#lineEmpty = lineEmpty;
    this.#afterCr = afterCr;
    return boundary;
  }

  #hold(bytes: Buffer): void {
    this.#held.push(bytes);
    this.#heldBytes += bytes.length;
    if (this.#heldBytes > this.#maxEventBytes) {
      throw new GatewayError('upstream_event_too_large', `the model server sent an SSE event of more than ${this.#maxEventBytes} bytes without ending it`);
    }
  }

  /**
   * The stream ended cleanly (the server finished its answer): returns the held bytes to forward,
   * or undefined. Per the standard an unfinished last event is never dispatched, so it is dropped
   * (a client's parser would drop it too) except a last `data: [DONE]` missing its blank line,
   * which is completed: its meaning is not in doubt. `dropped` is true when bytes were dropped.
   */
  end(): { readonly rest: Buffer | undefined; readonly dropped: boolean } {
    const held = Buffer.concat(this.#held);
    this.#held = [];
    this.#heldBytes = 0;
    if (held.length === 0) return { rest: undefined, dropped: false };
    if (/^data: ?\[DONE\][\r\n]*$/.test(held.toString('latin1'))) return { rest: Buffer.from('data: [DONE]\n\n'), dropped: false };
    return { rest: undefined, dropped: true };
  }
}

/** The chunk ends with an empty line: `\n\n` (whatever precedes) or `\r\n\r\n`. */
function endsWithBlankLine(chunk: Buffer): boolean {
  const n = chunk.length;
  if (n >= 2 && chunk[n - 1] === LF && chunk[n - 2] === LF) return true;
  return n >= 4 && chunk[n - 1] === LF && chunk[n - 2] === CR && chunk[n - 3] === LF && chunk[n - 4] === CR;
}

const DONE = Buffer.from('[DONE]');

/** Complete events ending with the `data: [DONE]` event (the end of an OpenAI stream). */
export function endsWithDone(events: Buffer): boolean {
  let end = events.length;
  while (end > 0 && (events[end - 1] === LF || events[end - 1] === CR)) end--;
  const start = end - DONE.length;
  if (start < 5 || !events.subarray(start, end).equals(DONE)) return false;
  // The line is `data:[DONE]` or `data: [DONE]`.
  const colon = events[start - 1] === 0x20 ? start - 2 : start - 1;
  if (colon < 4 || events.subarray(colon - 4, colon + 1).toString('latin1') !== 'data:') return false;
  return colon - 4 === 0 || events[colon - 5] === LF || events[colon - 5] === CR;
}
