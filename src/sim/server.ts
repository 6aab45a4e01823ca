/**
 * One simulated model server: an engine (engine/) behind the HTTP face of a runtime (vLLM V1,
 * vLLM V0, SGLang, Triton's OpenAI frontend for TensorRT-LLM). See docs/simulator.md.
 *
 * Every response carries `x-sim-pod`, `x-sim-port`, `x-sim-runtime` and, on generation routes,
 * `x-sim-model` (the `model` field received). Non-streaming answers also carry the request's
 * modelled timings (`x-sim-ttft-ms`, `x-sim-queue-ms`, `x-sim-e2e-ms`, `x-sim-cached-tokens`,
 * `x-sim-preemptions`).
 *
 * Test hooks, as request headers:
 * - `x-sim-first-token-delay-ms: N` waits N wall-clock ms before handing the request to the engine;
 * - `x-sim-reset: before-headers` destroys the connection instead of answering;
 *   `x-sim-reset: mid-stream` destroys it after half of the answer's tokens were sent.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  answerLength,
  answerSeed,
  checkErrorMessage,
  checkErrorStatus,
  checkErrorType,
  Engine,
  findProfile,
  naturalAnswerLength,
  SimClock,
  type EngineProfile,
  type EngineProfileOverrides,
  type EngineRequest,
  type ProfileName,
  type RequestHandle,
  type RequestResult,
} from './engine/index.js';
import { parseObject, pathOf, readBody, send, sendJson } from './http.js';
import { createMetricsPage, METRICS_CONTENT_TYPE, type MetricsPage } from './metrics/index.js';
import { AnswerWriter, parseGenerate, type ResponseMeta } from './openai.js';
import {
  awaitTransfer,
  BootstrapServer,
  DEFAULT_BOOTSTRAP_PORT,
  DEFAULT_BOOTSTRAP_TIMEOUT_MS,
  DEFAULT_KV_TRANSFER_MS_PER_TOKEN,
  parseBootstrap,
  type BootstrapFields,
} from './pd.js';
import { FACES, METHOD_NOT_ALLOWED_BODY, NOT_FOUND_BODY, type ErrorAnswer, type Face, type ModelEntry, type SimRuntime } from './runtimes.js';

export type PdRole = 'prefill' | 'decode';

export interface SimServerOptions {
  /** Default 'vllm' (V1, ≥ 0.9.2 metric names, nested error bodies). */
  runtime?: SimRuntime;
  host: string;
  /** 0 = any free port. */
  port: number;
  /** Pod name, reported in the `x-sim-pod` header. */
  name: string;
  /** Served model name(s) (vLLM `--served-model-name`); default 'mymodel'. */
  model?: string | readonly string[];
  /** LoRA adapters served from the start (vLLM `--lora-modules`). */
  loras?: readonly string[];
  /** GPU adapter slots (vLLM `--max-loras`); default 1. */
  maxLoras?: number;
  /** vLLM `--enable-lora`; default: true when `loras`, `maxLoras` or `runtimeLoraUpdating` is given. */
  enableLora?: boolean;
  /**
   * vLLM `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`: serve `/v1/load_lora_adapter` and
   * `/v1/unload_lora_adapter` (vLLM runtimes only). Default false, as in vLLM: the routes are 404.
   */
  runtimeLoraUpdating?: boolean;
  /** Default 'llama-3.1-8b-h100'. */
  profile?: ProfileName | EngineProfile;
  overrides?: EngineProfileOverrides;
  /** Modelled time runs this many times faster than the wall clock; default 1. Ignored with `clock`. */
  timeScale?: number;
  /** A clock shared by the servers of one process (its owner closes it). */
  clock?: SimClock;
  /** SGLang prefill/decode disaggregation role (runtime 'sglang' only). */
  pdRole?: PdRole;
  /** Prefill: the bootstrap listener's port on `host` (default 8998; 0 = any free port). */
  bootstrapPort?: number;
  /** Modelled ms either leg waits for its partner; default 300 000 (SGLang's 300 s). */
  bootstrapTimeoutMs?: number;
  /** Prefill: modelled KV transfer cost per prompt token; default 0.003 ms (3 µs, §i.1). */
  kvTransferMsPerToken?: number;
  /** `usage.prompt_tokens_details.cached_tokens` in answers; default true (see docs/simulator.md). */
  cacheReport?: boolean;
  /** Seed of the engine's step-time jitter (only with a profile `jitter` > 0). */
  seed?: number;
}

