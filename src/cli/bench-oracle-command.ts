import { parseArgs } from 'node:util';
import { startOracleRouter } from '../bench/suite/oracle-router.js';
import { OptionError } from './options.js';
import { untilSignal } from './signals.js';

/**
 * `infergate bench-oracle` (hidden: a benchmark tool, not a router to deploy): the benchmark's
 * oracle placement (src/bench/suite/oracle-router.ts) in a process of its own, so its CPU is not
 * the load generator's. The pods must be `infergate sim --debug-prefix-match` servers.
 */
export const BENCH_ORACLE_HELP = `infergate bench-oracle: the benchmark's oracle placement in front of simulated pods

Usage: infergate bench-oracle --pods http://HOST:PORT,... [--address A] [--port N] [--exit-with-parent]

Asks every pod (POST /debug/prefix-match; infergate sim --debug-prefix-match) how many prompt
tokens of each request it would serve from its prefix cache now, and forwards the request to the
pod with the most (ties: the least loaded). An upper bound for benchmarks, not a router to deploy.
GET /oracle/stats gives its counters.
`;

export async function runBenchOracleCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { pods: { type: 'string' }, address: { type: 'string' }, port: { type: 'string' }, 'exit-with-parent': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(BENCH_ORACLE_HELP);
    return 0;
  }
  const pods = (values.pods ?? '').split(',').filter((p) => p !== '');
  if (pods.length === 0 || !pods.every((p) => /^http:\/\/[^\s/]+:\d{1,5}$/.test(p))) throw new OptionError('bench-oracle needs --pods http://HOST:PORT,...');
  const port = Number(values.port ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new OptionError(`--port must be 0..65535 (got "${values.port}")`);
  const router = await startOracleRouter({ pods, host: values.address ?? '127.0.0.1', port });
  try {
    await untilSignal({ followParent: values['exit-with-parent'] === true });
    return 0;
  } finally {
    await router.close();
  }
}
