import { parseArgs } from 'node:util';
import type { Resource } from '../api/types.js';
import { createLogger, type LogLevel } from '../observability/logger.js';
import { FileConfigSource } from '../config/file-source.js';
import { startStandaloneGateway } from '../proxy/standalone.js';
import { SimClock, startSimServer, type RunningSimServer } from '../sim/index.js';
import { examplePath, QWEN3_32B, type DemoEngine, type DemoExample } from './demo-example.js';
import { SEED_002_EXAMPLES, SEED_002_VARIANTS } from './demo-seed-002.js';
import { logFormatOption, OptionError, portOption } from './options.js';
import { untilSignal } from './signals.js';

export const DEMO_HELP = `infergate demo: simulated model servers behind the gateway

Examples (--example NAME, default canary):
  canary  seed 003's canary setup: three simulated vLLM servers (pods qwen-0 and qwen-1 in pool
          mymodel-pool-v1, standing for /models/Qwen-2.5-7B-Instruct with LoRA adapters
          travel-helper-v1/v2 and --max-loras 2; pod deepseek-r1-0 in pool mymodel-pool-v2,
          standing for /models/DeepSeek-R1-Distill-Qwen-7B; all serve the name mymodel) on
          127.0.0.2-4:8000, each a Llama-3.1-8B-on-H100 engine in real time, and the gateway on
          port 8080 from examples/canary/. Answers open with the words of the model that served them: "I am
          Qwen-2.5-7B-Instruct." / "I am DeepSeek-R1-Distill-Qwen-7B.", plus " + LoRA
          travel-helper-v1" when an adapter served.
  pd      seed 002's SGLang prefill/decode pool: two prefill servers (qwen-prefill-0/1, their
          bootstrap listeners on port 34000 of their own addresses, --bootstrap-port) and two decode servers
          (qwen-decode-0/1) on 127.0.0.12-15:8000, each a Qwen3-32B-on-2xH100 engine in real
          time standing for /models/Qwen3-32B, and the gateway on port 8080 from examples/pd/.
          Every request is prefilled on a prefill server and decoded on a decode server, which
          answers.
  ${SEED_002_VARIANTS.slice(0, 4).join(', ')},
  ${SEED_002_VARIANTS.slice(4, 8).join(', ')},
  ${SEED_002_VARIANTS.slice(8).join(', ')}
          seed 002's variants, each from examples/seed-002/gateway.yaml (the seed's Gateway and
          route) and examples/seed-002/<variant>/ (the seed's pool, and the Pods it selects):
          DEFAULT or PREFIX_CACHE routing over two single-node vLLM or SGLang servers (qwen-0/1 on
          127.0.0.22-23), over the leaders of two multi-node groups (qwen-0/1 on 127.0.0.22 and
          .24; the workers' Pods are not selected), or SGLang prefill/decode (as pd). Servers
          stand for /models/Qwen3-32B. The seed's round1/round2 bodies: examples/seed-002/.
The example's files are reloaded when they change. Runs until Ctrl-C, SIGTERM, or its parent exits.

Options:
  --example NAME     canary (default), pd, or a seed 002 variant (above)
  --port N           the gateway's listener port (default 8080; the example's Gateway listener
                     is moved there)
  --admin-port N     /healthz, /readyz, /metrics and /debug/endpoints port (default 9090; 0 = any
                     free port)
  --sim-port N       port of the simulated servers (default 8000; the pools' target port follows)
  --sim-hosts A,B,…  addresses of the example's servers, in the order above (canary: 3, default
                     127.0.0.2,127.0.0.3,127.0.0.4; pd and *-sglang-pd: 4, default
                     127.0.0.12-15; other seed 002 variants: 2; the Pods' podIP follow)
  --address ADDR     address the gateway's listener binds (default 127.0.0.1)
  --bootstrap-port N pd, *-sglang-pd: the prefill servers' bootstrap port (default 34000; the
                     traffic policy's kvTransfer.bootstrapPort follows)
  --log-level LEVEL  default info (one "Request Handled" line per request)
  --log-format F     json (default: one JSON object per line) | pretty (readable lines for a terminal)
`;

/** examples/pd/pool.yaml's `kvTransfer.bootstrapPort`: where the prefill servers' bootstrap listeners are. */
const PD_BOOTSTRAP_PORT = 34_000;
/** The model seed 002's clients ask for. */
const QWEN = QWEN3_32B;
/** The models seed 003's pools stand for: its `vllm serve` model paths. */
const QWEN_2_5 = '/models/Qwen-2.5-7B-Instruct';
const DEEPSEEK_R1 = '/models/DeepSeek-R1-Distill-Qwen-7B';

