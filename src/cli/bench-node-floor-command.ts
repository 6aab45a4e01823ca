import { parseArgs } from 'node:util';
import { startNodeFloorProxy } from '../bench/suite/node-floor.js';
import { OptionError } from './options.js';
import { untilSignal } from './signals.js';

/**
 * `infergate bench-node-floor` (hidden: a benchmark baseline, not a proxy to deploy): the overhead
 * scenario's bare Node proxy (src/bench/suite/node-floor.ts) in a process of its own, so its CPU
 * and memory are read apart from the load generator's.
 */
export const BENCH_NODE_FLOOR_HELP = `infergate bench-node-floor: the least a Node proxy costs, a benchmark baseline

Usage: infergate bench-node-floor --upstream http://HOST:PORT [--address A] [--port N] [--exit-with-parent]

Sends every request to the one upstream and streams its answer back (Node's http server and
undici, nothing else: no routing, metrics, logs or limits). Not a proxy to deploy.
`;

export async function runBenchNodeFloorCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { upstream: { type: 'string' }, address: { type: 'string' }, port: { type: 'string' }, 'exit-with-parent': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(BENCH_NODE_FLOOR_HELP);
    return 0;
  }
  const upstream = values.upstream ?? '';
  if (!/^http:\/\/[^\s/]+:\d{1,5}$/.test(upstream)) throw new OptionError('bench-node-floor needs --upstream http://HOST:PORT');
  const port = Number(values.port ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new OptionError(`--port must be 0..65535 (got "${values.port}")`);
  const proxy = await startNodeFloorProxy({ upstream, host: values.address ?? '127.0.0.1', port });
  try {
    await untilSignal({ followParent: values['exit-with-parent'] === true });
    return 0;
  } finally {
    await proxy.close();
  }
}
