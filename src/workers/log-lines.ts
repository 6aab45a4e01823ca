import type { Readable, Writable } from 'node:stream';

/** Most bytes of an unfinished line held back (1 MiB, far above any log line the gateway writes). */
const MAX_HELD_BYTES = 1024 * 1024;

/**
 * Copies a worker's output (its stdout or stderr, a pipe of its own) to the primary's, in whole
 * lines. Each worker writes its log lines (the `Request Handled` access log among them) to its
 * own pipe, so no two workers ever write into one pipe; the primary alone writes the real stdout,
 * one chunk of whole lines at a time, so lines are never interleaved whatever their length (a
 * shared pipe keeps writes whole only up to PIPE_BUF, 4 KiB on Linux, and a file opened without
 * O_APPEND not even that). A line is held only until its newline arrives; what is left when the
 * worker's pipe closes (a last line without a newline) is written as it is. Resolves when the
 * pipe has ended and everything was handed to `to`: the primary exits only after that, so no
 * line is lost at shutdown.
 */
export function forwardLines(from: Readable, to: Writable): Promise<void> {
  let tail: Buffer | undefined;
  from.on('data', (chunk: Buffer) => {
    const nl = chunk.lastIndexOf(10);
    if (nl === -1) {
      tail = tail === undefined ? chunk : Buffer.concat([tail, chunk]);
      // Output that never ends a line is not held without bound: past this it goes out as it is.
      if (tail.length > MAX_HELD_BYTES) {
        to.write(tail);
        tail = undefined;
      }
      return;
    }
    const whole = chunk.subarray(0, nl + 1);
    to.write(tail === undefined ? whole : Buffer.concat([tail, whole]));
    tail = nl + 1 < chunk.length ? chunk.subarray(nl + 1) : undefined;
  });
  return new Promise((resolve) => {
    const done = (): void => {
      if (tail !== undefined) to.write(tail);
      tail = undefined;
      resolve();
    };
    from.once('end', done);
    from.once('error', done);
  });
}