const vllmCanary = (modelPath: string, loras: readonly string[], maxLoras: number | undefined): DemoEngine['options'] => ({
  runtime: 'vllm',
  model: 'mymodel',
  modelPath,
  loras,
  ...(maxLoras === undefined ? {} : { maxLoras }),
  profile: 'llama-3.1-8b-h100',
});

const sglangPd = (pdRole: 'prefill' | 'decode'): DemoEngine['options'] => ({
  runtime: 'sglang',
  model: QWEN,
  modelPath: QWEN,
  profile: 'qwen3-32b-2xh100',
  pdRole,
});

export const EXAMPLES: Readonly<Record<string, DemoExample>> = {
  canary: {
    paths: [examplePath('canary/')],
    engines: [
      { name: 'qwen-0', host: '127.0.0.2', options: vllmCanary(QWEN_2_5, ['travel-helper-v1', 'travel-helper-v2'], 2) },
      { name: 'qwen-1', host: '127.0.0.3', options: vllmCanary(QWEN_2_5, ['travel-helper-v1', 'travel-helper-v2'], 2) },
      { name: 'deepseek-r1-0', host: '127.0.0.4', options: vllmCanary(DEEPSEEK_R1, [], undefined) },
    ],
    banner: ({ base, engines }) => `Try (90% of answers come from a qwen pod and open with "I am Qwen-2.5-7B-Instruct.", 10% from
deepseek-r1-0 and open with "I am DeepSeek-R1-Distill-Qwen-7B."; header x-sim-pod names the pod):
  curl -si ${base}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"mymodel","max_tokens":24,"messages":[{"role":"user","content":"Who are you?"}]}'
LoRA canary (90% travel-helper-v1, 10% travel-helper-v2, all on a qwen pod: only pool v1 has
the InferenceModel; the answer opens with the base model and the adapter that served it, "I am
Qwen-2.5-7B-Instruct + LoRA travel-helper-v1."), streaming token by token:
  curl -sN ${base}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"travelhelper","stream":true,"messages":[{"role":"user","content":"I just arrived in Beijing"}]}'
  Each answer's "model" field names the adapter that served it ("travel-helper-v1", or
  "travel-helper-v2" about one time in ten), as seed 003 shows: count them to check the split.
Models routable here:  curl -s ${base}/v1/models
A model server's own metrics (vLLM names):  curl -s ${(engines[0] as RunningSimServer).url}/metrics
Edit the weights in examples/canary/route.yaml or models.yaml and the split changes live.
`,
  },
  pd: {
    paths: [examplePath('pd/')],
    engines: [
      { name: 'qwen-prefill-0', host: '127.0.0.12', options: sglangPd('prefill') },
      { name: 'qwen-prefill-1', host: '127.0.0.13', options: sglangPd('prefill') },
      { name: 'qwen-decode-0', host: '127.0.0.14', options: sglangPd('decode') },
      { name: 'qwen-decode-1', host: '127.0.0.15', options: sglangPd('decode') },
    ],
    banner: ({ base, admin, engines }) => `Try (the gateway picks a prefill and a decode pod per request, sends both the same body with
bootstrap_host/port/room, and returns the decode pod's answer; header x-sim-pod names it):
  curl -si ${base}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"${QWEN}","max_tokens":24,"messages":[{"role":"user","content":"Who are you?"}]}'
Streaming token by token:
  curl -sN ${base}/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"${QWEN}","stream":true,"messages":[{"role":"user","content":"I just arrived in Beijing"}]}'
The pool's endpoints and their roles (prefill / decode), load and health:
  curl -s ${admin}/debug/endpoints
What each role did: a prefill pod generates one token per request (the KV goes to the decode
pod), a decode pod generates the answers:
  curl -s ${(engines[0] as RunningSimServer).url}/metrics | grep '^sglang:generation_tokens_total'
  curl -s ${(engines[2] as RunningSimServer).url}/metrics | grep '^sglang:generation_tokens_total'
Edit examples/pd/pool.yaml (the policy, the role label) and the gateway reloads it.
`,
  },
  ...SEED_002_EXAMPLES,
};

