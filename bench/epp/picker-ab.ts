import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { answers, cpuSeconds, startChild, type Child } from '../../src/bench/suite/processes.js';
import { freePort, freePortOnAll } from '../../src/bench/suite/ports.js';
import { fleetHosts, startFleet, type Context } from '../../src/bench/suite/systems.js';
import { headerMap } from '../../src/extproc/headers.js';
import type { ProcessingRequest, ProcessingResponse } from '../../src/extproc/messages.js';
import { bodyMessages, EnvoyExtProcClient, envoyRequestHeaders, metadataContext, type ExtProcCall } from '../../src/extproc/envoy-standin.js';

/*
 * The endpoint picker alone, A/B: `node dist/bench/epp/picker-ab.js ROOT [ROOT...]` (each root a
 * checkout with dist/ built). This process plays Envoy's ext_proc filter against each root's
 * `infergate epp` (standalone mode, TLS with a self-signed certificate as upstream's Envoy config
 * has it) over one gRPC connection, with the messages Envoy sends (request headers, the body in
 * 16 KiB pieces, the end on the last; response headers with the served endpoint; the answer's
 * body as the upstream delivers it; an empty end-of-stream message, as after a chunked answer).
 * No HTTP data path and no model server traffic run beside it (one simulated engine only answers
 * the picker's metric scrapes), so the picker's CPU per request is measured with less of the
 * machine's noise than the whole-system benchmark (epp-ab.ts) can. Shapes (SHAPES):
 *
 * - request: a 64-token chat request, its 16-token SSE answer in one message: the fixed cost.
 * - chunks: the same request, its answer as 128 SSE events, one message each, 2 ms apart (a
 *   model server streaming tokens, each read and sent on by Envoy on its own): (chunks −
 *   request) / 112 is the cost per streamed chunk.
 * - burst: the same 128 events written all at once in 16 KiB messages (a zero-latency engine).
 * - large: a 200 KB prompt in 16 KiB messages, a short answer.
 *
 * The roots' pickers run side by side, each sent the shape's load at the same time, so the
 * machine's other work weighs on them alike. ROUNDS (default 3) rounds; a fixed number of
 * requests per picker after a warm-up; each picker's CPU from /proc; one JSON line per picker
 * and run. With PROF_DIR the pickers run under `--cpu-prof`. INSECURE=1 runs them plaintext
 * (`--insecure`), to tell TLS's share from the rest; NODE_FLAGS (space-separated) are passed to
 * each picker's node.
 */

