import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { describe, test } from 'node:test';
import { BIN } from '../support/cli.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/smart.js';

const SIM_HOSTS = ['127.0.6.70', '127.0.6.71', '127.0.6.72'];

/** Ports for one demo run, away from the defaults (8080, 9090, 8000) another program may hold. */
async function demoArgs(): Promise<{ port: number; adminPort: number; simPort: number; args: string[] }> {
  const [port, adminPort, simPort] = [await freePort(), await freePort(), await freePort()];
  return { port, adminPort, simPort, args: ['demo', '--port', String(port), '--admin-port', String(adminPort), '--sim-port', String(simPort), '--sim-hosts', SIM_HOSTS.join(','), '--log-level', 'warn'] };
}

function free(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer().once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/** True while `pid` runs (a zombie waiting for its new parent to reap it counts as gone). */
async function running(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

async function chat(port: number): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'travelhelper', max_tokens: 24, messages: [{ role: 'user', content: 'I just arrived in Beijing' }] }),
  });
}

function collect(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (text += c));
  return () => text;
}

describe('infergate demo', { timeout: 90_000 }, () => {
  test('on non-default ports it serves the canary example and stops cleanly on SIGINT', async () => {
    const { port, args } = await demoArgs();
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr = collect(child);
    try {
      await waitFor('the demo to start', () => stderr().includes('Press Ctrl-C') || child.exitCode !== null, 30_000);
      assert.match(stderr(), new RegExp(`curl -si http://127\\.0\\.0\\.1:${port}/v1/chat/completions`));
      const r = await chat(port);
      assert.equal(r.status, 200);
      const body = (await r.json()) as { model: string; choices: Array<{ message: { content: string } }> };
      // The simulated server answers as the model it stands for (seed 003's model paths), naming
      // the adapter that served; only pool v1 has travelhelper, so a qwen pod serves it with an
      // adapter, whatever the route's 90/10.
      const pod = r.headers.get('x-sim-pod') ?? '';
      const content = body.choices[0]?.message.content ?? '';
      assert.match(pod, /^qwen-[01]$/);
      assert.match(content, /^ I am Qwen-2\.5-7B-Instruct \+ LoRA travel-helper-v[12]\. /);
      // Seed 003 verifies the LoRA split by the adapter each answer names.
      assert.match(body.model, /^travel-helper-v[12]$/);
      assert.match(stderr(), /"model" field names the adapter that served it/);
      assert.equal(r.headers.get('x-sim-runtime'), 'vllm');
      // Seed 003's scenario 1, verified as the seed does: "Who are you?" to mymodel answers "I am
      // Qwen…" from pool v1 and "I am DeepSeek-R1…" from pool v2.
      for (let i = 0; i < 6; i++) {
        const who = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'mymodel', max_tokens: 24, messages: [{ role: 'user', content: `Who are you? (${i})` }] }),
        });
        const answer = ((await who.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message.content ?? '';
        const from = who.headers.get('x-sim-pod');
        assert.match(answer, from === 'deepseek-r1-0' ? /^ I am DeepSeek-R1-Distill-Qwen-7B\. / : /^ I am Qwen-2\.5-7B-Instruct\. /, `${from}: ${answer}`);
      }
    } finally {
      child.kill('SIGINT');
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0, stderr());
    }
  });

  test('under npm start (npm → sh -c → demo), the demo exits when npm is killed, though sh lives on', async () => {
    const { port, args } = await demoArgs();
    // npm runs a script with `sh -c`; killed hard, npm leaves that shell behind. `; :` keeps the
    // shell from replacing itself with the demo.
    const script = `"${process.execPath}" ${[BIN, ...args].map((a) => `'${a}'`).join(' ')}; :`;
    const npm = spawn(
      process.execPath,
      ['-e', `const c = require('node:child_process').spawn('sh', ['-c', ${JSON.stringify(script)}], { stdio: ['ignore', 'ignore', 'inherit'] }); console.log(c.pid); setInterval(() => {}, 1000);`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const stderr = collect(npm);
    let stdout = '';
    npm.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    let shPid = 0;
    try {
      await waitFor('the demo to start', () => stderr().includes('Press Ctrl-C') || npm.exitCode !== null, 30_000);
      shPid = Number(stdout.trim());
      assert.ok(shPid > 0, `the shell's pid: ${stdout}`);
      assert.equal((await chat(port)).status, 200);
    } finally {
      npm.kill('SIGKILL');
    }
    try {
      // The demo was the shell's child; once it exits, the shell (its script done) exits too.
      await waitFor('the demo (and so its shell) to exit', async () => !(await running(shPid)), 30_000);
    } finally {
      // A failed run leaves nothing behind: the shell's children, then the shell.
      if (await running(shPid)) spawnSync('pkill', ['-KILL', '-P', String(shPid)]);
      if (await running(shPid)) process.kill(shPid, 'SIGKILL');
    }
    assert.ok(await free('127.0.0.1', port), 'the listener port was released');
  });

  test('the demo exits when its parent dies, releasing every port', async () => {
    const { port, adminPort, simPort, args } = await demoArgs();
    // A parent like `npm start`'s shell: it starts the demo, reports its pid, and is then killed
    // with no chance to pass a signal on.
    const parent = spawn(
      process.execPath,
      ['-e', `const c = require('node:child_process').spawn(process.execPath, ${JSON.stringify([BIN, ...args])}, { stdio: ['ignore', 'ignore', 'inherit'] }); console.log(c.pid); setInterval(() => {}, 1000);`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const stderr = collect(parent);
    let stdout = '';
    parent.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    let demoPid = 0;
    try {
      await waitFor('the demo to start', () => stderr().includes('Press Ctrl-C') || parent.exitCode !== null, 30_000);
      demoPid = Number(stdout.trim());
      assert.ok(demoPid > 0, `the parent reported the demo's pid: ${stdout}`);
      assert.equal((await chat(port)).status, 200);
    } finally {
      parent.kill('SIGKILL');
    }
    await waitFor('the demo to exit', async () => !(await running(demoPid)), 30_000);
    const ports: Array<[string, number]> = [['127.0.0.1', port], ['127.0.0.1', adminPort], ...SIM_HOSTS.map((h): [string, number] => [h, simPort])];
    for (const [host, p] of ports) assert.ok(await free(host, p), `${host}:${p} was released`);
  });
});
