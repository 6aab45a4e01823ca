import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseDocuments, type Pod } from '../../src/api/index.js';
import { nextAddress, podsYaml, startSimFleet } from '../../src/sim/index.js';
import { BIN, cli } from '../support/cli.js';
import { freePort } from '../support/ports.js';
import { post, scrape, until } from './helpers.js';

describe('startSimFleet', () => {
  test('replicas on consecutive loopback hosts share a port and a clock; podsYaml loads as Pods', async () => {
    const port = await freePort('127.0.0.61');
    const fleet = await startSimFleet({ host: '127.0.0.61', port, replicas: 3, runtime: 'vllm-v0', profile: 'tiny', timeScale: 20, namePrefix: 'pod' });
    try {
      assert.deepEqual(fleet.servers.map((s) => s.url), [`http://127.0.0.61:${port}`, `http://127.0.0.62:${port}`, `http://127.0.0.63:${port}`]);
      assert.ok(fleet.servers.every((s) => s.clock === fleet.servers[0]?.clock));
      for (const s of fleet.servers) {
        const r = await post(s, '/v1/completions', { model: 'mymodel', prompt: 'hi', max_tokens: 2 });
        assert.equal(r.headers.get('x-sim-pod'), s.name);
        await r.arrayBuffer();
      }
      const loaded = parseDocuments(fleet.podsYaml({ app: 'sim', release: 'a' }), 'pods.yaml');
      assert.deepEqual(loaded.problems, []);
      const pods = loaded.resources as Pod[];
      assert.deepEqual(pods.map((p) => [p.kind, p.metadata.name, p.status.podIP, p.metadata.labels['release']]), [
        ['Pod', 'pod-0', '127.0.0.61', 'a'],
        ['Pod', 'pod-1', '127.0.0.62', 'a'],
        ['Pod', 'pod-2', '127.0.0.63', 'a'],
      ]);
    } finally {
      await fleet.close();
    }
  });

  test('portStep puts the replicas on one host, consecutive ports', async () => {
    let fleet: Awaited<ReturnType<typeof startSimFleet>> | undefined;
    let port = 0;
    for (let attempt = 0; attempt < 5 && fleet === undefined; attempt++) {
      port = await freePort();
      fleet = await startSimFleet({ host: '127.0.0.1', port, portStep: 2, replicas: 2, profile: 'tiny' }).catch((err: { code?: string }) => {
        if (err.code !== 'EADDRINUSE') throw err;
        return undefined; // port + 2 was taken: try another
      });
    }
    assert.ok(fleet !== undefined);
    try {
      assert.deepEqual(fleet.servers.map((s) => [s.host, s.port]), [
        ['127.0.0.1', port],
        ['127.0.0.1', port + 2],
      ]);
    } finally {
      await fleet.close();
    }
  });

  test('nextAddress carries into the next octet; podsYaml annotates prefill bootstrap ports', () => {
    assert.equal(nextAddress('127.0.0.255', 1), '127.0.1.0');
    const yaml = podsYaml([{ name: 'p-0', host: '127.0.0.2', pdRole: 'prefill', bootstrapPort: 8998 }], { app: 'x' });
    const pod = parseDocuments(yaml, 'p.yaml').resources[0] as Pod;
    assert.equal(pod.metadata.annotations['sglang.ai/bootstrap-port'], '8998');
  });
});

/** `infergate sim <args>` running until `stop()` (SIGTERM; resolves to the exit code). */
async function simProcess(args: readonly string[]): Promise<{ stdout: () => string; stderr: () => string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, 'sim', '--exit-with-parent', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = once(child, 'exit') as Promise<[number | null]>;
  // Started once it says so. The bound is generous: a process takes seconds to start on a busy
  // machine, and one stopped before its signal handlers are installed exits without a code.
  const deadline = Date.now() + 60_000;
  while (!stdout.includes('Press Ctrl-C') && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    stop: async () => {
      child.kill('SIGTERM');
      return (await exited)[0];
    },
  };
}

