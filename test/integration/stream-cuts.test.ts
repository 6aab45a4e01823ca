import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { jsonBody, startFakeEnv, type FakeEnv, type SeenRequest } from '../support/fake-engines.js';

/*
 * A model server that cuts its answer at byte k, for every k of a short stream: whatever the cut,
 * the client gets complete SSE events only, then one error event and [DONE].
 */

const EOLS: Readonly<Record<string, string>> = { lf: '\n', crlf: '\r\n', cr: '\r' };

/** A short valid stream of `kind` (chat or completions), its events separated with `eol`, with usage when asked. */
function streamBytes(kind: string, eol: string, usage: boolean): Buffer {
  const chunk = (piece: string): string =>
    kind === 'chat'
      ? JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content: piece }, finish_reason: null }] })
      : JSON.stringify({ id: 'c', object: 'text_completion', model: 'm', choices: [{ index: 0, text: piece, finish_reason: null }] });
  const events = [chunk('Hé'), chunk('llo')];
  if (usage) events.push(JSON.stringify({ id: 'c', object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', model: 'm', choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }));
  events.push('[DONE]');
  return Buffer.from(events.map((e) => `data: ${e}${eol}${eol}`).join(''), 'utf8');
}

/** Sends the stream the request asks for up to byte `x-cut-at`, then drops the connection. */
function cutter(req: IncomingMessage, res: ServerResponse, seen: SeenRequest): void {
  const kind = String(req.headers['x-kind']);
  const eol = EOLS[String(req.headers['x-eol'])] ?? '\n';
  const body = streamBytes(kind, eol, jsonBody(seen).stream_options?.include_usage === true);
  const k = Number(req.headers['x-cut-at']);
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.flushHeaders();
  const cut = (): void => {
    res.socket?.destroy();
  };
  if (k === 0) setImmediate(cut);
  else res.write(body.subarray(0, k), () => setImmediate(cut));
}

/** A non-streamed answer cut after its headers and part of its body. */
function cutJson(_req: IncomingMessage, res: ServerResponse): void {
  const text = JSON.stringify({ id: 'c', object: 'chat.completion', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello' }, finish_reason: 'stop' }] });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.write(text.slice(0, 20), () => setImmediate(() => res.socket?.destroy()));
}

/**
 * One good event, then an event that never ends: 1 MiB writes of `data: xxx…` without a line
 * break, for as long as the gateway reads them (at most 64 MiB).
 */
function endless(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content: 'Hi' }, finish_reason: null }] })}\n\ndata: `);
  const piece = Buffer.alloc(1024 * 1024, 'x');
  let sent = 0;
  const more = (): void => {
    while (sent < 64 && !res.destroyed) {
      sent++;
      if (!res.write(piece)) return void res.once('drain', more);
    }
    res.end();
  };
  more();
}

/** Drops the connection once the request is read, before any answer. */
/** A non-streamed answer's head, flushed, then the connection dropped before any body byte. */
function headOnly(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
  res.flushHeaders();
  setTimeout(() => res.socket?.destroy(), 20);
}

function dropEarly(_req: IncomingMessage, res: ServerResponse): void {
  res.socket?.destroy();
}

/** The events of an SSE body, as the spec splits them (any of CRLF, LF, CR ends a line), and what is left after the last one. */
function sseEvents(text: string): { events: string[]; rest: string } {
  const events: string[] = [];
  let lines: string[] = [];
  let rest = '';
  const re = /([^\r\n]*)(\r\n|\n|\r)/gy;
  let at = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    at = re.lastIndex;
    if (m[1] === '') {
      if (lines.length > 0) events.push(lines.join('\n'));
      lines = [];
    } else lines.push(m[1] ?? '');
  }
  rest = lines.join('\n') + text.slice(at);
  return { events, rest };
}

/** Requests for `renamed` go to the server as `m`; answers name `renamed` again (an InferenceModelRewrite's rule). */
const RENAMED = `---
apiVersion: inference.networking.x-k8s.io/v1alpha2
kind: InferenceModelRewrite
metadata: {name: renamed}
spec:
  poolRef: {name: fake}
  rules:
  - matches: [{model: {value: renamed}}]
    targets: [{modelRewrite: m, weight: 1}]
