import { createLogger, LOG_FORMATS, type LogFormat, type Logger, type LogLevel } from '../observability/logger.js';
import { parseDurationMs } from '../api/duration.js';
import type { UploadOptions } from '../gateway/index.js';
import { parseQuantityBytes } from '../api/quantity.js';

/**
 * The flags every long-running command takes (serve, epp, pd-sidecar), for their `parseArgs`
 * tables: config files, the bind address, the shutdown grace, logging, following the parent, help.
 */
export const SERVER_FLAGS = {
  file: { type: 'string', short: 'f', multiple: true },
  address: { type: 'string' },
  'shutdown-grace': { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  'exit-with-parent': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The request-body bounds a data plane that reads bodies takes (serve, epp): `uploadsOption` reads them. */
export const UPLOAD_FLAGS = {
  'body-idle-timeout': { type: 'string' },
  'body-budget': { type: 'string' },
} as const;

/** A command-line option with a bad value: printed as one line, exit code 2. */
export class OptionError extends Error {
  override readonly name = 'OptionError';
}

/** An integer option in [min, max]; `fallback` when absent. */
export function intOption(name: string, value: string | undefined, fallback: number, min: number, max = 65535): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) throw new OptionError(`--${name} must be an integer between ${min} and ${max} (got "${value}")`);
  return n;
}

/** A port option (0 = any free port when `min` is 0). */
export function portOption(name: string, value: string | undefined, fallback: number, min = 1): number {
  return intOption(name, value, fallback, min, 65535);
}

/**
 * A duration option in milliseconds: a bare integer is milliseconds, or a Gateway API duration
 * (`30s`, `500ms`, `1m30s`). Undefined when absent; at least `min` ms.
 */
export function durationOption(name: string, value: string | undefined, min = 1): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^[0-9]{1,10}$/.test(value) ? Number(value) : parseDurationMs(value);
  if (ms === undefined || ms < min) throw new OptionError(`--${name} must be milliseconds or a duration such as 30s or 500ms, at least ${min} ms (got "${value}")`);
  return ms;
}

/** `--log-format json|pretty` (default json). */
export function logFormatOption(value: string | undefined): LogFormat {
  if (value === undefined) return 'json';
  const format = LOG_FORMATS.find((f) => f === value);
  if (format === undefined) throw new OptionError(`--log-format must be one of ${LOG_FORMATS.join(', ')} (got "${value}")`);
  return format;
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** `--log-level LEVEL` (default info). */
export function logLevelOption(value: string | undefined): LogLevel {
  if (value === undefined) return 'info';
  const level = LOG_LEVELS.find((l) => l === value);
  if (level === undefined) throw new OptionError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  return level;
}

/** The logger `--log-level` and `--log-format` ask for, on stdout; a bad value is an OptionError. */
export function loggerOption(values: { readonly 'log-level'?: string | undefined; readonly 'log-format'?: string | undefined }): Logger {
  return createLogger(logLevelOption(values['log-level']), undefined, logFormatOption(values['log-format']));
}

/**
 * A size option in bytes: a bare integer, or a Kubernetes quantity (`256Mi`, `1Gi`, `500M`).
 * Undefined when absent; at least 1 byte.
 */
export function sizeOption(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const bytes = parseQuantityBytes(value);
  if (bytes === undefined || bytes < 1) throw new OptionError(`--${name} must be bytes or a quantity such as 256Mi or 1Gi, at least 1 byte (got "${value}")`);
  return bytes;
}

/** `--body-idle-timeout` and `--body-budget` as the core's upload options (unset: the core's defaults). */
export function uploadsOption(values: { readonly 'body-idle-timeout'?: string | undefined; readonly 'body-budget'?: string | undefined }): UploadOptions {
  const idleMs = durationOption('body-idle-timeout', values['body-idle-timeout']);
  const budgetBytes = sizeOption('body-budget', values['body-budget']);
  return { ...(budgetBytes === undefined ? {} : { budgetBytes }), ...(idleMs === undefined ? {} : { timeouts: { idleMs } }) };
}
