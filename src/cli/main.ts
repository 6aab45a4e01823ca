import { readFile } from 'node:fs/promises';
import { BENCH_HELP, runBenchCommand } from '../bench/bench-command.js';
import { runSuiteCommand, SUITE_HELP } from '../bench/suite/suite-command.js';
import { ListenError } from '../proxy/port-listener.js';
import { DEMO_HELP, runDemoCommand } from './demo-command.js';
import { EPP_HELP, runEppCommand } from './epp-command.js';
import { runBenchOracleCommand } from './bench-oracle-command.js';
import { runEnvoyStandinCommand } from './envoy-standin-command.js';
import { OptionError } from './options.js';
import { runServeCommand, SERVE_HELP } from './serve-command.js';
import { runSidecarCommand, SIDECAR_HELP } from './sidecar-command.js';
import { runValidateCommand, VALIDATE_HELP } from './validate-command.js';
import { runSimCommand } from '../sim/index.js';

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
        return await runServeCommand(rest);
      case 'epp':
        return await runEppCommand(rest);
      case 'pd-sidecar':
        return await runSidecarCommand(rest);
      case 'validate':
        return await runValidateCommand(rest);
      case 'demo':
        return await runDemoCommand(rest);
      case 'sim':
        return await runSimCommand(rest);
      case 'bench':
        return await runBenchCommand(rest);
      case 'bench-suite':
        return await runSuiteCommand(rest);
      case 'envoy-standin':
        // Hidden (not in HELP): the benchmark's Envoy stand-in, a tool and not a proxy to deploy.
        return await runEnvoyStandinCommand(rest);
      case 'bench-oracle':
        // Hidden (not in HELP): the benchmark's oracle placement, an upper bound and not a router to deploy.
        return await runBenchOracleCommand(rest);
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
    if (err instanceof ListenError) {
      process.stderr.write(`infergate ${command}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

export { BENCH_HELP, DEMO_HELP, EPP_HELP, SERVE_HELP, SIDECAR_HELP, SUITE_HELP, VALIDATE_HELP };
