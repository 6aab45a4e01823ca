import { pino, type Logger } from 'pino';
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

/** Logs to stdout (or `destination`), ISO timestamps, message under `msg`, in `format`. */
export function createLogger(level: LogLevel = 'info', destination?: NodeJS.WritableStream, format: LogFormat = 'json'): Logger {
  const options = { level, base: { service: 'infergate' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'pretty') {
    // Synchronous, in this thread: a worker-thread transport would lose the last lines on exit.
    const pretty = pinoPretty({ sync: true, colorize: destination === undefined && process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'service,pid,hostname', ...(destination === undefined ? {} : { destination }) });
    return pino(options, pretty);
  }
  return destination === undefined ? pino(options) : pino(options, destination);
}
