/*
 * The SSE framer's boundary search as it was at 5eef24f (issue 16's hardening): a JavaScript loop
 * over every byte of a chunk that does not end with a blank line, its state in private fields.
 * Kept only as the "before" of the micro-benchmark (run.ts); src/gateway/sse-frames.ts is the code.
 */

const LF = 0x0a;
const CR = 0x0d;

export class ByteLoopFramer {
  #held: Buffer[] = [];
  #heldBytes = 0;
  #lineEmpty = true;
  #afterCr = false;

  push(chunk: Buffer): Buffer {
    if (chunk.length === 0) return chunk;
    const n = chunk.length;
    if (this.#heldBytes === 0 && n >= 2 && chunk[n - 1] === LF && chunk[n - 2] === LF) {
      this.#lineEmpty = true;
      this.#afterCr = false;
      return chunk;
    }
    let boundary = this.#heldBytes === 0 ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (this.#afterCr) {
        this.#afterCr = false;
        if (b === LF) {
          if (boundary === i) boundary = i + 1;
          continue;
        }
      }
      if (b === LF || b === CR) {
        if (this.#lineEmpty) boundary = i + 1;
        this.#lineEmpty = true;
        this.#afterCr = b === CR;
      } else {
        this.#lineEmpty = false;
      }
    }
    if (boundary <= 0) {
      this.#held.push(chunk);
      this.#heldBytes += chunk.length;
      return Buffer.alloc(0);
    }
    const events = this.#heldBytes === 0 ? chunk.subarray(0, boundary) : Buffer.concat([...this.#held, chunk.subarray(0, boundary)]);
    this.#held = [];
    this.#heldBytes = 0;
    if (boundary < chunk.length) {
      this.#held.push(chunk.subarray(boundary));
      this.#heldBytes += chunk.length - boundary;
    }
    return events;
  }
}