describe('infergate sim', () => {
  test('--replicas and --pods-yaml: engines listen where printed, Pods load, SIGTERM exits 0', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'infergate-sim-'));
    const file = join(dir, 'pods.yaml');
    const port = await freePort('127.0.0.71');
    const child = spawn(
      process.execPath,
      [BIN, 'sim', '--runtime', 'sglang', '--host', '127.0.0.71', '--port', String(port), '--replicas', '2', '--profile', 'tiny', '--time-scale', '20', '--labels', 'app=simtest,tier=gpu', '--pods-yaml', file],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    try {
      const deadline = Date.now() + 60_000;
      while (!stdout.includes('Press Ctrl-C') && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      assert.match(stdout, new RegExp(`^sim-0  sglang  http://127\\.0\\.0\\.71:${port}  model mymodel`, 'm'), stderr);
      assert.match(stdout, new RegExp(`^sim-1  sglang  http://127\\.0\\.0\\.72:${port}`, 'm'));
      for (const host of ['127.0.0.71', '127.0.0.72']) {
        const server = { url: `http://${host}:${port}` };
        assert.equal((await fetch(`${server.url}/health_generate`)).status, 200);
        assert.match(await scrape(server), /^sglang:num_queue_reqs\{model_name="mymodel"\} 0\.0$/m);
      }
      const loaded = parseDocuments(await readFile(file, 'utf8'), file);
      assert.deepEqual(loaded.problems, []);
      const pods = loaded.resources as Pod[];
      assert.deepEqual(pods.map((p) => [p.metadata.name, p.status.podIP, p.metadata.labels['app'], p.metadata.labels['tier']]), [
        ['sim-0', '127.0.0.71', 'simtest', 'gpu'],
        ['sim-1', '127.0.0.72', 'simtest', 'gpu'],
      ]);
    } finally {
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      await rm(dir, { recursive: true, force: true });
      assert.equal(code, 0, stderr);
    }
  });

  test('--pd-role per replica (vLLM): prefill and decode servers, the prefill’s side channel printed, roles written as a Pod label', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'infergate-sim-'));
    const file = join(dir, 'pods.yaml');
    const port = await freePort('127.0.0.73');
    const sim = await simProcess(['--host', '127.0.0.73', '--port', String(port), '--replicas', '2', '--profile', 'tiny', '--time-scale', '20', '--pd-role', 'prefill,decode', '--pd-role-label', 'role', '--side-channel-port', '0', '--pods-yaml', file]);
    try {
      const line = new RegExp(`^sim-0  vllm prefill  http://127\\.0\\.0\\.73:${port}  model mymodel  side channel 127\\.0\\.0\\.73:(\\d+)$`, 'm').exec(sim.stdout());
      assert.ok(line !== null, sim.stdout());
      assert.match(sim.stdout(), new RegExp(`^sim-1  vllm decode  http://127\\.0\\.0\\.74:${port}  model mymodel$`, 'm'));
      const prefill = await post({ url: `http://127.0.0.73:${port}` }, '/v1/completions', { model: 'mymodel', prompt: 'x', max_tokens: 1, kv_transfer_params: { do_remote_decode: true } });
      const params = ((await prefill.json()) as { kv_transfer_params: { remote_host: string; remote_port: number } }).kv_transfer_params;
      assert.deepEqual([params.remote_host, params.remote_port], ['127.0.0.73', Number(line[1])]);
      await until('the Pods file', async () => ((await readFile(file, 'utf8').catch(() => '')) === '' ? undefined : true));
      const pods = parseDocuments(await readFile(file, 'utf8'), file).resources as Pod[];
      assert.deepEqual(pods.map((p) => [p.metadata.name, p.metadata.labels['app'], p.metadata.labels['role']]), [
        ['sim-0', 'sim', 'prefill'],
        ['sim-1', 'sim', 'decode'],
      ]);
    } finally {
      assert.equal(await sim.stop(), 0, sim.stderr());
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('bad flags: one clear line, exit 2', async () => {
    const cases: ReadonlyArray<readonly [readonly string[], RegExp]> = [
      [['--runtime', 'tgi'], /^infergate sim: --runtime must be one of vllm, vllm-v0, sglang, trtllm \(got "tgi"\)\n$/],
      [['--replicas', '0'], /^infergate sim: --replicas must be an integer from 1 to 256 \(got "0"\)\n$/],
      [['--runtime', 'trtllm', '--pd-role', 'prefill'], /^infergate sim: --pd-role needs --runtime sglang or vllm/],
      [['--pd-role', 'middle'], /^infergate sim: --pd-role must be prefill or decode, or a list of them \(got "middle"\)\n$/],
      [['--pd-role', 'prefill,decode', '--replicas', '3'], /^infergate sim: --pd-role lists 2 roles for 3 replicas\n$/],
      [['--profile', 'huge'], /^infergate sim: --profile must be one of/],
      [['--model-path', ' '], /^infergate sim: --model-path must not be empty\n$/],
      [['--bogus'], /^infergate sim: Unknown option '--bogus'/],
      [['--profile', 'tiny', '--max-model-len', '99999'], /^infergate sim: profile tiny: maxModelLen 99999 does not fit the KV cache/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(['sim', ...args])));
    cases.forEach(([args, message], i) => {
      const r = results[i]!;
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    });
  });

  test('--gzip, --metrics-fault, --fault and --embedding-dim reach the servers', async () => {
    const port = await freePort('127.0.0.81');
    const sim = await simProcess(['--host', '127.0.0.81', '--port', String(port), '--profile', 'tiny', '--time-scale', '20', '--gzip', '--metrics-fault', 'nan', '--fault', 'status:503', '--embedding-dim', '64']);
    try {
      const url = `http://127.0.0.81:${port}`;
      const page = await fetch(`${url}/metrics`);
      assert.equal(page.headers.get('content-encoding'), 'gzip', sim.stderr());
      assert.match(await page.text(), /^vllm:num_requests_waiting\{[^}]*\} NaN$/m);
      assert.equal((await post({ url }, '/v1/completions', { model: 'mymodel', prompt: 'x' })).status, 503);
      assert.deepEqual(await (await fetch(`${url}/sim/faults`)).json(), { generation: 'status:503', metrics: 'nan' });
      const emb = await post({ url }, '/v1/embeddings', { model: 'mymodel', input: 'x', encoding_format: 'float' }, { 'x-sim-fault': 'ok' });
      assert.equal(((await emb.json()) as { data: Array<{ embedding: number[] }> }).data[0]?.embedding.length, 64);
    } finally {
      assert.equal(await sim.stop(), 0, sim.stderr());
    }
  });

  test('--model-path: the server answers as that model and lists it as root, beside its served name', async () => {
    const port = await freePort('127.0.0.83');
    const sim = await simProcess(['--host', '127.0.0.83', '--port', String(port), '--profile', 'tiny', '--time-scale', '20', '--model', 'mymodel', '--model-path', '/models/DeepSeek-R1-Distill-Qwen-7B']);
    try {
      assert.match(sim.stdout(), /model mymodel \(\/models\/DeepSeek-R1-Distill-Qwen-7B\)/);
      const url = `http://127.0.0.83:${port}`;
      const r = await post({ url }, '/v1/chat/completions', { model: 'mymodel', max_tokens: 20, messages: [{ role: 'user', content: 'Who are you?' }] });
      const body = (await r.json()) as { choices: Array<{ message: { content: string } }> };
      assert.match(body.choices[0]?.message.content ?? '', /^ I am DeepSeek-R1-Distill-Qwen-7B\. /, sim.stderr());
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string; root: string }> };
      assert.deepEqual(models.data.map((m) => [m.id, m.root]), [['mymodel', '/models/DeepSeek-R1-Distill-Qwen-7B']]);
    } finally {
      assert.equal(await sim.stop(), 0, sim.stderr());
    }
  });

  test('--triton-version selects the stream_options behaviour of a Triton face', async () => {
    const port = await freePort('127.0.0.82');
    const sim = await simProcess(['--runtime', 'trtllm', '--host', '127.0.0.82', '--port', String(port), '--profile', 'tiny', '--triton-version', '2.59']);
    try {
      const r = await post({ url: `http://127.0.0.82:${port}` }, '/v1/chat/completions', { model: 'mymodel', messages: [{ role: 'user', content: 'x' }], stream: true, stream_options: { include_usage: true } });
      assert.equal(r.status, 422, sim.stderr());
      await r.arrayBuffer();
    } finally {
      assert.equal(await sim.stop(), 0, sim.stderr());
    }
  });

  test('bad fault, version and dimension flags: one clear line, exit 2', async () => {
    const cases: ReadonlyArray<readonly [readonly string[], RegExp]> = [
      [['--triton-version', '2.59'], /^infergate sim: --triton-version needs --runtime trtllm\n$/],
      [['--runtime', 'trtllm', '--triton-version', '25.11'], /^infergate sim: --triton-version must be a Triton server version such as 2\.59 \(got "25\.11"\)\n$/],
      [['--metrics-fault', 'zero'], /^infergate sim: --metrics-fault must be one of none, no-stats, nan \(got "zero"\)\n$/],
      [['--fault', 'status:700'], /^infergate sim: --fault: unknown generation fault "status:700"/],
      [['--embedding-dim', '0'], /^infergate sim: --embedding-dim must be an integer from 1 to 16384 \(got "0"\)\n$/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(['sim', ...args])));
    cases.forEach(([args, message], i) => {
      const r = results[i]!;
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    });
  });

  test('--help describes the runtimes, profiles, PD flags and faults', async () => {
    const r = await cli(['sim', '--help']);
    assert.equal(r.code, 0);
    const words = ['--runtime', 'vllm-v0', 'trtllm', 'llama-3.1-8b-h100', '--pd-role', '--bootstrap-port', '--time-scale', '--pods-yaml'];
    for (const word of [...words, '--gzip', '--triton-version', '--metrics-fault', 'no-stats', '--fault', 'stall-mid-stream', '/sim/faults', 'x-sim-fault', '--embedding-dim']) {
      assert.ok(r.stdout.includes(word), word);
    }
  });
});
