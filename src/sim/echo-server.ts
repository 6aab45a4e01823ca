import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/*
 * A deterministic OpenAI-compatible echo engine: it answers `/v1/completions` and
 * `/v1/chat/completions` (streaming or not) by echoing the prompt's words, one token per
 * `tokenDelayMs`, and names the pod that answered. Enough to prove routing, streaming and
 * failure handling end to end; the engine simulator (continuous batching, KV cache, metrics)
 * replaces it for scheduling work.
 *
 * Test hooks, as request headers: `x-sim-first-token-delay-ms: N` waits before the first token;
 * `x-sim-reset: before-headers | mid-stream` drops the connection at that point.
 */

export interface EchoServerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** The pod name reported in `x-sim-pod` and in the answer. */
  readonly name: string;
  /** Base model names served. Default `["mymodel"]`. */
  readonly models?: readonly string[];
  /** LoRA adapter names served beside the base models. */
  readonly loras?: readonly string[];
  /** Delay between streamed tokens. Default 20 ms. */
  readonly tokenDelayMs?: number;
}

export interface EchoStats {
  /** Requests answered to the end. */
  readonly served: number;
  readonly inFlight: number;
  /** Requests whose client went away before the answer was complete. */
  readonly aborted: number;
}

export interface RunningEchoServer {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly url: string;
  stats(): EchoStats;
  close(): Promise<void>;
}

const DEFAULT_MAX_TOKENS = 16;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function promptText(body: Record<string, unknown>): string {
  const messages = body['messages'];
  if (Array.isArray(messages)) {
    const last = messages.at(-1) as { content?: unknown } | undefined;
    return typeof last?.content === 'string' ? last.content : '';
  }
  const prompt = body['prompt'];
  return typeof prompt === 'string' ? prompt : Array.isArray(prompt) ? prompt.map(String).join(' ') : '';
}

/** The answer: "Echo from <pod>:" and the prompt's words, cycled up to `max` tokens. */
function answerTokens(pod: string, prompt: string, max: number): string[] {
  const words = prompt.split(/\s+/).filter((w) => w !== '');
  const source = ['Echo', 'from', `${pod}:`, ...words];
  const out: string[] = [];
  for (let i = 0; i < max; i++) {
    const w = source[i < source.length ? i : 3 + ((i - 3) % Math.max(1, words.length))] ?? 'echo';
    out.push(i === 0 ? w : ` ${w}`);
  }
  return out;
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export async function startEchoServer(opts: EchoServerOptions): Promise<RunningEchoServer> {
  const models = new Set([...(opts.models ?? ['mymodel']), ...(opts.loras ?? [])]);
  const tokenDelay = opts.tokenDelayMs ?? 20;
  let served = 0;
  let inFlight = 0;
  let aborted = 0;

  const complete = async (req: IncomingMessage, res: ServerResponse, chat: boolean): Promise<void> => {
    const body = await readJson(req);
    if (body === undefined) return sendJson(res, 400, { error: { message: 'body must be a JSON object', type: 'BadRequestError', param: null, code: 400 } });
    const model = typeof body['model'] === 'string' ? body['model'] : '';
    res.setHeader('x-sim-pod', opts.name);
    res.setHeader('x-sim-model', model);
    if (!models.has(model)) {
      return sendJson(res, 404, { error: { message: `The model \`${model}\` does not exist.`, type: 'NotFoundError', param: null, code: 404 } });
    }
    if (req.headers['x-sim-reset'] === 'before-headers') {
      req.socket.destroy();
      return;
    }
    const max = typeof body['max_tokens'] === 'number' && body['max_tokens'] > 0 ? body['max_tokens'] : DEFAULT_MAX_TOKENS;
    const tokens = answerTokens(opts.name, promptText(body), max);
    const stream = body['stream'] === true;
    const streamOptions = body['stream_options'] as { include_usage?: unknown } | undefined;
    const usage = { prompt_tokens: promptText(body).split(/\s+/).filter(Boolean).length, completion_tokens: tokens.length, total_tokens: 0 };
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${opts.name}-${served + inFlight}`;
    const created = Math.floor(Date.now() / 1000);
    const object = chat ? 'chat.completion.chunk' : 'text_completion';

    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    inFlight++;
    try {
      await sleep(Number(req.headers['x-sim-first-token-delay-ms'] ?? 0), controller.signal);
      if (!stream) {
        await sleep(tokenDelay * tokens.length, controller.signal);
        if (controller.signal.aborted) return void aborted++;
        const text = tokens.join('');
        const choice = chat ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'length' } : { index: 0, text, finish_reason: 'length' };
        sendJson(res, 200, { id, object: chat ? 'chat.completion' : 'text_completion', created, model, choices: [choice], usage });
        served++;
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const event = (choices: unknown[], extra: Record<string, unknown> = {}): void => {
        res.write(`data: ${JSON.stringify({ id, object, created, model, choices, ...extra })}\n\n`);
      };
      if (chat) event([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]);
      for (let i = 0; i < tokens.length; i++) {
        await sleep(tokenDelay, controller.signal);
        if (controller.signal.aborted) return void aborted++;
        if (req.headers['x-sim-reset'] === 'mid-stream' && i === Math.ceil(tokens.length / 2)) {
          req.socket.destroy();
          return;
        }
        const finish = i === tokens.length - 1 ? 'length' : null;
        event([chat ? { index: 0, delta: { content: tokens[i] }, finish_reason: finish } : { index: 0, text: tokens[i], finish_reason: finish }]);
      }
      if (streamOptions?.include_usage === true) event([], { usage });
      res.end('data: [DONE]\n\n');
      served++;
    } finally {
      inFlight--;
    }
  };

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && path === '/v1/chat/completions') return void complete(req, res, true);
    if (req.method === 'POST' && path === '/v1/completions') return void complete(req, res, false);
    if (req.method === 'GET' && path === '/v1/models') {
      return sendJson(res, 200, { object: 'list', data: [...models].map((id) => ({ id, object: 'model', owned_by: 'infergate-sim' })) });
    }
    if (req.method === 'GET' && path === '/health') return void res.writeHead(200).end();
    sendJson(res, 404, { detail: 'Not Found' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    name: opts.name,
    host: opts.host,
    port,
    url: `http://${opts.host}:${port}`,
    stats: () => ({ served, inFlight, aborted }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
