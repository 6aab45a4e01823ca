import assert from 'node:assert/strict';
/** Shared helpers of the simulator's HTTP tests (not a test file itself). */
import { startSimServer, type RunningSimServer, type SimServerOptions } from '../../src/sim/index.js';

/** A server on 127.0.0.1 with an ephemeral port, the tiny profile, modelled time 20× real time. */
export function tinyServer(options: Partial<SimServerOptions> = {}): Promise<RunningSimServer> {
  return startSimServer({ host: '127.0.0.1', port: 0, name: 'sim-test', profile: 'tiny', timeScale: 20, ...options });
}

export function post(server: { url: string }, path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(signal === undefined ? {} : { signal }),
  });
}

/** The `data:` payloads of an SSE body, in order (`[DONE]` included as the string). */
export function sseEvents(text: string): string[] {
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
    .map((e) => e.slice('data: '.length));
}

export async function scrape(server: { url: string }): Promise<string> {
  const r = await fetch(`${server.url}/metrics`);
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return r.text();
}

/** Polls `probe` (every few ms) until it returns a value; fails after `tries` attempts. */
export async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, tries = 400): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`gave up waiting for ${what}`);
}

export { filler } from './engine/helpers.js';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens: number } | null;
}

export interface Completion {
  id: string;
  object: string;
  model: string;
  choices: Array<{ index: number; text?: string; message?: { role: string; content: string }; finish_reason: string }>;
  usage: Usage;
}

/**
 * A decode leg whose KV never came: its engine allocated the prompt's blocks (then fetched the
 * KV), ran nothing, and freed them again.
 */
export function assertDecodeDropped(decode: RunningSimServer): void {
  const s = decode.engine.stats();
  assert.ok(s.prefixQueriesTokens > 0, 'the decode engine allocated the prompt’s blocks first');
  assert.deepEqual(
    { generated: s.generationTokensTotal, prefilled: s.prefillTokensTotal, usedBlocks: s.usedBlocks, awaitingKv: s.awaitingKv, aborts: s.requestSuccessTotal.abort },
    { generated: 0, prefilled: 0, usedBlocks: 0, awaitingKv: 0, aborts: 1 },
    'it ran nothing and freed the blocks',
  );
}