const roots = process.argv.slice(2);
if (roots.length < 1) {
  process.stderr.write('usage: node dist/bench/epp/picker-ab.js ROOT [ROOT...]\n');
  process.exit(2);
}
const builds = roots.map((root) => ({ name: basename(root), root }));
const rounds = Number(process.env['ROUNDS'] ?? 3);
const profDir = process.env['PROF_DIR'] || undefined;
const scale = Number(process.env['SCALE'] ?? 1);
const insecure = process.env['INSECURE'] === '1';
const nodeFlags = (process.env['NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');

const EVENTS = 128;
/** Time between two events of a paced answer (a model server's inter-token latency is ~10-50 ms; shorter keeps runs short). */
const PACE_MS = 2;
interface Shape {
  readonly name: string;
  readonly promptChars: number;
  /** SSE events in the answer. */
  readonly events: number;
  /** How the answer's body is sent: whole (one message), one event per message awaiting each, or all at once in 16 KiB messages. */
  readonly delivery: 'whole' | 'paced' | 'burst';
  readonly concurrency: number;
  readonly requests: number;
}
const shapes: Shape[] = (
  [
    { name: 'request', promptChars: 300, events: 16, delivery: 'whole', concurrency: 32, requests: 3000 },
    { name: 'chunks', promptChars: 300, events: EVENTS, delivery: 'paced', concurrency: 16, requests: 400 },
    { name: 'burst', promptChars: 300, events: 512, delivery: 'burst', concurrency: 16, requests: 600 },
    { name: 'large', promptChars: 200_000, events: 16, delivery: 'whole', concurrency: 20, requests: 400 },
  ] satisfies Shape[]
)
  .filter((s) => (process.env['SHAPES'] ?? 'request,chunks,large').split(',').includes(s.name))
  .map((s) => ({ ...s, requests: Math.max(1, Math.round(s.requests * scale)) }));

const work = join(tmpdir(), `infergate-picker-ab-${process.pid}`);
await mkdir(join(work, 'epp'), { recursive: true });
const ctx: Context = { work, log: () => undefined, nginx: undefined, seed: 1, frontPort: await freePort(), adminPort: await freePort(), simPort: await freePortOnAll(fleetHosts()), bootstrapPort: await freePortOnAll(fleetHosts()) };
const fleet = await startFleet({ replicas: 1, profile: 'zero' }, ctx);
await writeFile(join(work, 'epp', 'pods.yaml'), fleet.podsYaml);
async function coreReady(admin: string): Promise<boolean> {
  if (!(await answers(`${admin}/readyz`))) return false;
  const view = (await (await fetch(`${admin}/debug/endpoints`)).json()) as { pools: Array<{ endpoints: Array<{ metrics: unknown }> }> };
  return view.pools.length > 0 && view.pools.every((p) => p.endpoints.length > 0 && p.endpoints.every((e) => e.metrics !== null));
}

async function startPicker(root: string, prof: readonly string[]): Promise<{ child: Child; grpcPort: number }> {
  const [grpc, health, admin] = [await freePort(), await freePort(), await freePort()];
  const args = [...nodeFlags, ...prof, join(root, 'bin/infergate.js'), 'epp', ...(insecure ? ['--insecure'] : []), '--exit-with-parent', '-f', join(work, 'epp'), '--endpoint-selector', 'app=bench', '--endpoint-target-ports', String(fleet.simPort), '--address', '127.0.0.1', '--grpc-port', String(grpc), '--grpc-health-port', String(health), '--metrics-port', String(admin)];
  // A picker makes its certificate and loads at start, slowly on a loaded machine.
  return { child: await startChild('epp', process.execPath, args, () => coreReady(`http://127.0.0.1:${admin}`), 180_000), grpcPort: grpc };
}

/** A chat completion request as a client sends it (streamed, usage asked by the gateway itself). */
function requestBody(promptChars: number, n: number): Buffer {
  return Buffer.from(JSON.stringify({ model: 'mymodel', messages: [{ role: 'user', content: `${n} ${'lorem ipsum '.repeat(Math.ceil(promptChars / 12))}`.slice(0, promptChars) }], stream: true, max_tokens: 512 }));
}

/** The SSE events of a vLLM chat answer: `events` content deltas, the usage event, `[DONE]`. */
function sseEvents(events: number): Buffer[] {
  const head = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"mymodel","choices":';
  const out: Buffer[] = [];
  for (let i = 0; i < events; i++) out.push(Buffer.from(`data: ${head}[{"index":0,"delta":{"content":" tok${i}"},"logprobs":null,"finish_reason":${i === events - 1 ? '"length"' : 'null'}}]}\n\n`));
  out.push(Buffer.from(`data: ${head}[],"usage":{"prompt_tokens":64,"total_tokens":${64 + events},"completion_tokens":${events}}}\n\n`));
  out.push(Buffer.from('data: [DONE]\n\n'));
  return out;
}

const RESPONSE_HEADERS = { ':status': '200', 'content-type': 'text/event-stream; charset=utf-8', date: 'Mon, 07 Dec 2026 12:00:00 GMT', server: 'uvicorn', 'x-request-id': '' };

/** Reads answers until a streamed body piece of `kind` with end_of_stream; the bytes that came back. */
async function readBody(call: ExtProcCall, kind: 'request_body' | 'response_body', until: (bytes: number, eos: boolean) => boolean): Promise<number> {
  let bytes = 0;
  for (;;) {
    const m: ProcessingResponse = await call.next(120_000);
    if (m.immediate_response !== undefined) throw new Error(`refused: ${m.immediate_response.status?.code} ${Buffer.from(m.immediate_response.body ?? []).toString()}`);
    const s = m[kind]?.response?.body_mutation?.streamed_response;
    if (s === undefined) throw new Error(`expected a streamed ${kind}, got ${m.response ?? Object.keys(m).join(',')}`);
    bytes += s.body?.length ?? 0;
    if (until(bytes, s.end_of_stream === true)) return bytes;
  }
}

/** One HTTP request through the picker, as Envoy's filter exchanges it in FULL_DUPLEX_STREAMED. */
async function exchange(client: EnvoyExtProcClient, shape: Shape, n: number, answer: readonly Buffer[]): Promise<void> {
  const call = client.open();
  const body = requestBody(shape.promptChars, n);
  const headers = envoyRequestHeaders('POST', '/v1/chat/completions', { 'content-type': 'application/json', 'content-length': String(body.length), 'user-agent': 'bench' });
  call.send({ request_headers: { headers: headerMap(headers) }, protocol_config: client.protocolConfig() });
  for (const m of bodyMessages('request_body', body, 16 * 1024)) call.send(m);
  const decision = await call.next(120_000);
  if (decision.immediate_response !== undefined) throw new Error(`refused: ${decision.immediate_response.status?.code}`);
  const destination = decision.request_headers?.response?.header_mutation?.set_headers?.find((h) => h.header?.key === 'x-gateway-destination-endpoint')?.header?.raw_value;
  await readBody(call, 'request_body', (_b, eos) => eos);
  const served = Buffer.from(destination ?? []).toString('latin1');
  const respHeaders: ProcessingRequest = { response_headers: { headers: headerMap({ ...RESPONSE_HEADERS, 'x-request-id': String(headers['x-request-id']) }) }, metadata_context: metadataContext({ 'envoy.lb': { 'x-gateway-destination-endpoint-served': served } }) };
  call.send(respHeaders);
  await call.next(120_000);
  if (shape.delivery === 'paced') {
    // One event per message, PACE_MS apart: each reaches the picker on its own, as tokens do.
    for (const e of answer) {
      call.send({ response_body: { body: e } });
      await new Promise((r) => setTimeout(r, PACE_MS));
    }
  } else {
    const whole = Buffer.concat(answer as Buffer[]);
    for (const m of shape.delivery === 'whole' ? [{ response_body: { body: whole } }] : bodyMessages('response_body', whole, 16 * 1024, false)) call.send(m);
  }
  call.send({ response_body: { body: Buffer.alloc(0), end_of_stream: true } });
  await readBody(call, 'response_body', (_b, eos) => eos);
  call.end();
  const status = await call.status;
  if (status.code !== 0) throw new Error(`stream ended ${status.code}: ${status.details}`);
}

async function run(client: EnvoyExtProcClient, shape: Shape, requests: number, concurrency: number): Promise<number> {
  const answer = sseEvents(shape.events);
  let next = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (next < requests) {
      const n = next++;
      try {
        await exchange(client, shape, n, answer);
      } catch (err) {
        if (failed++ === 0) process.stderr.write(`${String(err)}\n`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, requests) }, worker));
  return failed;
}

