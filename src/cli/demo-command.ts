import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createLogger, type LogLevel } from '../observability/logger.js';
import { FileConfigSource } from '../config/file-source.js';
import { startStandaloneGateway } from '../proxy/standalone.js';
import { SimClock, startSimServer, type RunningSimServer } from '../sim/index.js';
import { untilSignal } from './signals.js';

export const DEMO_HELP = `infergate demo: simulated model servers behind the gateway (seed 003's canary setup)

Starts three simulated vLLM servers (pods qwen-0 and qwen-1 in pool mymodel-pool-v1 with LoRA
adapters travel-helper-v1/v2 and --max-loras 2, pod deepseek-r1-0 in pool mymodel-pool-v2) on
127.0.0.2-4:8000, each a Llama-3.1-8B-on-H100 engine in real time (docs/simulator.md), then the
gateway on port 8080 from examples/canary/. Runs until Ctrl-C.

Options:
  --admin-port N     /healthz and /readyz port (default 9090)
  --log-level LEVEL  default info (one "Request Handled" line per request)
`;

/** The simulated pods of examples/canary/pods.yaml and what each one serves. */
const ENGINES = [
  { name: 'qwen-0', host: '127.0.0.2', loras: ['travel-helper-v1', 'travel-helper-v2'], maxLoras: 2 },
  { name: 'qwen-1', host: '127.0.0.3', loras: ['travel-helper-v1', 'travel-helper-v2'], maxLoras: 2 },
  { name: 'deepseek-r1-0', host: '127.0.0.4', loras: [], maxLoras: undefined },
] as const;

export const EXAMPLE_DIR = fileURLToPath(new URL('../../../examples/canary/', import.meta.url));

export async function runDemoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { 'admin-port': { type: 'string' }, 'log-level': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help === true) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  const logger = createLogger((values['log-level'] ?? 'info') as LogLevel);
  const engines: RunningSimServer[] = [];
  const clock = new SimClock({ timeScale: 1 });
  try {
    for (const e of ENGINES) {
      engines.push(
        await startSimServer({
          runtime: 'vllm',
          host: e.host,
          port: 8000,
          name: e.name,
          model: 'mymodel',
          loras: e.loras,
          ...(e.maxLoras === undefined ? {} : { maxLoras: e.maxLoras }),
          profile: 'llama-3.1-8b-h100',
          clock,
        }),
      );
    }
    const gateway = await startStandaloneGateway({
      sources: [new FileConfigSource([EXAMPLE_DIR])],
      address: '127.0.0.1',
      adminPort: values['admin-port'] === undefined ? 9090 : Number(values['admin-port']),
      logger,
    });
    process.stderr.write(`
Infergate demo is running.
  model servers: ${engines.map((e) => `${e.name} ${e.url}`).join(', ')}
  gateway:       http://127.0.0.1:8080  (config: ${EXAMPLE_DIR}, reloaded on change)
  health:        http://127.0.0.1:${gateway.adminPort}/readyz

Try (90% of answers come from a qwen pod, 10% from deepseek-r1-0; header x-sim-pod names it):
  curl -si http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"mymodel","max_tokens":24,"messages":[{"role":"user","content":"Who are you?"}]}'
LoRA canary (90% travel-helper-v1, 10% travel-helper-v2; the answer starts with the adapter's
name), streaming token by token:
  curl -sN http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"travelhelper","stream":true,"messages":[{"role":"user","content":"I just arrived in Beijing"}]}'
Models routable here:  curl -s http://127.0.0.1:8080/v1/models
A model server's own metrics (vLLM names):  curl -s http://127.0.0.2:8000/metrics
Edit the weights in examples/canary/route.yaml or models.yaml and the split changes live.
Press Ctrl-C to stop.

`);
    await untilSignal();
    await gateway.close();
    return 0;
  } finally {
    await Promise.all(engines.map((e) => e.close()));
    clock.close();
  }
}
