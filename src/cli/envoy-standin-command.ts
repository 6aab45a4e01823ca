import { refuseConnect } from '../core/refuse-connect.js';
import { createServer, type Server } from 'node:http';
import type { DecisionStats } from '../core/decision-stats.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { percentile, sortedAscending } from '../bench/stats.js';
import { startEnvoyStandin, type DecisionTiming, type StandinBodyMode } from '../extproc/envoy-standin.js';
import { OptionError, portOption } from './options.js';
import { untilSignal } from './signals.js';

/*
 * `infergate envoy-standin` (hidden: a benchmark tool, not a proxy to deploy): the Envoy stand-in
 * of the tests as a process of its own, so the benchmark measures the picker's CPU apart from the
 * data path's. Its stats port says how long the picker took to answer each request's headers.
 */

export const ENVOY_STANDIN_HELP = `infergate envoy-standin: Envoy's data path in front of an ext_proc picker, for benchmarks

Not a proxy to deploy: it plays Envoy's ext_proc filter and ORIGINAL_DST cluster (forwarding to
x-gateway-destination-endpoint) in Node, and times the picker's answers.

Usage: infergate envoy-standin --ext-proc HOST:PORT [options]

Options:
      --ext-proc HOST:PORT  the picker's ext_proc gRPC port
      --insecure            plaintext gRPC (default: TLS without verification, as upstream's Envoy config)
      --body-mode MODE      FULL_DUPLEX_STREAMED (default) | BUFFERED
      --address ADDR        HTTP listen address (default 127.0.0.1)
      --port N              HTTP port (default 0: any free port)
      --stats-port N        stats port on the same address (default 0): GET /decisions gives
                            {count, dropped, fromHeadersMs, fromBodyEndMs, loopDelayMs}
                            (p50/p99/max, ms; loopDelayMs is this process's own event-loop lag);
                            DELETE /decisions forgets the samples so far
      --exit-with-parent    stop when the process that started this one exits
`;

/** Samples kept between resets: a benchmark stage of minutes at thousands of requests/s fits; more are counted as dropped. */
const MAX_SAMPLES = 1_000_000;

function quantiles(values: readonly number[]): DecisionStats['fromHeadersMs'] {
  const s = sortedAscending(values);
  const p50 = percentile(s, 50);
  const p99 = percentile(s, 99);
  const max = s[s.length - 1];
  return { ...(p50 === undefined ? {} : { p50 }), ...(p99 === undefined ? {} : { p99 }), ...(max === undefined ? {} : { max }) };
}

export async function runEnvoyStandinCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'ext-proc': { type: 'string' },
      insecure: { type: 'boolean' },
      'body-mode': { type: 'string' },
      address: { type: 'string' },
      port: { type: 'string' },
      'stats-port': { type: 'string' },
      'exit-with-parent': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(ENVOY_STANDIN_HELP);
    return 0;
  }
  const target = values['ext-proc'];
  if (target === undefined || !/^[^\s:]+:\d{1,5}$/.test(target)) throw new OptionError('envoy-standin needs --ext-proc HOST:PORT (the picker\'s gRPC port)');
  const bodyMode = values['body-mode'] ?? 'FULL_DUPLEX_STREAMED';
  if (bodyMode !== 'FULL_DUPLEX_STREAMED' && bodyMode !== 'BUFFERED') throw new OptionError(`--body-mode must be FULL_DUPLEX_STREAMED or BUFFERED (got "${bodyMode}")`);
  const address = values.address ?? '127.0.0.1';
  const port = portOption('port', values.port, 0, 0);
  const statsPort = portOption('stats-port', values['stats-port'], 0, 0);

  let fromHeaders: number[] = [];
  let fromBodyEnd: number[] = [];
  let dropped = 0;
  // The stand-in's own lag is inside every decision time it measures: it is reported beside them.
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const record = (t: DecisionTiming): void => {
    if (fromHeaders.length >= MAX_SAMPLES) {
      dropped++;
      return;
    }
    fromHeaders.push(t.fromHeadersMs);
    fromBodyEnd.push(t.fromBodyEndMs);
  };
  const standin = await startEnvoyStandin({ target, tls: values.insecure !== true, bodyMode: bodyMode as StandinBodyMode, host: address, port, onDecision: record });
  const stats: Server = createServer((req, res) => {
    if (req.url === '/decisions' && req.method === 'GET') {
      const body: DecisionStats = { count: fromHeaders.length, dropped, fromHeadersMs: quantiles(fromHeaders), fromBodyEndMs: quantiles(fromBodyEnd), loopDelayMs: { p50: lag.percentile(50) / 1e6, p99: lag.percentile(99) / 1e6 } };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    } else if (req.url === '/decisions' && req.method === 'DELETE') {
      fromHeaders = [];
      fromBodyEnd = [];
      dropped = 0;
      lag.reset();
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(req.url === '/healthz' ? 200 : 404);
      res.end();
    }
  });
  refuseConnect(stats, { allow: 'GET, DELETE', body: () => '{"error":"CONNECT is not served here"}' });
  try {
    await new Promise<void>((resolve, reject) => {
      stats.once('error', reject);
      stats.listen(statsPort, address, resolve);
    });
    const cause = await untilSignal({ followParent: values['exit-with-parent'] === true });
    void cause;
    return 0;
  } finally {
    lag.disable();
    stats.close();
    await standin.close();
  }
}