/** HTTP-level counts of generation requests. */
export interface SimStats {
  /** Answered to the end. */
  served: number;
  /** Accepted (valid) and not finished yet. */
  inFlight: number;
  /** The client went away before the answer was complete. */
  aborted: number;
}

export interface RunningSimServer {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly url: string;
  readonly runtime: SimRuntime;
  readonly engine: Engine;
  readonly clock: SimClock;
  readonly pdRole: PdRole | undefined;
  /** The prefill server's bootstrap listener port; undefined otherwise. */
  readonly bootstrapPort: number | undefined;
  stats(): SimStats;
  close(): Promise<void>;
}

const DEFAULT_PROFILE: ProfileName = 'llama-3.1-8b-h100';

/** The profile object for a name or object; throws RangeError for an unknown name. */
export function profileOf(profile: ProfileName | EngineProfile | undefined): EngineProfile {
  if (profile === undefined) return findProfile(DEFAULT_PROFILE) as EngineProfile;
  if (typeof profile !== 'string') return profile;
  const found = findProfile(profile);
  if (found === undefined) throw new RangeError(`unknown profile "${profile}"`);
  return found;
}

/** Starts a simulated model server; resolves once it listens. */
export async function startSimServer(options: SimServerOptions): Promise<RunningSimServer> {
  const server = new SimServer(options);
  try {
    await server.listen();
  } catch (err) {
    await server.close();
    throw err;
  }
  return server.handle();
}

class SimServer {
  readonly options: SimServerOptions;
  readonly runtime: SimRuntime;
  readonly face: Face;
  readonly name: string;
  readonly clock: SimClock;
  readonly ownsClock: boolean;
  readonly engine: Engine;
  readonly metrics: MetricsPage;
  readonly primaryModel: string;
  readonly loraEnabled: boolean;
  readonly loraAdmin: boolean;
  readonly cacheReport: boolean;
  readonly pdRole: PdRole | undefined;
  readonly bootstrapTimeoutMs: number;
  readonly bootstrap: BootstrapServer | undefined;
  readonly counters: SimStats = { served: 0, inFlight: 0, aborted: 0 };
  /** Adapter name → `root` in /v1/models (its path when loaded at runtime). */
  readonly loraPaths = new Map<string, string>();
  readonly http: Server;
  port = 0;
  #nextId = 1;
  #closing: Promise<void> | undefined;

