import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { SEED_002_VARIANTS, type Seed002Variant } from '../../src/cli/demo-seed-002.js';
import { BIN } from '../support/cli.js';
import { freePort, freePortOnAll } from '../support/ports.js';
import { waitFor } from '../support/smart.js';

/*
 * `infergate demo --example <variant>` for each of seed 002's variants (examples/seed-002/), as a
 * reader follows the page: the seed's round1/round2 bodies sent as files with curl's `-d @file`,
 * then the `Request Handled` lines read for the pod each went to. Under PREFIX_CACHE both turns
 * of the conversation land on one pod; a multi-node pool's endpoints are its leaders only.
 */

const ROUND = (n: 1 | 2): string => fileURLToPath(new URL(`../../../examples/seed-002/round${n}.json`, import.meta.url));
/** Addresses of this file's simulated servers (no other test uses 127.0.18.0/24). */
const HOSTS = ['127.0.18.2', '127.0.18.3', '127.0.18.4', '127.0.18.5'];

interface Handled {
  msg: string;
  pod?: string;
  status?: number;
  cachedTokens?: number;
}

interface Endpoints {
  pools: Array<{ pool: string; policy: string; endpoints: Array<{ name: string; role: string; metrics: unknown }> }>;
}

/** Request Handled records among the JSON log lines written so far. */
function handled(stdout: string): Handled[] {
  return stdout
    .split('\n')
    .filter((l) => l.includes('"Request Handled"'))
    .map((l) => JSON.parse(l) as Handled);
}

function collect(stream: NodeJS.ReadableStream | null): () => string {
  let text = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (c: string) => (text += c));
  return () => text;
}

/** The text of a streamed chat answer (its SSE `delta.content`s joined). */
function streamedContent(sse: string): string {
  let out = '';
  for (const event of sse.split('\n\n')) {
    if (!event.startsWith('data: {')) continue;
    const chunk = JSON.parse(event.slice('data: '.length)) as { choices: Array<{ delta?: { content?: string } }> };
    out += chunk.choices[0]?.delta?.content ?? '';
  }
  return out;
}

async function runVariant(variant: Seed002Variant): Promise<void> {
  const pd = variant.endsWith('-pd');
  const multinode = variant.endsWith('-multinode');
  const hosts = HOSTS.slice(0, pd ? 4 : 2);
  const [port, adminPort, simPort] = [await freePort(), await freePort(), await freePortOnAll(hosts)];
  const args = ['demo', '--example', variant, '--port', String(port), '--admin-port', String(adminPort), '--sim-port', String(simPort), '--sim-hosts', hosts.join(',')];
  if (pd) args.push('--bootstrap-port', String(await freePortOnAll(hosts.slice(0, 2))));
  const child: ChildProcess = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  try {
    await waitFor('the demo to start', () => stderr().includes('Press Ctrl-C') || child.exitCode !== null, 30_000);
    assert.equal(child.exitCode, null, stderr());
    // The banner shows the seed's check with the bodies as files.
    assert.ok(stderr().includes(`-d @${ROUND(1)}`), stderr());

    let view: Endpoints | undefined;
    await waitFor(
      'every endpoint scraped',
      async () => {
        view = (await (await fetch(`http://127.0.0.1:${adminPort}/debug/endpoints`)).json()) as Endpoints;
        return view.pools.length > 0 && view.pools.every((p) => p.endpoints.length > 0 && p.endpoints.every((e) => e.metrics !== null));
      },
      30_000,
    );
    const pool = view?.pools.find((p) => p.pool.endsWith('qwen-inference-pool'));
    assert.ok(pool !== undefined, JSON.stringify(view));
    const names = pool.endpoints.map((e) => e.name).sort();
    if (pd) {
      assert.equal(pool.policy, 'PD');
      assert.deepEqual(names, ['qwen-decode-0', 'qwen-decode-1', 'qwen-prefill-0', 'qwen-prefill-1']);
    } else {
      assert.equal(pool.policy, variant.startsWith('prefix-') ? 'PREFIX_CACHE' : 'DEFAULT');
      // Multi-node: the selector's `role: leader` leaves the workers (qwen-0-1, qwen-1-1) out.
      assert.deepEqual(names, ['qwen-0', 'qwen-1'], multinode ? 'only the leaders are endpoints' : undefined);
    }

    const answers: string[] = [];
    for (const n of [1, 2] as const) {
      const r = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: await readFile(ROUND(n)) });
      const text = await r.text();
      assert.equal(r.status, 200, text);
      if (pd) assert.match(r.headers.get('x-sim-pod') ?? '', /^qwen-decode-[01]$/);
      answers.push(streamedContent(text));
    }
    // The servers stand for the seed's model: the answer says so (round 2 asks for 3 tokens).
    assert.match(answers[0] ?? '', /^ I am Qwen3-32B\. /);
    assert.equal(answers[1], ' I am Qwen');

    await waitFor('two Request Handled lines', () => handled(stdout()).length >= 2, 30_000);
    const [first, second] = handled(stdout());
    assert.equal(first?.status, 200);
    assert.equal(second?.status, 200);
    if (variant.startsWith('prefix-')) {
      assert.equal(second?.pod, first?.pod, 'PREFIX_CACHE sends both turns of the conversation to one pod');
      assert.ok((second?.cachedTokens ?? 0) > 0, `round 2 reuses round 1's KV: ${JSON.stringify(second)}`);
    }
  } finally {
    child.kill('SIGINT');
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 0, stderr());
  }
}

describe("infergate demo --example <seed 002 variant>: the page's round1/round2 check", { timeout: 600_000 }, () => {
  for (const variant of SEED_002_VARIANTS) {
    test(variant, { timeout: 120_000 }, () => runVariant(variant));
  }
});