/** Where the demo puts things; the example's files say 8080, 8000, 34000 and their pods' addresses. */
export interface DemoPlacement {
  readonly port: number;
  readonly simPort: number;
  /** The prefill servers' bootstrap port (prefill/decode example). */
  readonly bootstrapPort: number;
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
      case 'InferenceTrafficPolicy': {
        const pd = r.spec.profile?.pd;
        if (pd?.kvTransfer?.bootstrapPort === undefined) return r;
        return { ...r, spec: { ...r.spec, profile: { ...r.spec.profile, pd: { ...pd, kvTransfer: { ...pd.kvTransfer, bootstrapPort: placement.bootstrapPort } } } } };
      }
      case 'Pod': {
        const host = placement.hosts.get(r.metadata.name);
        return host === undefined ? r : { ...r, status: { ...r.status, podIP: host } };
      }
      default:
        return r;
    }
  });
}

function simHosts(example: DemoExample, value: string | undefined): Map<string, string> {
  const engines = example.engines;
  const hosts = value === undefined ? engines.map((e) => e.host) : value.split(',').map((h) => h.trim());
  if (hosts.length !== engines.length || hosts.some((h) => h === '')) {
    throw new OptionError(`--sim-hosts needs ${engines.length} addresses separated by commas, for ${engines.map((e) => e.name).join(', ')} (got "${value ?? ''}")`);
  }
  return new Map(engines.map((e, i) => [e.name, hosts[i] as string]));
}

function exampleOf(value: string | undefined): DemoExample {
  const name = value ?? 'canary';
  const example = Object.hasOwn(EXAMPLES, name) ? EXAMPLES[name] : undefined;
  if (example === undefined) throw new OptionError(`--example must be one of ${Object.keys(EXAMPLES).join(', ')} (got "${name}")`);
  return example;
}

export async function runDemoCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      example: { type: 'string' },
      port: { type: 'string' },
      'admin-port': { type: 'string' },
      'sim-port': { type: 'string' },
      'sim-hosts': { type: 'string' },
      address: { type: 'string' },
      'bootstrap-port': { type: 'string' },
      'log-level': { type: 'string' },
      'log-format': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(DEMO_HELP);
    return 0;
  }
  const example = exampleOf(values.example);
  const placement: DemoPlacement = {
    port: portOption('port', values.port, 8080),
    simPort: portOption('sim-port', values['sim-port'], 8000),
    hosts: simHosts(example, values['sim-hosts']),
    bootstrapPort: portOption('bootstrap-port', values['bootstrap-port'], PD_BOOTSTRAP_PORT),
  };
  const address = values.address ?? '127.0.0.1';
  const adminPort = portOption('admin-port', values['admin-port'], 9090, 0);
  const logger = createLogger((values['log-level'] ?? 'info') as LogLevel, undefined, logFormatOption(values['log-format']));
  const engines: RunningSimServer[] = [];
  const clock = new SimClock({ timeScale: 1 });
  try {
    for (const e of example.engines) {
      const bootstrap = e.options.pdRole === 'prefill' ? { bootstrapPort: placement.bootstrapPort } : {};
      engines.push(await startSimServer({ ...e.options, ...bootstrap, host: placement.hosts.get(e.name) as string, port: placement.simPort, name: e.name, clock }));
    }
    const gateway = await startStandaloneGateway({
      sources: [new FileConfigSource([...example.paths], { transform: (resources) => placeResources(resources, placement) })],
      address,
      adminPort,
      logger,
    });
    // A listener on every interface is reached here through loopback.
    const reach = address === '0.0.0.0' ? '127.0.0.1' : address === '::' ? '[::1]' : address.includes(':') ? `[${address}]` : address;
    const base = `http://${reach}:${placement.port}`;
    const admin = `http://127.0.0.1:${gateway.adminPort}`;
    const servers = engines.map((e) => `${e.name} ${e.url}${e.pdRole === undefined ? '' : ` (${e.pdRole}${e.bootstrapPort === undefined ? '' : `, bootstrap ${e.host}:${e.bootstrapPort}`})`}`);
    process.stderr.write(`
Infergate demo is running.
  model servers: ${servers.join(',\n                 ')}
  gateway:       ${base}  (config: ${example.paths.join(', ')}, reloaded on change)
  health:        ${admin}/readyz

${example.banner({ base, admin, engines })}Press Ctrl-C to stop.

`);
    const cause = await untilSignal({ followParent: true });
    logger.info({ signal: cause }, 'shutting down');
    await gateway.close();
    return 0;
  } finally {
    await Promise.all(engines.map((e) => e.close()));
    clock.close();
  }
}