`;

describe('a stream the server cuts at any byte ends well-formed', { timeout: 300_000 }, () => {
  let env: FakeEnv;

  before(async () => {
    const modes: Readonly<Record<string, (req: IncomingMessage, res: ServerResponse, seen: SeenRequest) => void>> = { json: cutJson, drop: dropEarly, head: headOnly, endless };
    // `renamed` is served as `m`: the answer's model name is put back for the client, on bytes that
    // may be cut anywhere too.
    env = await startFakeEnv({ '127.0.6.80': (req, res, seen) => (modes[String(req.headers['x-mode'])] ?? cutter)(req, res, seen) }, { 'cut-0': '127.0.6.80' }, { extraYaml: RENAMED });
  });

  after(async () => {
    await env?.close();
  });

  for (const [kind, model] of [['chat', 'm'], ['completions', 'm'], ['chat', 'renamed']] as const) {
    for (const usage of [false, true]) {
      test(`${kind}${model === 'm' ? '' : ' (model renamed in the answer)'}, include_usage ${usage ? 'on' : 'off'}: every cut gives complete events, then one error event and [DONE]`, async () => {
        for (const [eolName, eol] of Object.entries(EOLS)) {
          // The server's stream is always asked for usage (the gateway injects it for vLLM).
          const length = streamBytes(kind, eol, true).length;
          const ks = Array.from({ length }, (_, k) => k);
          const check = async (k: number): Promise<void> => {
            const payload = kind === 'chat' ? { model, stream: true, messages: [{ role: 'user', content: 'hi' }] } : { model, stream: true, prompt: 'hi' };
            if (usage) Object.assign(payload, { stream_options: { include_usage: true } });
            const r = await fetch(`${env.base}/v1/${kind === 'chat' ? 'chat/completions' : 'completions'}`, {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'x-kind': kind, 'x-eol': eolName, 'x-cut-at': String(k) },
              body: JSON.stringify(payload),
            });
            const where = `${kind} model=${model} usage=${usage} eol=${eolName} k=${k}`;
            assert.equal(r.status, 200, where);
            const text = await r.text();
            const { events, rest } = sseEvents(text);
            assert.equal(rest, '', `${where}: no partial event: ${JSON.stringify(text)}`);
            assert.equal(events.at(-1), 'data: [DONE]', `${where}: ends with [DONE]: ${JSON.stringify(text)}`);
            const errors = events.filter((e) => e.includes('"error"'));
            // A cut after the server's [DONE] was complete (a CRLF stream cut before its last LF):
            // the client's answer is whole; an error event after [DONE] would be read by no one.
            const whole = sseEvents(streamBytes(kind, eol, true).subarray(0, k).toString('utf8')).events.includes('data: [DONE]');
            assert.equal(errors.length, whole ? 0 : 1, `${where}: ${whole ? 'no' : 'one'} error event: ${JSON.stringify(text)}`);
            if (!whole) {
              assert.equal(events.at(-2), errors[0], where);
              assert.equal((JSON.parse((errors[0] ?? '').slice(6)) as { error: { code: string } }).error.code, 'upstream_reset', where);
            }
            for (const e of events.slice(0, whole ? -1 : -2)) {
              assert.ok(e.startsWith('data: '), `${where}: ${e}`);
              const obj = JSON.parse(e.slice(6)) as { choices?: unknown[]; usage?: unknown; model?: string };
              assert.equal(obj.model, model, `${where}: the client's model name`);
              if (!usage) assert.equal(obj.usage, undefined, `${where}: the usage the client did not ask for is not sent`);
            }
            assert.equal(events.filter((e) => e === 'data: [DONE]').length, 1, `${where}: one [DONE]`);
          };
          // A few at a time: the cases are independent.
          for (let i = 0; i < ks.length; i += 8) await Promise.all(ks.slice(i, i + 8).map(check));
        }
      });
    }
  }

  const postJson = (mode: string): Promise<Response> =>
    fetch(`${env.base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-mode': mode }, body: JSON.stringify({ model: 'm', messages: [] }) });

  test('a non-streamed answer cut after its headers were relayed: the client sees the connection reset, never a short body as if whole', async () => {
    const r = await postJson('json');
    assert.equal(r.status, 200);
    await assert.rejects(r.text());
  });

  test('an event that never ends: the client gets the complete events, then an error event (the gateway holds at most 16 MiB of it)', async () => {
    const r = await fetch(`${env.base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-mode': 'endless' }, body: JSON.stringify({ model: 'm', stream: true, messages: [] }) });
    assert.equal(r.status, 200);
    const text = await r.text();
    const { events, rest } = sseEvents(text);
    assert.equal(rest, '');
    assert.equal(events.length, 3, text.slice(0, 500));
    assert.match(events[0] ?? '', /"content":"Hi"/);
    assert.equal((JSON.parse((events[1] ?? '').slice(6)) as { error: { code: string } }).error.code, 'upstream_event_too_large');
    assert.equal(events[2], 'data: [DONE]');
  });

  test('a non-streamed answer cut after its head but before any body byte: 502 upstream_reset as JSON (nothing reached the client)', async () => {
    const r = await postJson('head');
    assert.equal(r.status, 502);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'upstream_reset');
  });

  test('an answer cut before its headers: 502 upstream_reset as JSON', async () => {
    const r = await postJson('drop');
    assert.equal(r.status, 502);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'upstream_reset');
  });
});
