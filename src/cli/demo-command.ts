import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Resource } from '../api/types.js';
import { createLogger, type LogLevel } from '../observability/logger.js';
import { FileConfigSource } from '../config/file-source.js';
import { startStandaloneGateway } from '../proxy/standalone.js';
import { SimClock, startSimServer, type RunningSimServer } from '../sim/index.js';
import { OptionError, portOption } from './options.js';
import { untilSignal } from './signals.js';

export const DEMO_HELP = `infergate demo: simulated model servers behind the gateway (seed 003's canary setup)

Starts three simulated vLLM servers (pods qwen-0 and qwen-1 in pool mymodel-pool-v1 with LoRA
adapters travel-helper-v1/v2 and --max-loras 2, pod deepseek-r1-0 in pool mymodel-pool-v2) on
127.0.0.2-4:8000, each a Llama-3.1-8B-on-H100 engine in real time (docs/simulator.md), then the
gateway on port 8080 from examples/canary/. Runs until Ctrl-C, SIGTERM, or its parent exits.

Options:
  --port N           the gateway's listener port (default 8080; the example's Gateway listener
                     is moved there)
  --admin-port N     /healthz, /readyz and /metrics port (default 9090; 0 = any free port)
  --sim-port N       port of the simulated servers (default 8000; the pools' target port follows)
  --sim-hosts A,B,C  addresses of qwen-0, qwen-1 and deepseek-r1-0 (default
                     127.0.0.2,127.0.0.3,127.0.0.4; the Pods' podIP follow)
  --log-level LEVEL  default info (one "Request Handled" line per request)
`;

/** The simulated pods of examples/canary/pods.yaml and what each one serves. */
const ENGINES = [
  { name: 'qwen-0', host: '127.0.0.2', loras: ['travel-helper-v1', 'travel-helper-v2'], maxLoras: 2 },
  { name: 'qwen-1', host: '127.0.0.3', loras: ['travel-helper-v1', 'travel-helper-v2'], maxLoras: 2 },
  { name: 'deepseek-r1-0', host: '127.0.0.4', loras: [], maxLoras: undefined },
] as const;

export const EXAMPLE_DIR = fileURLToPath(new URL('../../../examples/canary/', import.meta.url));

/** Where the demo puts things; the example's files say 8080, 8000 and 127.0.0.2-4. */
export interface DemoPlacement {
  readonly port: number;
  readonly simPort: number;
  /** Pod name → address. */
  readonly hosts: ReadonlyMap<string, string>;
}

/**
 * The example's resources moved to `placement`: the Gateway listeners to its port, the pools'
 * target ports to the simulators' port, each simulated Pod's IP to its host. Applied on every
 * load, so edits to the example's files while the demo runs still take effect.
 */
export function placeResources(resources: readonly Resource[], placement: DemoPlacement): Resource[] {
  return resources.map((r): Resource => {
    switch (r.kind) {
      case 'Gateway':
        return { ...r, spec: { ...r.spec, listeners: r.spec.listeners.map((l) => ({ ...l, port: placement.port })) } };
      case 'InferencePool':
        return { ...r, spec: { ...r.spec, targetPorts: r.spec.targetPorts.map(() => placement.simPort) } };
      case 'Pod': {
        const host = placement.hosts.get(r.metadata.name);
        return host === undefined ? r : { ...r, status: { ...r.status, podIP: host } };
      }
      default:
        return r;
    }
  });
}

function simHosts(value: string | undefined): Map<string, string> {
  const hosts = value === undefined ? ENGINES.map((e) => e.host) : value.split(',').map((h) => h.trim());
  if (hosts.length !== ENGINES.length || hosts.some((h) => h === '')) {
    throw new OptionError(`--sim-hosts needs ${ENGINES.length} addresses separated by commas, for ${ENGINES.map((e) => e.name).join(', ')} (got "${value ?? ''}")`);
  }
  return new Map(ENGINES.map((e, i) => [e.name, hosts[i] as string]));
}

export async function runDemoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      'admin-port': { type: 'string' },
      'sim-port': { type: 'string' },
      'sim-hosts': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  const placement: DemoPlacement = {
    port: portOption('port', values.port, 8080),
    simPort: portOption('sim-port', values['sim-port'], 8000),
    hosts: simHosts(values['sim-hosts']),
  };
  const adminPort = portOption('admin-port', values['admin-port'], 9090, 0);
  const logger = createLogger((values['log-level'] ?? 'info') as LogLevel);
  const engines: RunningSimServer[] = [];
  const clock = new SimClock({ timeScale: 1 });
  try {
    for (const e of ENGINES) {
      engines.push(
        await startSimServer({
          runtime: 'vllm',
          host: placement.hosts.get(e.name) as string,
          port: placement.simPort,
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
      sources: [new FileConfigSource([EXAMPLE_DIR], { transform: (resources) => placeResources(resources, placement) })],
      address: '127.0.0.1',
      adminPort,
      logger,
    });
    const base = `http://127.0.0.1:${placement.port}`;
    const qwen0 = engines[0] as RunningSimServer;
    process.stderr.write(`
Infergate demo is running.
  model servers: ${engines.map((e) => `${e.name} ${e.url}`).join(', ')}
  gateway:       ${base}  (config: ${EXAMPLE_DIR}, reloaded on change)
  health:        http://127.0.0.1:${gateway.adminPort}/readyz

Try (90% of answers come from a qwen pod, 10% from deepseek-r1-0; header x-sim-pod names it):
  curl -si ${base}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"mymodel","max_tokens":24,"messages":[{"role":"user","content":"Who are you?"}]}'
LoRA canary (90% travel-helper-v1, 10% travel-helper-v2; the answer starts with the adapter's
name), streaming token by token:
  curl -sN ${base}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"travelhelper","stream":true,"messages":[{"role":"user","content":"I just arrived in Beijing"}]}'
Models routable here:  curl -s ${base}/v1/models
A model server's own metrics (vLLM names):  curl -s ${qwen0.url}/metrics
Edit the weights in examples/canary/route.yaml or models.yaml and the split changes live.
Press Ctrl-C to stop.

`);
    const cause = await untilSignal();
    logger.info({ signal: cause }, 'shutting down');
    await gateway.close();
    return 0;
  } finally {
    await Promise.all(engines.map((e) => e.close()));
    clock.close();
  }
}