try {
  for (let round = 1; round <= rounds; round++) {
    for (const shape of shapes) {
      // Every build's picker at once, each sent the same load at the same time: the machine's
      // other work then weighs on all of them alike, and their ratio holds better than a
      // sequence of runs can on a shared machine.
      const order = round % 2 === 1 ? builds : [...builds].reverse();
      const pickers = [];
      try {
        for (const build of order) {
          const prof = profDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(profDir, `${build.name}-${shape.name}-${round}`)];
          const picker = await startPicker(build.root, prof);
          pickers.push({ build, picker, client: new EnvoyExtProcClient({ target: `127.0.0.1:${picker.grpcPort}`, tls: !insecure }) });
        }
        await Promise.all(pickers.map((p) => run(p.client, shape, 40, 4)));
        const measured = await Promise.all(
          pickers.map(async (p) => {
            const before = cpuSeconds(p.picker.child.pid) ?? Number.NaN;
            const started = performance.now();
            const failed = await run(p.client, shape, shape.requests, shape.concurrency);
            const seconds = (performance.now() - started) / 1000;
            return { p, failed, seconds, cpu: (cpuSeconds(p.picker.child.pid) ?? Number.NaN) - before };
          }),
        );
        for (const { p, failed, seconds, cpu } of measured) {
          const ok = shape.requests - failed;
          process.stdout.write(`${JSON.stringify({ round, shape: shape.name, build: p.build.name, ok, failed, cpuSecondsPer1000: Math.round((cpu / ok) * 1e6) / 1e3, requestsPerS: Math.round((ok / seconds) * 10) / 10 })}\n`);
        }
      } finally {
        for (const p of pickers) {
          p.client.close();
          await p.picker.child.stop();
        }
      }
    }
  }
} finally {
  await fleet.child.stop();
}
