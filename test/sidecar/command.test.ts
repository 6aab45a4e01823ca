import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { request } from 'undici';
import { startSimServer } from '../../src/sim/index.js';
import { BIN, cli } from '../support/cli.js';
import { configDir } from '../support/config.js';
import { freePortOnAll } from '../support/ports.js';
import { sidecarPoolYaml, startSidecarEnv } from '../support/sidecar-env.js';

const DECODE_YAML = fileURLToPath(new URL('../../../deploy/examples/pd/decode.yaml', import.meta.url));

test('pd-sidecar --help lists the flags deploy/examples/pd/decode.yaml uses', async () => {
  const r = await cli(['pd-sidecar', '--help']);
  assert.equal(r.code, 0);
  const doc = parse(await readFile(DECODE_YAML, 'utf8')) as { spec: { template: { spec: { containers: { args?: string[] }[] } } } };
  const args = doc.spec.template.spec.containers[0]?.args ?? [];
  assert.equal(args[0], 'pd-sidecar');
  for (const a of args.filter((x) => x.startsWith('-'))) assert.ok(r.stdout.includes(a), `${a} in the help`);
  const main = await cli(['--help']);
  assert.match(main.stdout, /pd-sidecar/);
});

test('pd-sidecar refuses bad flags with one line and exit code 2', async () => {
  const cases: [string[], RegExp][] = [
    [['--decode-url', 'http://127.0.0.1:8200', '-f', DECODE_YAML], /needs --pool-name/],
    [['--pool-name', 'p', '-f', DECODE_YAML], /needs --decode-url/],
    [['--pool-name', 'p', '--decode-url', 'https://127.0.0.1:8200', '-f', DECODE_YAML], /must use http:/],
    [['--pool-name', 'p', '--decode-url', 'http://127.0.0.1:8200/v1', '-f', DECODE_YAML], /origin only/],
    [['--pool-name', 'p', '--decode-url', 'not a url', '-f', DECODE_YAML], /must be an http URL/],
    [['--pool-name', 'p', '--decode-url', 'http://127.0.0.1:8200'], /needs -f/],
    [['--pool-name', 'p', '--decode-url', 'http://127.0.0.1:8200', '-f', '/no/such/file'], /no such file/],
    [['--pool-name', 'p', '--decode-url', 'http://127.0.0.1:8200', '-f', DECODE_YAML, '--port', '70000'], /--port must be an integer/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(['pd-sidecar', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('infergate pd-sidecar starts on the files, passes a request without the header to the decode server, and exits 0 on SIGTERM', async () => {
  const hosts = { prefill: '127.0.11.42', decode: '127.0.11.43' };
  const decodePort = await freePortOnAll([hosts.decode]);
  const decode = await startSimServer({ host: hosts.decode, port: decodePort, name: 'decode-0', runtime: 'vllm', profile: 'tiny', model: ['mymodel'] });
  const config = await configDir(sidecarPoolYaml('vllm', 8000, hosts));
  const child = spawn(process.execPath, [BIN, 'pd-sidecar', '--exit-with-parent', '--port', '0', '--address', hosts.decode, '--decode-url', `http://${hosts.decode}:${decodePort}`, '--pool-name', 'pd', '-f', config.dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const started = await new Promise<{ port: number }>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => {
        const rec = JSON.parse(line) as { msg?: string; port: number };
        if (rec.msg === 'pd sidecar started') resolve(rec);
      });
      child.once('exit', (code) => reject(new Error(`exited ${code} before starting`)));
    });
    const res = await request(`http://${hosts.decode}:${started.port}/v1/models`);
    assert.equal(res.statusCode, 200);
    assert.match(await res.body.text(), /mymodel/);
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await decode.close();
    await config.remove();
  }
});

test('graceful shutdown: a stream that outlives the grace period ends with an SSE error event, and both legs are released', async () => {
  const env = await startSidecarEnv('sglang', { prefill: '127.0.11.52', decode: '127.0.11.53', outsider: '127.0.11.54' }, { timeScale: 1 });
  try {
    const post = (id: string, maxTokens: number): ReturnType<typeof request> =>
      request(`${env.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': id, 'x-prefiller-host-port': `${env.hosts.prefill}:${env.port}` },
        body: JSON.stringify({ model: 'mymodel', stream: true, max_tokens: maxTokens, ignore_eos: true, messages: [{ role: 'user', content: 'tell a story' }] }),
      });
    // A stream far longer than the grace period (4 ms a token in real time: ~3.6 s).
    const res = await post('outlives', 900);
    assert.equal(res.statusCode, 200);
    const it = res.body[Symbol.asyncIterator]();
    await it.next();
    const closing = env.sidecar.close(300);
    let rest = '';
    for (let n = await it.next(); n.done !== true; n = await it.next()) rest += String(n.value);
    await closing;
    assert.match(rest, /gateway_shutting_down/);
    assert.match(rest, /data: \[DONE\]/);
    assert.equal(env.sidecar.inFlight.size, 0);
    const pool = env.gateway.runtime?.pools.get('default/pd');
    assert.ok(pool?.members.endpoints.every((e) => e.inFlight === 0), 'the prefill endpoint is released');
  } finally {
    await env.close();
  }
});
