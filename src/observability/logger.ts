import { pino, type DestinationStream, type Logger } from 'pino';
import pinoPretty from 'pino-pretty';

export type { Logger } from 'pino';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/**
 * How log lines are written: `json`, one JSON object per line (for collectors; the default), or
 * `pretty`, one coloured line per record with its fields indented below it (for a person at a
 * terminal; pino-pretty, pino's own formatter).
 */
export type LogFormat = 'json' | 'pretty';

export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty'];

/**
 * Bytes of JSON lines gathered before stdout is written (sonic-boom's `minLength`): a `Request
 * Handled` line is about 600 bytes, so one write carries a dozen lines instead of one each (a
 * write per line was a tenth of the proxy's busy time under load: docs/benchmarks.md). Below
 * sonic-boom's 16 KiB `maxWrite`, as it requires.
 */
export const LOG_BATCH_BYTES = 8 * 1024;

/** The longest a line waits for more to fill a batch, in ms: at low traffic lines still appear at once to a reader. */
export const LOG_BATCH_MS = 50;

/** Logs to stdout (or `destination`), ISO timestamps, message under `msg`, in `format`. */
export function createLogger(level: LogLevel = 'info', destination?: NodeJS.WritableStream, format: LogFormat = 'json'): Logger {
  const options = { level, base: { service: 'infergate' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'pretty') {
    // Synchronous, in this thread: a worker-thread transport would lose the last lines on exit.
    const pretty = pinoPretty({ sync: true, colorize: destination === undefined && process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'service,pid,hostname', ...(destination === undefined ? {} : { destination }) });
    return pino(options, pretty);
  }
  return destination === undefined ? pino(options, batchedStdout()) : pino(options, destination);
}

/**
 * Stdout, written asynchronously in batches (LOG_BATCH_BYTES, or after LOG_BATCH_MS), in the
 * order logged. Nothing is lost on the ways out the process has: `logger.flush()` writes what is
 * held (the standalone gateway calls it when it stops), and pino's destination writes it
 * synchronously on `exit` (a natural end, `process.exit`, an uncaught exception or rejection).
 */
function batchedStdout(): DestinationStream & { flush(cb?: (err?: Error) => void): void; flushSync(): void } {
  const out = pino.destination({ dest: 1, sync: false, minLength: LOG_BATCH_BYTES });
  let timer: NodeJS.Timeout | undefined;
  const flush = (cb?: (err?: Error) => void): void => {
    clearTimeout(timer);
    timer = undefined;
    out.flush(cb);
  };
  return {
    write(line: string): void {
      out.write(line);
      if (timer === undefined) {
        timer = setTimeout(flush, LOG_BATCH_MS);
        timer.unref();
      }
    },
    flush,
    flushSync(): void {
      clearTimeout(timer);
      timer = undefined;
      out.flushSync();
    },
  };
}
