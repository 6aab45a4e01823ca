import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

/** The CLI entry point, as `npx infergate` runs it. */
export const BIN = fileURLToPath(new URL('../../../bin/infergate.js', import.meta.url));

const run = promisify(execFile);

/**
 * Runs `infergate <args>` to completion; its exit code and output. A command still running after
 * `timeoutMs` is killed (its code is then null). `serve` runs as one process
 * (INFERGATE_WORKERS=1) unless `args` give `--workers`.
 */
export async function cli(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { timeout: timeoutMs, env: { ...process.env, INFERGATE_WORKERS: '1' } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number | null; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
