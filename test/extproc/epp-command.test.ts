import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { credentials, makeGenericClientConstructor, type Client, type ServiceError } from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { eppPool } from '../../src/cli/epp-options.js';
import { headerMap } from '../../src/extproc/headers.js';
import { BIN, cli } from '../support/cli.js';
import { EnvoyExtProcClient, envoyRequestHeaders } from '../support/envoy-standin.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/canary', import.meta.url));
const DOCS = fileURLToPath(new URL('../../../docs/ext-proc.md', import.meta.url));

test('epp --help lists upstream\'s flags and defaults', async () => {
  const r = await cli(['epp', '--help']);
  assert.equal(r.code, 0);
  for (const flag of ['--grpc-port', '9002', '--grpc-health-port', '9003', '--metrics-port', '9090', '--pool-name', '--pool-namespace', '--endpoint-selector', '--endpoint-target-ports', '--insecure', '--cert-path', '--log-format', '-f, --file']) assert.ok(r.stdout.includes(flag), flag);
});

test('every flag epp --help lists is in docs/ext-proc.md\'s flag table, and every flag of the table is in the help', async () => {
  const r = await cli(['epp', '--help']);
  const help = new Set([...r.stdout.matchAll(/^\s+(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1] as string));
  help.delete('--help');
  const docs = await readFile(DOCS, 'utf8');
  const table = docs.slice(docs.indexOf('## Running `infergate epp`'), docs.indexOf('The defaults are upstream'));
  const documented = new Set([...table.matchAll(/`(--[a-z-]+)/g)].map((m) => m[1] as string));
  if (table.includes('`-f ')) documented.add('--file');
  assert.deepEqual([...help].filter((f) => !documented.has(f)), [], 'flags the help lists and the docs do not');
  assert.deepEqual([...documented].filter((f) => !help.has(f)), [], 'flags the docs list and the help does not');
});

test('epp refuses bad flags with one line and exit code 2', async () => {
  const cases: [string[], RegExp][] = [
    [['-f', EXAMPLE], /--pool-name NAME .* or --endpoint-selector/],
    [['--pool-name', 'p', '--endpoint-selector', 'app=x', '-f', EXAMPLE], /either --pool-name or --endpoint-selector/],
    [['--endpoint-selector', 'app=x', '-f', EXAMPLE], /needs --endpoint-target-ports/],
    [['--endpoint-selector', 'app=x', '--endpoint-target-ports', '1,2,3,4,5,6,7,8,9', '-f', EXAMPLE], /at most 8 ports/],
    [['--endpoint-selector', 'app', '--endpoint-target-ports', '8000', '-f', EXAMPLE], /label=value pairs/],
    [['--pool-name', 'p'], /needs -f/],
    [['--pool-name', 'p', '-f', '/no/such/file'], /no such file/],
    [['--pool-name', 'p', '-f', EXAMPLE, '--grpc-port', '70000'], /--grpc-port must be an integer/],
    [['--pool-name', 'p', '-f', EXAMPLE, '--insecure', '--cert-path', '/tmp'], /exclude each other/],
    [['--pool-name', 'p', '-f', EXAMPLE, '--body-mode', 'STREAMED'], /--body-mode must be one of/],
    [['--pool-name', 'p', '-f', EXAMPLE, '--address', '127.0.0.1', '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0', '--cert-path', '/no/such/dir'], /^infergate epp: --cert-path \/no\/such\/dir: cannot read tls\.crt and tls\.key/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(['epp', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('the pool namespace is --pool-namespace, else env NAMESPACE, else default', () => {
  assert.deepEqual(eppPool({ poolName: 'p' }, {}), { kind: 'pool', name: 'p', namespace: 'default' });
  assert.deepEqual(eppPool({ poolName: 'p' }, { NAMESPACE: 'team-a' }), { kind: 'pool', name: 'p', namespace: 'team-a' });
  assert.deepEqual(eppPool({ poolName: 'p', poolNamespace: 'ns' }, { NAMESPACE: 'team-a' }), { kind: 'pool', name: 'p', namespace: 'ns' });
  assert.deepEqual(eppPool({ selector: 'app=vllm,tier=gpu', targetPorts: '8000,8001' }, {}), { kind: 'selector', selector: { app: 'vllm', tier: 'gpu' }, targetPorts: [8000, 8001], namespace: 'default' });
});

type HealthClient = Client & { Check(req: { service: string }, cb: (err: ServiceError | null, res?: { status: string }) => void): void };
const HealthClientCtor = makeGenericClientConstructor(healthService, 'Health') as unknown as new (target: string, creds: ReturnType<typeof credentials.createInsecure>) => HealthClient;

test('infergate epp starts with TLS (self-signed), answers gRPC health, refuses requests until the core is wired, and exits 0 on SIGTERM', async () => {
  const child = spawn(process.execPath, [BIN, 'epp', '--exit-with-parent', '--pool-name', 'p', '-f', EXAMPLE, '--address', '127.0.0.1', '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const started = await new Promise<{ grpcPort: number; healthPort: number; tls: boolean; selfSigned: boolean }>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        const rec = JSON.parse(line) as { msg?: string; grpcPort: number; healthPort: number; tls: boolean; selfSigned: boolean };
        if (rec.msg === 'endpoint picker started') resolve(rec);
      });
      child.once('exit', (code) => reject(new Error(`epp exited ${code} before starting`)));
    });
    assert.equal(started.tls, true);
    assert.equal(started.selfSigned, true);
    const health = new HealthClientCtor(`127.0.0.1:${started.healthPort}`, credentials.createInsecure());
    const check = (service: string): Promise<string> => new Promise((resolve) => health.Check({ service }, (err, res) => resolve(err === null ? String(res?.status) : `error ${err.code}`)));
    assert.equal(await check('liveness'), 'SERVING');
    assert.equal(await check('readiness'), 'NOT_SERVING');
    health.close();

    const envoy = new EnvoyExtProcClient({ target: `127.0.0.1:${started.grpcPort}` });
    const call = envoy.open();
    call.send({ request_headers: { headers: headerMap(envoyRequestHeaders('GET', '/v1/models', {})), end_of_stream: true }, protocol_config: envoy.protocolConfig() });
    const answer = await call.next();
    assert.equal(answer.immediate_response?.status?.code, 503);
    call.end();
    envoy.close();

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
