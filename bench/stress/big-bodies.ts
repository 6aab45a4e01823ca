/**
 * Stress run (not a test): many large, in-limit chat bodies at once through a gateway process.
 * It measures whether the gateway survives, its peak resident memory (VmHWM) and whether it serves
 * the next request afterwards. Everything runs on loopback and stops by itself.
 *
 *   npx tsc -p tsconfig.json
 *   node dist/bench/stress/big-bodies.js [--count 200] [--mib 15] [--policy PREFIX_CACHE|DEFAULT] [-- gateway flags…]
 *
 * `--text random` sends base64 noise instead of one repeated letter. Prints one JSON object: statuses seen, peak RSS in MiB, whether the gateway is still alive and
 * what the next small request got.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BIN = fileURLToPath(new URL('../../../bin/infergate.js', import.meta.url));

async function freePort(): Promise<number> {
  const s = netServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  s.close();
  return port;
}

/** A model server that reads each body, waits `holdMs` (so requests overlap) and answers a small chat JSON. */
async function fakeServer(holdMs: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      res.end('vllm:num_requests_running{model_name="m"} 0\nvllm:num_requests_waiting{model_name="m"} 0\nvllm:gpu_cache_usage_perc{model_name="m"} 0\n');
      return;
    }
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      setTimeout(() => {
        const body = JSON.stringify({ id: 'x', object: 'chat.completion', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: `got ${bytes}` }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }, holdMs);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

function config(listenPort: number, podPort: number, policy: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: infergate
  listeners: [{name: http, protocol: HTTP, port: ${listenPort}}]
---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferencePool
metadata:
  name: pool
  annotations: {inference.networking.x-k8s.io/routing-strategy: ${policy}}
spec:
  selector: {app: fake}
  targetPortNumber: ${podPort}
---
apiVersion: v1
kind: Pod
metadata: {name: fake-0, labels: {app: fake}}
status: {phase: Running, podIP: 127.0.0.1}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: all}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}}]
    backendRefs: [{group: inference.networking.x-k8s.io, kind: InferencePool, name: pool}]
`;
}

/** POSTs `body`; resolves with the status (0: the connection failed) and the error code in the answer. */
function post(port: number, body: Buffer): Promise<{ status: number; code?: string; retryAfter?: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', 'content-length': body.length }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        const code = /"code":"([a-z_]+)"/.exec(text)?.[1];
        resolve({ status: res.statusCode ?? 0, ...(code === undefined ? {} : { code }), ...(res.headers['retry-after'] === undefined ? {} : { retryAfter: String(res.headers['retry-after']) }) });
      });
      res.on('error', () => resolve({ status: 0 }));
    });
    req.on('error', () => resolve({ status: 0 }));
    req.end(body);
  });
}

async function peakRssMiB(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /VmHWM:\s+(\d+) kB/.exec(status)?.[1];
    return kb === undefined ? undefined : Math.round(Number(kb) / 1024);
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: { count: { type: 'string' }, mib: { type: 'string' }, policy: { type: 'string' }, hold: { type: 'string' }, text: { type: 'string' } },
    allowPositionals: true,
  });
  const count = Number(values.count ?? 200);
  const mib = Number(values.mib ?? 15);
  const policy = values.policy ?? 'PREFIX_CACHE';
  const { server, port: podPort } = await fakeServer(Number(values.hold ?? 500));
  const listenPort = await freePort();
  const adminPort = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'infergate-stress-'));
  await writeFile(join(dir, 'config.yaml'), config(listenPort, podPort, policy));
  const child = spawn(process.execPath, [BIN, 'serve', '-f', dir, '--workers', '1', '--address', '127.0.0.1', '--admin-port', String(adminPort), '--log-level', 'warn', ...positionals], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null }));
  let exit: { code: number | null; signal: string | null } | undefined;
  void exited.then((e) => (exit = e));
  try {
    for (const deadline = Date.now() + 30_000; ; ) {
      if (exit !== undefined) throw new Error(`gateway exited at start: ${stderr}`);
      const ok = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.status === 200).catch(() => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error('gateway not ready');
      await new Promise((r) => setTimeout(r, 100));
    }
    // `--text random`: base64 of random bytes (no repeated blocks), else one repeated letter.
    const chars = mib * 1024 * 1024 - 100;
    const content = values.text === 'random' ? randomBytes(Math.ceil((chars * 3) / 4)).toString('base64').slice(0, chars) : 'x'.repeat(chars);
    const body = Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content }] }));
    const startedAt = Date.now();
    const results = await Promise.all(Array.from({ length: count }, () => post(listenPort, body)));
    const seconds = (Date.now() - startedAt) / 1000;
    const statuses: Record<string, number> = {};
    for (const r of results) {
      const key = `${r.status}${r.code === undefined ? '' : ` ${r.code}`}${r.retryAfter === undefined ? '' : ` retry-after=${r.retryAfter}`}`;
      statuses[key] = (statuses[key] ?? 0) + 1;
    }
    const peak = await peakRssMiB(child.pid ?? 0);
    const next = exit === undefined ? await post(listenPort, Buffer.from(JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }))) : undefined;
    const report = {
      count,
      mib,
      policy,
      gatewayArgs: positionals,
      seconds,
      statuses,
      peakRssMiB: peak,
      alive: exit === undefined,
      exit,
      nextRequest: next,
      stderrTail: stderr.slice(-600),
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (exit === undefined) child.kill('SIGKILL');
    server.close();
    server.closeAllConnections();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