  constructor(options: SimServerOptions) {
    this.options = options;
    this.runtime = options.runtime ?? 'vllm';
    this.face = FACES[this.runtime];
    if (this.face === undefined) throw new RangeError(`unknown runtime "${String(options.runtime)}"`);
    this.name = options.name;
    this.pdRole = options.pdRole;
    if (this.pdRole !== undefined && this.runtime !== 'sglang') throw new RangeError('pdRole needs runtime sglang (SGLang prefill/decode disaggregation)');
    this.ownsClock = options.clock === undefined;
    this.clock = options.clock ?? new SimClock({ timeScale: options.timeScale ?? 1 });
    const models = options.model === undefined ? ['mymodel'] : typeof options.model === 'string' ? [options.model] : [...options.model];
    const loras = options.loras ?? [];
    try {
      this.engine = new Engine({
        model: models,
        loras,
        profile: profileOf(options.profile),
        clock: this.clock,
        ...(options.maxLoras === undefined ? {} : { maxLoras: options.maxLoras }),
        ...(options.overrides === undefined ? {} : { overrides: options.overrides }),
        ...(options.seed === undefined ? {} : { seed: options.seed }),
      });
    } catch (err) {
      if (this.ownsClock) this.clock.close();
      throw err;
    }
    for (const l of loras) this.loraPaths.set(l, l);
    this.primaryModel = this.engine.modelNames[0] as string;
    this.loraAdmin = this.face.loraAdmin && options.runtimeLoraUpdating === true;
    this.loraEnabled = options.enableLora ?? (loras.length > 0 || options.maxLoras !== undefined || this.loraAdmin);
    this.cacheReport = options.cacheReport ?? true;
    this.metrics = createMetricsPage(this.runtime, { engine: this.engine, modelName: this.primaryModel, loraEnabled: this.loraEnabled });
    this.bootstrapTimeoutMs = options.bootstrapTimeoutMs ?? DEFAULT_BOOTSTRAP_TIMEOUT_MS;
    this.bootstrap =
      this.pdRole === 'prefill'
        ? new BootstrapServer({
            clock: this.clock,
            name: this.name,
            timeoutMs: this.bootstrapTimeoutMs,
            msPerToken: options.kvTransferMsPerToken ?? DEFAULT_KV_TRANSFER_MS_PER_TOKEN,
          })
        : undefined;
    this.http = createServer({ noDelay: true }, (req, res) => this.#dispatch(req, res));
  }

  async listen(): Promise<void> {
    const { host, port } = this.options;
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    this.port = (this.http.address() as AddressInfo).port;
    if (this.bootstrap !== undefined) await this.bootstrap.listen(host, this.options.bootstrapPort ?? DEFAULT_BOOTSTRAP_PORT);
  }

  handle(): RunningSimServer {
    const self = this;
    const host = this.options.host;
    const urlHost = host.includes(':') ? `[${host}]` : host;
    return {
      name: this.name,
      host,
      port: this.port,
      url: `http://${urlHost}:${this.port}`,
      runtime: this.runtime,
      engine: this.engine,
      clock: this.clock,
      pdRole: this.pdRole,
      bootstrapPort: this.bootstrap?.port,
      stats: () => ({ ...self.counters }),
      close: () => self.close(),
    };
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = this.http.listening ? new Promise<void>((resolve) => this.http.close(() => resolve())) : Promise.resolve();
      this.http.closeAllConnections();
      await this.bootstrap?.close();
      this.engine.close();
      await closed;
      if (this.ownsClock) this.clock.close();
    })();
    return this.#closing;
  }

  nextId(prefix: string): string {
    return `${prefix}${this.name}-${this.#nextId++}`;
  }

  sendError(res: ServerResponse, e: ErrorAnswer): void {
    sendJson(res, e.status, e.body);
  }

  // --- routes -----------------------------------------------------------------------------------

  #dispatch(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('x-sim-pod', this.name);
    res.setHeader('x-sim-port', String(this.port));
    res.setHeader('x-sim-runtime', this.runtime);
    const path = pathOf(req);
    const method = req.method ?? 'GET';
    const route = (allowed: string, fn: () => void | Promise<void>): void => {
      if (method !== allowed) return sendJson(res, 405, METHOD_NOT_ALLOWED_BODY);
      const out = fn();
      if (out instanceof Promise) {
        out.catch((err: unknown) => {
          if (!res.headersSent) this.sendError(res, this.face.error(500, `Internal server error: ${String(err)}`, 'InternalServerError'));
          else res.destroy();
        });
      }
    };
    if (path === '/v1/chat/completions') return route('POST', () => this.#generate(req, res, true));
    if (path === '/v1/completions') return route('POST', () => this.#generate(req, res, false));
    if (path === '/v1/models') return route('GET', () => this.#models(res));
    if (path === '/metrics') return route('GET', () => send(res, 200, this.metrics.render(), METRICS_CONTENT_TYPE));
    if (this.face.healthPaths.includes(path) || (path === '/ping' && this.runtime.startsWith('vllm'))) {
      if (path === '/health_generate') return route('GET', () => this.#healthGenerate(res));
      return route(method === 'POST' && path === '/ping' ? 'POST' : 'GET', () => send(res, 200, '', 'application/json'));
    }
    if (this.loraAdmin && path === '/v1/load_lora_adapter') return route('POST', () => this.#loadLora(req, res));
    if (this.loraAdmin && path === '/v1/unload_lora_adapter') return route('POST', () => this.#unloadLora(req, res));
    sendJson(res, 404, NOT_FOUND_BODY);
  }

  #models(res: ServerResponse): void {
    const created = Math.floor(this.clock.toEpochMs() / 1000);
    const entries: ModelEntry[] = this.engine.modelNames.map((id) => ({ id, parent: null, root: this.primaryModel }));
    for (const l of this.engine.loras) entries.push({ id: l, parent: this.primaryModel, root: this.loraPaths.get(l) ?? l });
    sendJson(res, 200, this.face.models(entries, created, this.engine.profile.maxModelLen));
  }

  /** SGLang `/health_generate`: one token through the engine (`max_new_tokens: 1`), 200 or 503. */
  #healthGenerate(res: ServerResponse): void {
    try {
      this.engine.submit(
        { model: this.primaryModel, prompt: 'health check', maxTokens: 1 },
        { onFinish: (r) => send(res, r.finishReason === 'abort' ? 503 : 200, '', 'application/json') },
      );
    } catch {
      send(res, 503, '', 'application/json');
    }
  }

  async #loadLora(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = parseObject((await readBody(req)) ?? '') ?? {};
    const name = body['lora_name'];
    const path = body['lora_path'];
    if (typeof name !== 'string' || name === '' || typeof path !== 'string' || path === '') {
      return this.sendError(res, this.face.error(400, "Both 'lora_name' and 'lora_path' must be provided.", 'InvalidUserInput'));
    }
    if (!this.engine.loadLora(name)) {
      return this.sendError(res, this.face.error(400, `The lora adapter '${name}' has already been loaded.`, 'InvalidUserInput'));
    }
    this.loraPaths.set(name, path);
    send(res, 200, `Success: LoRA adapter '${name}' added successfully.`, 'text/plain; charset=utf-8');
  }

  async #unloadLora(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = parseObject((await readBody(req)) ?? '') ?? {};
    const name = body['lora_name'];
    if (typeof name !== 'string' || name === '') {
      return this.sendError(res, this.face.error(400, "'lora_name' needs to be provided to unload a LoRA adapter.", 'InvalidUserInput'));
    }
    if (!this.engine.unloadLora(name)) {
      return this.sendError(res, this.face.error(404, `The lora adapter '${name}' cannot be found.`, 'NotFoundError'));
    }
    this.loraPaths.delete(name);
    send(res, 200, `Success: LoRA adapter '${name}' removed successfully.`, 'text/plain; charset=utf-8');
  }

  async #generate(req: IncomingMessage, res: ServerResponse, chat: boolean): Promise<void> {
    const text = await readBody(req);
    if (text === undefined) return this.sendError(res, this.face.error(413, 'Request body too large.', 'BadRequestError'));
    const body = parseObject(text);
    if (body === undefined) return this.sendError(res, this.face.error(400, 'The request body must be a JSON object.', 'BadRequestError'));
    const modelField = body['model'];
    res.setHeader('x-sim-model', typeof modelField === 'string' ? modelField : '');
    const parsed = parseGenerate(body, chat, this.face, this.primaryModel);
    if (!parsed.ok) return this.sendError(res, this.face.error(parsed.status, parsed.message, parsed.type));
    const g = parsed.request;

    let bootstrap: BootstrapFields | undefined;
    if (this.pdRole !== undefined) {
      const b = parseBootstrap(body);
      if (b.kind === 'absent') {
        const message =
          `This server runs SGLang prefill/decode disaggregation (${this.pdRole}); the request must carry ` +
          'bootstrap_host, bootstrap_port and bootstrap_room (a PD router adds them).';
        return this.sendError(res, this.face.error(400, message, 'BadRequestError'));
      }
      if (b.kind === 'invalid') return this.sendError(res, this.face.error(400, b.message, 'BadRequestError'));
      bootstrap = b.fields;
    }

    const engineReq: EngineRequest = {
      model: g.model,
      ...(g.promptTokens !== undefined ? { promptTokens: g.promptTokens } : { prompt: g.prompt ?? '' }),
      ...(g.maxTokens === undefined ? {} : { maxTokens: g.maxTokens }),
      ...(g.ignoreEos ? { ignoreEos: true } : {}),
      ...(g.cacheSalt === undefined ? {} : { cacheSalt: g.cacheSalt }),
      ...(this.pdRole === 'prefill' ? { prefillOnly: true } : {}),
      ...(this.pdRole === 'decode' ? { remotePrefill: true } : {}),
    };
    const check = this.engine.check(engineReq);
    if (!check.ok) {
      const e = check.error;
      const message = checkErrorMessage(e);
      return this.sendError(res, e.kind === 'unknown_model' ? this.face.unknownModel(g.model, message) : this.face.error(checkErrorStatus(e), message, checkErrorType(e)));
    }
    if (req.headers['x-sim-reset'] === 'before-headers') {
      req.socket.destroy();
      return;
    }
    const checked = check.request;
    const { prompt: _text, ...rest } = engineReq;
    const submitted: EngineRequest = { ...rest, promptTokens: checked.promptTokens };
    const meta: ResponseMeta = {
      face: this.face,
      chat,
      stream: g.stream,
      includeUsage: g.includeUsage,
      cacheReport: this.cacheReport,
      model: g.model,
      id: this.nextId(chat ? this.face.chatIdPrefix : 'cmpl-'),
      created: Math.floor(this.clock.toEpochMs() / 1000),
    };
    let resetAt = 0;
    if (req.headers['x-sim-reset'] === 'mid-stream') {
      const tokens =
        this.pdRole === 'prefill' ? 1 : answerLength(naturalAnswerLength(answerSeed(checked.promptTokens, g.model)), checked.maxTokens, g.ignoreEos).tokens;
      resetAt = Math.max(1, Math.ceil(tokens / 2));
    }
    await new Exchange(this, req, res, meta, submitted, bootstrap, resetAt).run();
  }
}

