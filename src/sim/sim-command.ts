import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { startEchoServer, type RunningEchoServer } from './echo-server.js';
import { untilSignal } from '../cli/signals.js';

export const SIM_HELP = `infergate sim: simulated OpenAI-compatible model servers

Usage: infergate sim [options]

Options:
  --host ADDR          first loopback address (default 127.0.0.2); replicas take the next ones
  --port N             port every replica listens on (default 8000)
  --replicas N         number of servers (default 1)
  --model NAME         served model name (default mymodel)
  --lora A,B           LoRA adapter names served beside the model
  --labels k=v,...     pod labels written to --pods-yaml (default app=sim)
  --pods-yaml FILE     write the matching Pod resources (labels + podIP) for the gateway
  --token-delay-ms N   delay between streamed tokens (default 20)
`;

/** 127.0.0.2 + 1 = 127.0.0.3, carrying into the next octet. */
export function nextAddress(ip: string, offset: number): string {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`--host must be an IPv4 address (got "${ip}")`);
  const n = ((parts[0] ?? 0) * 2 ** 24 + (parts[1] ?? 0) * 2 ** 16 + (parts[2] ?? 0) * 2 ** 8 + (parts[3] ?? 0) + offset) >>> 0;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(',').filter((p) => p !== '')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--labels expects k=v pairs separated by commas (got "${pair}")`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** Pod resources for the servers, as `kubectl get pods -o yaml` would print them. */
export function podsYaml(servers: ReadonlyArray<{ name: string; host: string }>, labels: Readonly<Record<string, string>>): string {
  const labelLines = Object.entries(labels).map(([k, v]) => `      ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join('\n');
  const items = servers.map((s) => `- apiVersion: v1
  kind: Pod
  metadata:
    name: ${s.name}
    labels:
${labelLines.replace(/^ {6}/gm, '      ')}
  status:
    phase: Running
    podIP: ${s.host}`);
  return `apiVersion: v1\nkind: List\nitems:\n${items.join('\n')}\n`;
}

function int(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max} (got "${value}")`);
  return n;
}

export async function runSimCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      replicas: { type: 'string' },
      model: { type: 'string' },
      lora: { type: 'string' },
      labels: { type: 'string' },
      'pods-yaml': { type: 'string' },
      'token-delay-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    process.stdout.write(SIM_HELP);
    return 0;
  }
  const host = values.host ?? '127.0.0.2';
  const port = int('port', values.port, 8000, 0, 65535);
  const replicas = int('replicas', values.replicas, 1, 1, 64);
  const labels = parseLabels(values.labels ?? 'app=sim');
  const loras = (values.lora ?? '').split(',').filter((l) => l !== '');
  const servers: RunningEchoServer[] = [];
  try {
    for (let i = 0; i < replicas; i++) {
      servers.push(
        await startEchoServer({ host: nextAddress(host, i), port, name: `sim-${i}`, models: [values.model ?? 'mymodel'], loras, tokenDelayMs: int('token-delay-ms', values['token-delay-ms'], 20, 0, 60_000) }),
      );
    }
    for (const s of servers) process.stderr.write(`${s.name} listening on ${s.url}\n`);
    if (values['pods-yaml'] !== undefined) {
      await writeFile(values['pods-yaml'], podsYaml(servers, labels));
      process.stderr.write(`wrote ${servers.length} Pod resource(s) to ${values['pods-yaml']}\n`);
    }
    await untilSignal();
    return 0;
  } finally {
    await Promise.all(servers.map((s) => s.close()));
  }
}
