import { readFile } from 'node:fs/promises';
import { OptionError } from './options.js';

/*
 * Each command's module is imported when that command runs, not here: a process pays only for the
 * code its command uses (`serve` never loads the simulator, the benchmark suite or gRPC; `sim`
 * never loads the gateway). bench/memory/rss-ab.ts measures what `serve` holds.
 */

const HELP = `infergate: an LLM inference gateway for vLLM, SGLang and TensorRT-LLM

Usage: infergate <command> [options]

Commands:
  serve      run the gateway (from Kubernetes YAML with -f, or --backend URLs)
  epp        the endpoint picker for Envoy (ext_proc gRPC): one pool, the same core as serve
  pd-sidecar beside a decode server behind Envoy: runs the prefill/decode pair the picker names
  validate   check resource files: prints Kind/name: field.path: reason per problem
  demo       simulated model servers behind the gateway (what \`npm start\` runs)
  sim        simulated model servers (vLLM, SGLang, Triton TRT-LLM faces; engines in modelled time)
  bench      load-test an OpenAI endpoint: latency, throughput, per-endpoint share
  bench-suite  the benchmark scenarios against nginx and the gateway's policies (npm run bench)
  version    print the version

Run \`infergate <command> --help\` for a command's options.
`;

async function version(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Entry point: returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await (await import('./serve-command.js')).runServeCommand(rest);
      case 'epp':
        return await (await import('./epp-command.js')).runEppCommand(rest);
      case 'pd-sidecar':
        return await (await import('./sidecar-command.js')).runSidecarCommand(rest);
      case 'validate':
        return await (await import('./validate-command.js')).runValidateCommand(rest);
      case 'demo':
        return await (await import('./demo-command.js')).runDemoCommand(rest);
      case 'sim':
        return await (await import('../sim/index.js')).runSimCommand(rest);
      case 'bench':
        return await (await import('../bench/bench-command.js')).runBenchCommand(rest);
      case 'bench-suite':
        return await (await import('../bench/suite/suite-command.js')).runSuiteCommand(rest);
      case 'envoy-standin':
        // Hidden (not in HELP): the benchmark's Envoy stand-in, a tool and not a proxy to deploy.
        return await (await import('./envoy-standin-command.js')).runEnvoyStandinCommand(rest);
      case 'bench-oracle':
        // Hidden (not in HELP): the benchmark's oracle placement, an upper bound and not a router to deploy.
        return await (await import('./bench-oracle-command.js')).runBenchOracleCommand(rest);
      case 'bench-node-floor':
        // Hidden (not in HELP): the overhead scenario's bare Node proxy, a baseline and not a proxy to deploy.
        return await (await import('./bench-node-floor-command.js')).runBenchNodeFloorCommand(rest);
      case 'version':
      case '--version':
        process.stdout.write(`${await version()}\n`);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        return 0;
      default:
        process.stderr.write(`unknown command "${command}"\n\n${HELP}`);
        return 2;
    }
  } catch (err) {
    // Usage errors (bad flags) are the user's to fix: one line, exit 2.
    const code = (err as { code?: unknown }).code;
    if (err instanceof OptionError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`infergate ${command}: ${(err as Error).message}\n`);
      return 2;
    }
    // A port that cannot be bound: one line saying which and why, exit 1.
    // (By name: proxy/port-listener.ts's ListenError, whose module this file does not import, so
    // that a command that binds no gateway port does not load the gateway.)
    if (err instanceof Error && err.name === 'ListenError') {
      process.stderr.write(`infergate ${command}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