/** Modelled timings of a finished request as response headers (non-streaming answers only). */
function timingHeaders(r: RequestResult, transferMs?: number): Record<string, string> {
  const ms = (x: number | null): string => (x === null ? '' : String(Math.round(x * 1000) / 1000)); // to the µs
  const h: Record<string, string> = {
    'x-sim-ttft-ms': ms(r.ttftMs),
    'x-sim-queue-ms': ms(r.queueMs),
    'x-sim-e2e-ms': ms(r.e2eMs),
    'x-sim-cached-tokens': String(r.cachedTokens),
    'x-sim-preemptions': String(r.preemptions),
  };
  if (transferMs !== undefined) h['x-sim-kv-transfer-ms'] = ms(transferMs);
  return h;
}

/** One accepted generation request, from validation to the last byte (or the client leaving). */
class Exchange {
  readonly #srv: SimServer;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #meta: ResponseMeta;
  readonly #engineReq: EngineRequest;
  readonly #bootstrap: BootstrapFields | undefined;
  readonly #resetAt: number;
  readonly #writer: AnswerWriter;
  #done = false;
  /** The server destroys the connection itself (test hook, shutdown): not a client abort. */
  #selfReset = false;
  #cancelWait: (() => void) | null = null;
  #handle: RequestHandle | null = null;

