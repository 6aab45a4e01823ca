import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { configDir, gatewayYaml, podYaml, poolYaml, routeYaml } from '../support/config.js';
import { startFleet } from '../support/fleet.js';
import { startGatewayProcess, type GatewayProcess } from '../support/gateway-process.js';
import { freePort } from '../support/ports.js';

const PROMPT = 'one two three four five six seven eight nine ten eleven twelve';

describe('streaming, client aborts and hot reload', { timeout: 60_000 }, () => {
  let fleet: Awaited<ReturnType<typeof startFleet>>;
  let gateway: GatewayProcess;
  let cfg: Awaited<ReturnType<typeof configDir>>;
  let base: string;
  let port: number;

  const config = (pool: string): string =>
    gatewayYaml(port) +
    poolYaml('a', 'a', fleet.port) +
    poolYaml('b', 'b', fleet.port) +
    podYaml('a-0', 'a', '127.0.0.31') +
    podYaml('b-0', 'b', '127.0.0.32') +
    routeYaml('all', [{ pool, weight: 1 }]);

  before(async () => {
    // Real time and 40 ms per engine step: a 16-token answer streams for about 0.7 s, so a test can
    // read the first chunk, reload or disconnect while the server is still generating.
    const slow = { timeScale: 1, overrides: { decodeFloorMs: 40 } };
    fleet = await startFleet([
      { host: '127.0.0.31', name: 'a-0', ...slow },
      { host: '127.0.0.32', name: 'b-0', ...slow },
    ]);
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    cfg = await configDir(config('a'));
    gateway = await startGatewayProcess(['-f', cfg.dir]);
  });

  after(async () => {
    await gateway?.stop();
    await fleet?.close();
    await cfg?.remove();
  });

  const stream = (signal?: AbortSignal): Promise<Response> =>
    fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'mymodel',
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: 16,
        ignore_eos: true,
        messages: [{ role: 'user', content: PROMPT }],
      }),
      ...(signal === undefined ? {} : { signal }),
    });

  async function readAll(r: Response): Promise<string> {
    return new TextDecoder().decode(await r.arrayBuffer());
  }

  test('SSE chunks arrive while the model server is still generating', async () => {
    const r = await stream();
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    assert.equal(first.done, false);
    assert.match(new TextDecoder().decode(first.value), /^data: /);
    // The first chunk is here and the server still has the request in flight: not buffered.
    assert.equal(fleet.servers.get('a-0')?.stats().inFlight, 1);
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    assert.ok(rest.trimEnd().endsWith('data: [DONE]'));
    assert.equal(fleet.servers.get('a-0')?.stats().inFlight, 0);
  });

  test('a client that disconnects aborts the upstream request', async () => {
    const before = fleet.servers.get('a-0')?.stats().aborted ?? 0;
    const controller = new AbortController();
    const r = await stream(controller.signal);
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    controller.abort();
    // The abort travels client → gateway → model server; wait for the server to see it.
    for (let i = 0; i < 100 && (fleet.servers.get('a-0')?.stats().aborted ?? 0) === before; i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(fleet.servers.get('a-0')?.stats().aborted, before + 1);
    const line = await gateway.waitForLog((l) => l.msg === 'Request Handled' && l['status'] === 499);
    assert.equal(line['code'], 'client_gone');
  });

  test('a valid reload swaps routing without cutting a stream in flight', async () => {
    const r = await stream();
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = decoder.decode((await reader.read()).value);
    assert.equal(r.headers.get('x-sim-pod'), 'a-0');

    const reloadsBefore = gateway.logs.filter((l) => l.msg === 'config reloaded').length;
    await cfg.write(config('b'));
    await gateway.waitForLog((l) => l.msg === 'config reloaded' && gateway.logs.filter((x) => x.msg === 'config reloaded').length > reloadsBefore);

    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    const events = text.split('\n\n').filter((e) => e.startsWith('data: '));
    assert.equal(events.at(-1), 'data: [DONE]');
    const usage = JSON.parse((events.at(-2) ?? '').slice(6)) as { usage: { completion_tokens: number } };
    assert.equal(usage.usage.completion_tokens, 16, 'the stream that started before the reload finished whole');

    const after = await stream();
    assert.equal(after.headers.get('x-sim-pod'), 'b-0', 'new requests follow the new route');
    await readAll(after);
  });

  test('a file truncated and written later (as many tools save) is held: no request fails meanwhile', async () => {
    const held = (l: { msg?: string }): boolean => l.msg === 'config change would remove serving resources or shorten a file that serves; waiting for the files to settle before applying it';
    const heldBefore = gateway.logs.filter(held).length;
    const reloadsBefore = gateway.logs.filter((l) => l.msg === 'config reloaded').length;
    const failures: string[] = [];
    let sent = 0;
    let writing = true;
    // Two clients sending short requests for as long as the rewrite takes.
    const client = async (): Promise<void> => {
      while (writing) {
        sent++;
        try {
          const r = await fetch(`${base}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'mymodel', max_tokens: 1, messages: [{ role: 'user', content: 'hi' }] }),
          });
          const body = await r.text();
          if (r.status !== 200) failures.push(`${r.status} ${body}`);
        } catch (err) {
          // The listener closed (the empty file applied): the request never reached a gateway.
          failures.push(String((err as Error).cause ?? err));
          await new Promise((res) => setTimeout(res, 20));
        }
      }
    };
    const clients = [client(), client()];
    try {
      // O_TRUNC now, the content later: the gateway sees an empty file and must hold it.
      const fh = await open(cfg.file, 'w');
      await gateway.waitForLog((l) => held(l) && gateway.logs.filter(held).length > heldBefore);
      const during = sent;
      await fh.write(config('b'));
      await fh.close();
      await gateway.waitForLog((l) => l.msg === 'config reloaded' && gateway.logs.filter((x) => x.msg === 'config reloaded').length > reloadsBefore);
      // Requests kept flowing across the whole window, not only before it.
      for (let i = 0; i < 500 && sent <= during + 2; i++) await new Promise((res) => setTimeout(res, 10));
    } finally {
      writing = false;
      await Promise.all(clients);
    }
    assert.deepEqual(failures, [], 'no request failed while the file was empty');
    assert.ok(sent > 0);
  });

  test('an invalid change is rejected with its reasons and the last good config keeps serving', async () => {
    const broken = config('b').replace('targetPortNumber', 'targetPortNumbr');
    await cfg.write(broken);
    const error = await gateway.waitForLog((l) => l.msg === 'config error' && String(l['problem']).startsWith('InferencePool/'));
    assert.match(String(error['problem']), /^InferencePool\/[ab]: spec\./);
    await gateway.waitForLog((l) => l.msg === 'config change rejected; the last good configuration keeps serving');
    const r = await stream();
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-sim-pod'), 'b-0');
    assert.ok((await readAll(r)).trimEnd().endsWith('data: [DONE]'));
    const ready = await fetch(`http://127.0.0.1:${gateway.adminPort}/readyz`);
    assert.equal(ready.status, 200);
  });
});
