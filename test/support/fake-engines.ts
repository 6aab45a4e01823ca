import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { configDir, gatewayYaml, podYaml, poolYaml, routeYaml } from './config.js';
import { startGatewayProcess, type GatewayProcess } from './gateway-process.js';
import { freePort } from './ports.js';

/**
 * Purpose-built model servers for fault tests: each behaves exactly as one real failure does (it
 * hangs, drops the connection after reading the body, stalls mid-stream, compresses regardless of
 * `Accept-Encoding`), which the simulator does not do. They speak just enough of the OpenAI API.
 */

/** What a fake server saw of one request (recorded once its body was read). */
export interface SeenRequest {
  readonly host: string;
  readonly requestId: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export type FakeHandler = (req: IncomingMessage, res: ServerResponse, seen: SeenRequest) => void;

export interface FakeEngines {
  /** The port every fake listens on (each on its own loopback address, like pods). */
  readonly port: number;
  /** Requests whose bodies the fakes read, in arrival order. */
  readonly seen: SeenRequest[];
  close(): Promise<void>;
}

/** Reads a whole request body. */
export async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/**
 * Starts one fake server per host, all on one port. Each request's body is read and recorded
 * before `handlers[host]` runs (the fault decides what happens next).
 */
export async function startFakeEngines(handlers: Readonly<Record<string, FakeHandler>>): Promise<FakeEngines> {
  const seen: SeenRequest[] = [];
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const servers: Server[] = [];
    const close = async (): Promise<void> => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    };
    try {
      for (const [host, handler] of Object.entries(handlers)) {
        const server = createServer((req, res) => {
          void readAll(req).then((body) => {
            const id = req.headers['x-request-id'];
            const s: SeenRequest = { host, requestId: typeof id === 'string' ? id : undefined, headers: req.headers, body };
            seen.push(s);
            handler(req, res, s);
          });
        });
        servers.push(server);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, host, () => resolve());
        });
      }
      return { port, seen, close };
    } catch (err) {
      await close();
      if ((err as { code?: string }).code !== 'EADDRINUSE') throw err;
    }
  }
  throw new Error('could not find a port free on every fake address');
}

/** The request's JSON body. */
export function jsonBody(seen: SeenRequest): { model?: string; stream?: boolean; stream_options?: { include_usage?: boolean } } {
  return JSON.parse(seen.body.toString('utf8')) as { model?: string; stream?: boolean; stream_options?: { include_usage?: boolean } };
}

/** Token counts every fake answer reports. */
export const FAKE_USAGE = { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 } as const;

/** The SSE events of a three-token chat answer (with the usage event when asked for), then `[DONE]`. */
export function chatEvents(model: string, includeUsage: boolean): string[] {
  const chunk = (delta: Record<string, string>, finish: string | null): string =>
    `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const events = [chunk({ role: 'assistant', content: '' }, null), chunk({ content: 'Hello' }, null), chunk({ content: ' there' }, null), chunk({ content: '!' }, 'stop')];
  if (includeUsage) events.push(`data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model, choices: [], usage: FAKE_USAGE })}\n\n`);
  events.push('data: [DONE]\n\n');
  return events;
}

/** A whole (non-streamed) chat answer. */
export function chatJson(model: string): string {
  return JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion', created: 1, model, choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there!' }, finish_reason: 'stop' }], usage: FAKE_USAGE });
}

/** Answers like a healthy model server: SSE or JSON as asked, `x-fake-host` naming it. */
export function answer(res: ServerResponse, seen: SeenRequest): void {
  const body = jsonBody(seen);
  const model = body.model ?? 'm';
  res.setHeader('x-fake-host', seen.host);
  if (body.stream === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end(chatEvents(model, body.stream_options?.include_usage === true).join(''));
  } else {
    const text = chatJson(model);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
    res.end(text);
  }
}

/**
 * One pool `fake` of the given pods (name → loopback address) behind a Gateway on `port`. The
 * fakes answer as vLLM does (usage when asked), and the pool says so: with scraping off, a pool
 * that names no runtime is never asked for usage (the gateway does not know it accepts the field).
 */
export function fakePoolYaml(port: number, podPort: number, pods: Readonly<Record<string, string>>, extra = ''): string {
  const pool = poolYaml('fake', 'fake', podPort).replace('metadata: {name: fake}', 'metadata: {name: fake, annotations: {inference.networking.x-k8s.io/model-server-runtime: vllm}}');
  return gatewayYaml(port, extra) + pool + Object.entries(pods).map(([name, ip]) => podYaml(name, 'fake', ip)).join('') + routeYaml('all', [{ pool: 'fake', weight: 1 }]);
}

/** A temporary config folder for `fakePoolYaml` on a free listener port. */
export async function fakePoolConfig(podPort: number, pods: Readonly<Record<string, string>>, extra = ''): Promise<{ port: number; dir: string; remove: () => Promise<void> }> {
  const port = await freePort();
  const cfg = await configDir(fakePoolYaml(port, podPort, pods, extra));
  return { port, dir: cfg.dir, remove: cfg.remove };
}

/** A chat request body. */
export function chatRequest(stream: boolean, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: 'm', stream, messages: [{ role: 'user', content: 'Say hello.' }], ...extra });
}

/** Fake model servers, the gateway process in front of them, and its listener. */
export interface FakeEnv {
  readonly fakes: FakeEngines;
  readonly gateway: GatewayProcess;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly base: string;
  close(): Promise<void>;
}

/**
 * Starts one fake per host (`handlers`), a gateway process over one pool of `pods` (name → host;
 * a pod may name a host with no fake, to be refused), with `extraYaml` added to its config and
 * `args` to its command line. Health checking is off unless `args` turn it on: the requests' own
 * outcomes are what these tests are about.
 */
export async function startFakeEnv(
  handlers: Readonly<Record<string, FakeHandler>>,
  pods: Readonly<Record<string, string>>,
  opts: { readonly extraYaml?: string; readonly args?: readonly string[] } = {},
): Promise<FakeEnv> {
  const fakes = await startFakeEngines(handlers);
  const cfg = await fakePoolConfig(fakes.port, pods, opts.extraYaml);
  try {
    const gateway = await startGatewayProcess(['-f', cfg.dir, '--scrape-interval', '0', ...(opts.args ?? [])]);
    return {
      fakes,
      gateway,
      port: cfg.port,
      base: `http://127.0.0.1:${cfg.port}`,
      close: async () => {
        await gateway.stop();
        await fakes.close();
        await cfg.remove();
      },
    };
  } catch (err) {
    await fakes.close();
    await cfg.remove();
    throw err;
  }
}
