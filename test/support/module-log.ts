import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

/*
 * Preloaded into a child process (`NODE_OPTIONS=--import <this file's URL>`, MODULE_LOG=<file>):
 * every module the process loads is appended to MODULE_LOG, one URL or path a line. ES modules as
 * the loader resolves them (module-log-hooks.ts, on the loader's thread), CommonJS ones (a
 * `createRequire` or a package's own `require`) from the require cache when the process exits.
 */
const log = process.env['MODULE_LOG'];
if (log !== undefined && log !== '') {
  register(new URL('./module-log-hooks.js', import.meta.url));
  const cache = createRequire(import.meta.url).cache;
  process.on('exit', () => appendFileSync(log, `${Object.keys(cache).join('\n')}\n`));
}
