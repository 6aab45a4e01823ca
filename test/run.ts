/**
 * What `npm test` runs once the sources are emitted (`tsc --noCheck`, package.json): every
 * dist/test/**\/*.test.js through `node --test`, two files at a time, and the type check
 * (`tsc --noEmit`) beside them.
 *
 * Why beside: checking is two thirds of a full build's ~35 s, on one core, and a build before the
 * tests kept the other core idle all that time; during the test run both cores are idle about a
 * third of the time (files waiting on processes, timers and sockets), which the check fills. The
 * emitted JavaScript does not depend on the check (isolatedModules, verbatimModuleSyntax).
 *
 * Exit code: the test run's if it failed, else the check's. The check's diagnostics are printed
 * after the test report.
 */

import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The test files, in byte order of their paths (as `find dist/test -name '*.test.js' | sort` in the C locale). */
function testFiles(): string[] {
  const dir = 'dist/test';
  return readdirSync(`${ROOT}${dir}`, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.test.js'))
    .map((f) => `${dir}/${f}`)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function run(args: readonly string[], capture: boolean): { done: Promise<number>; output: () => string } {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: capture ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (text += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (text += c));
  const done = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal === null ? 1 : 128))));
  return { done, output: () => text };
}

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const check = run([tsc, '-p', 'tsconfig.json', '--noEmit'], true);
const tests = run(['--test', '--test-concurrency=2', '--test-reporter=spec', ...testFiles()], false);

const testCode = await tests.done;
const checkCode = await check.done;
if (checkCode !== 0) process.stdout.write(`\ntype check (tsc --noEmit) failed:\n${check.output()}`);
else process.stdout.write('\ntype check (tsc --noEmit): no errors\n');
process.exitCode = testCode !== 0 ? testCode : checkCode;
