import { appendFileSync } from 'node:fs';

/** Loader hook of module-log.ts: each resolved module's URL, appended to MODULE_LOG. */
export async function resolve(specifier: string, context: unknown, next: (specifier: string, context: unknown) => Promise<{ url: string }>): Promise<{ url: string }> {
  const resolved = await next(specifier, context);
  const log = process.env['MODULE_LOG'];
  if (log !== undefined && log !== '') appendFileSync(log, `${resolved.url}\n`);
  return resolved;
}