  constructor(srv: SimServer, req: IncomingMessage, res: ServerResponse, meta: ResponseMeta, engineReq: EngineRequest, bootstrap: BootstrapFields | undefined, resetAt: number) {
    this.#srv = srv;
    this.#req = req;
    this.#res = res;
    this.#meta = meta;
    this.#engineReq = engineReq;
    this.#bootstrap = bootstrap;
    this.#resetAt = resetAt;
    this.#writer = new AnswerWriter(res, meta);
    srv.counters.inFlight++;
    res.on('close', this.#onClose);
  }

  async run(): Promise<void> {
    const delay = Number(this.#req.headers['x-sim-first-token-delay-ms'] ?? 0);
    if (Number.isFinite(delay) && delay > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        this.#cancelWait = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#cancelWait = null;
      if (this.#done) return;
    }
    const srv = this.#srv;
    if (srv.pdRole === 'decode' && this.#bootstrap !== undefined) {
      const wait = awaitTransfer({
        clock: srv.clock,
        fields: this.#bootstrap,
        decodeName: srv.name,
        model: this.#engineReq.model,
        promptTokens: this.#engineReq.promptTokens?.length ?? 0,
        timeoutMs: srv.bootstrapTimeoutMs,
      });
      this.#cancelWait = wait.cancel;
      const outcome = await wait.promise;
      this.#cancelWait = null;
      if (this.#done) return;
      if (!outcome.ok) return this.#fail(outcome.message);
      this.#submit(outcome.transferMs);
      return;
    }
    if (srv.pdRole === 'prefill' && this.#bootstrap !== undefined) return this.#submitPrefill(this.#bootstrap);
    this.#submit(undefined);
  }

  #end(kind: 'served' | 'aborted' | 'none'): void {
    if (this.#done) return;
    this.#done = true;
    const c = this.#srv.counters;
    c.inFlight--;
    if (kind === 'served') c.served++;
    else if (kind === 'aborted') c.aborted++;
  }

  readonly #onClose = (): void => {
    if (this.#done) return;
    this.#cancelWait?.();
    this.#cancelWait = null;
    this.#end(this.#selfReset ? 'none' : 'aborted');
    this.#handle?.abort();
  };

  #destroy(): void {
    this.#selfReset = true;
    this.#res.destroy();
    this.#end('none');
  }

  #fail(message: string): void {
    this.#srv.sendError(this.#res, this.#srv.face.error(500, message, 'InternalServerError'));
    this.#end('none');
  }

  #submit(transferMs: number | undefined): void {
    const srv = this.#srv;
    const observer = srv.metrics;
    const clock = srv.clock;
    const writer = this.#writer;
    let submitMs = 0;
    let lastMs = 0;
    try {
      writer.start();
      submitMs = clock.now();
      lastMs = submitMs;
      this.#handle = srv.engine.submit(this.#engineReq, {
        onToken: (text, index) => {
          const now = clock.now();
          observer.token(index, now - submitMs, now - lastMs);
          lastMs = now;
          writer.token(text, index);
          if (this.#resetAt === index + 1) {
            // Test hook: send what was generated so far, then close the connection mid-answer.
            writer.flush();
            this.#selfReset = true;
            this.#end('none');
            this.#req.socket.destroySoon();
            this.#handle?.abort();
          }
        },
        onFinish: (result) => {
          observer.finished(result);
          if (result.finishReason === 'abort') {
            if (!this.#done) this.#destroy();
            return;
          }
          writer.finish(result, timingHeaders(result, transferMs));
          this.#end('served');
        },
      });
      observer.submitted();
    } catch (err) {
      if (this.#res.headersSent) this.#destroy();
      else this.#fail(`the engine refused the request: ${String(err)}`);
    }
  }

  /** SGLang prefill leg: compute the prompt, wait for the decode leg, transfer, answer one token. */
  #submitPrefill(fields: BootstrapFields): void {
    const srv = this.#srv;
    const bootstrap = srv.bootstrap as BootstrapServer;
    const observer = srv.metrics;
    const clock = srv.clock;
    let firstText = '';
    let result: RequestResult | null = null;
    const leg = bootstrap.openPrefill(fields.room, this.#engineReq.model, this.#engineReq.promptTokens?.length ?? 0, {
      transferred: (transferMs) => {
        this.#cancelWait = null;
        if (this.#done || result === null) return;
        this.#writer.start();
        this.#writer.token(firstText, 0);
        this.#writer.finish(result, timingHeaders(result, transferMs));
        this.#end('served');
      },
      failed: (message) => {
        this.#cancelWait = null;
        if (this.#done) return;
        this.#fail(message); // first: the abort below must not reset the connection
        this.#handle?.abort();
      },
    });
    if (typeof leg === 'string') {
      srv.sendError(this.#res, srv.face.error(400, leg, 'BadRequestError'));
      this.#end('none');
      return;
    }
    this.#cancelWait = leg.cancel;
    const submitMs = clock.now();
    try {
      this.#handle = srv.engine.submit(this.#engineReq, {
        onToken: (text, index) => {
          observer.token(index, clock.now() - submitMs, 0);
          if (index === 0) firstText = text;
        },
        onFinish: (r) => {
          observer.finished(r);
          if (r.finishReason === 'abort') {
            leg.cancel();
            if (!this.#done) this.#destroy();
            return;
          }
          result = r;
          leg.computed();
        },
      });
      observer.submitted();
    } catch (err) {
      leg.cancel();
      this.#fail(`the engine refused the request: ${String(err)}`);
    }
  }
}
