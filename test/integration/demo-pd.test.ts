import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { BIN } from '../support/cli.js';
import { freePort, freePortOnAll } from '../support/ports.js';
import { waitFor } from '../support/smart.js';

/*
 * `infergate demo --example pd`: seed 002's SGLang prefill/decode pool (examples/pd/) on
 * simulated servers, as a real process on non-default ports and addresses.
 */

const SIM_HOSTS = ['127.0.6.90', '127.0.6.91', '127.0.6.92', '127.0.6.93'];
const QWEN = '/models/Qwen3-32B';
/** The gateway's listener address: --address moves it off 127.0.0.1. */
const LISTENER = '127.0.6.94';

function collect(child: ChildProcess): () => string {
  let text = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (text += c));
  return () => text;
}

interface Endpoints {
  pools: Array<{ pool: string; policy: string; endpoints: Array<{ name: string; role: string; healthy: boolean; metrics: unknown }> }>;
}

async function chat(port: number, stream: boolean): Promise<Response> {
  return fetch(`http://${LISTENER}:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: QWEN, max_tokens: 6, stream, messages: [{ role: 'user', content: `Who are you? (${stream ? 'streamed' : 'whole'})` }] }),
  });
}

describe('infergate demo --example pd', { timeout: 90_000 }, () => {
  test('serves seed 002’s PD pool: two prefill and two decode endpoints, answers from a decode pod, streamed and not', async () => {
    const [port, adminPort, simPort] = [await freePort(LISTENER), await freePort(), await freePort()];
    // Free on both prefill hosts: another run of this test may be using its own.
    const bootstrap = await freePortOnAll(SIM_HOSTS.slice(0, 2));
    const args = ['demo', '--example', 'pd', '--address', LISTENER, '--port', String(port), '--admin-port', String(adminPort), '--sim-port', String(simPort), '--sim-hosts', SIM_HOSTS.join(','), '--bootstrap-port', String(bootstrap), '--log-level', 'warn'];
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr = collect(child);
    try {
      await waitFor('the demo to start', () => stderr().includes('Press Ctrl-C') || child.exitCode !== null, 30_000);
      assert.match(stderr(), new RegExp(`curl -si http://127\\.0\\.6\\.94:${port}/v1/chat/completions`));
      assert.match(stderr(), new RegExp(`curl -s http://127\\.0\\.0\\.1:${adminPort}/debug/endpoints`));
      assert.match(stderr(), new RegExp(`qwen-prefill-0 http://127\\.0\\.6\\.90:\\d+ \\(prefill, bootstrap 127\\.0\\.6\\.90:${bootstrap}\\)`));

      // The gateway sees the example's four pods with their RoleBasedGroup roles once scraped.
      let view: Endpoints | undefined;
      await waitFor(
        'every endpoint scraped',
        async () => {
          view = (await (await fetch(`http://127.0.0.1:${adminPort}/debug/endpoints`)).json()) as Endpoints;
          return view.pools.every((p) => p.endpoints.every((e) => e.metrics !== null));
        },
        30_000,
      );
      const pool = view?.pools.find((p) => p.pool.endsWith('qwen-inference-pool'));
      assert.ok(pool !== undefined, JSON.stringify(view));
      assert.equal(pool.policy, 'PD');
      assert.deepEqual(pool.endpoints.map((e) => [e.name, e.role]).sort(), [
        ['qwen-decode-0', 'decode'],
        ['qwen-decode-1', 'decode'],
        ['qwen-prefill-0', 'prefill'],
        ['qwen-prefill-1', 'prefill'],
      ]);

      for (const stream of [false, true]) {
        const r = await chat(port, stream);
        const text = await r.text();
        assert.equal(r.status, 200, text);
        assert.match(r.headers.get('x-sim-pod') ?? '', /^qwen-decode-[01]$/, 'the decode pod answers');
        assert.equal(r.headers.get('x-sim-runtime'), 'sglang');
        if (stream) {
          assert.match(text, /^data: \{.*"chat\.completion\.chunk"/);
          assert.match(text, /data: \[DONE\]\n\n$/);
        } else {
          const body = JSON.parse(text) as { choices: Array<{ message: { content: string } }>; usage: { completion_tokens: number } };
          // The servers stand for the seed's model and say so.
          assert.match(body.choices[0]?.message.content ?? '', /^ I am Qwen3-32B\. /);
          assert.equal(body.usage.completion_tokens, 6);
          // Only PD legs carry the transfer time: the KV came from a prefill pod.
          assert.match(r.headers.get('x-sim-kv-transfer-ms') ?? '', /^\d+(\.\d+)?$/, 'a KV transfer happened');
        }
      }
    } finally {
      child.kill('SIGINT');
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0, stderr());
    }
  });

  test('--sim-hosts must name the example’s four pods', async () => {
    const child = spawn(process.execPath, [BIN, 'demo', '--example', 'pd', '--sim-hosts', '127.0.6.94,127.0.6.95,127.0.6.96'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr = collect(child);
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 2);
    assert.match(stderr(), /--sim-hosts needs 4 addresses separated by commas, for qwen-prefill-0, qwen-prefill-1, qwen-decode-0, qwen-decode-1/);
  });
});
