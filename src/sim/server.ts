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
 *   `x-sim-reset: mid-stream` destroys it after half of the answer's tokens were sent;
 * - `x-sim-fault: <mode>` injects a generation fault (faults.ts), as `POST /sim/faults` does
 *   server-wide.
 *
 * One accepted request's life is in exchange.ts; the Responses API in responses.ts, embeddings in
 * embeddings.ts, gzip in compress.ts.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { refuseConnect } from '../core/refuse-connect.js';
import type { AddressInfo } from 'node:net';
import {
  answerHeader,
  answerLength,
  answerSeed,
  checkErrorMessage,
  checkErrorStatus,
  checkErrorType,
  Engine,
  findProfile,
  naturalAnswerLength,
  SimClock,
  tokenize,
  type CheckError,
  type EngineProfile,
  type EngineProfileOverrides,
  type EngineRequest,
  type ProfileName,
} from './engine/index.js';
import { compressResponse } from './compress.js';
import { SimTokenizer, tokenizeRefusal } from './real-tokens.js';
import { DEFAULT_EMBEDDING_DIMENSION, EmbeddingJob, MAX_EMBEDDING_DIMENSION, parseEmbeddings } from './embeddings.js';
import { Exchange, RequestLife, type AnswerCut, type ExchangeHost, type SimStats } from './exchange.js';
import { FaultSettings, generationFaultHelp, parseGenerationFault, type GenerationFault, type GenerationFaultMode, type SimFaults } from './faults.js';
import { parseObject, pathOf, readBody, send, sendJson } from './http.js';
import { createMetricsPage, HttpRequestCounts, METRICS_CONTENT_TYPE, type MetricsFault, type MetricsPage } from './metrics/index.js';
import { AnswerWriter, parseGenerate, SSE_HEADERS, type AnswerSink, type GenerateRequest } from './openai.js';
import { KvLink, linkMsPerToken } from './kv-link.js';
import { defaultTopic, type SimKvEventsOptions } from './kv-events/config.js';
import { KvEventPublisher, type KvEventsInfo } from './kv-events/publisher.js';
import { DEFAULT_KV_ABORT_TIMEOUT_MS, DEFAULT_SIDE_CHANNEL_PORT, NixlSideChannel } from './nixl.js';
import { BootstrapServer, DEFAULT_BOOTSTRAP_PORT, DEFAULT_BOOTSTRAP_TIMEOUT_MS } from './pd.js';
import { engineFlags, parsePdLeg, type PdLeg, type PdRole } from './pd-leg.js';
import { PREFIX_MATCH_PATH, prefixMatchRoute } from './prefix-match.js';
import { parseResponses, ResponsesWriter, type ResponsesEcho } from './responses.js';
import { FACES, METHOD_NOT_ALLOWED_BODY, NOT_FOUND_BODY, type ErrorAnswer, type Face, type ModelEntry, type SimRuntime } from './runtimes.js';
import { parseTritonVersion, TRITON_LATEST_MINOR, tritonStreamOptionsRefusal } from './triton-version.js';

export type { SimStats } from './exchange.js';
export type { PdRole } from './pd-leg.js';
export type { KvEventsInfo } from './kv-events/publisher.js';
export type { SimKvEventsOptions } from './kv-events/config.js';

export interface SimServerOptions {
  /** Default 'vllm' (V1, ≥ 0.9.2 metric names, nested error bodies). */
  runtime?: SimRuntime;
  /**
   * A directory with the model's tokenizer.json and tokenizer_config.json: prompts are tokenised
   * with it and its chat template, as a vLLM pod would (real-tokens.ts). Default: the simulator's
   * stand-in tokenizer and ChatML template.
   */
  tokenizer?: string;
  host: string;
  /** 0 = any free port. */
  port: number;
  /** Pod name, reported in the `x-sim-pod` header. */
  name: string;
  /** Served model name(s) (vLLM `--served-model-name`); default 'mymodel'. */
  model?: string | readonly string[];
  /**
   * The model the server stands for: the path or hub id a real server was started with (vLLM's
   * positional model, `vllm serve /models/Qwen-2.5-7B-Instruct --served-model-name mymodel`;
   * SGLang's `--model-path`). Answers start with a self-introduction naming it ("I am
   * Qwen-2.5-7B-Instruct.") and the LoRA adapter serving, if any; vLLM lists it as its served
   * names' `root` in /v1/models. Default: unknown (answers start with the requested name, and
   * `root` is the primary served name).
   */
  modelPath?: string;
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
  /**
   * Prefill/decode disaggregation role: SGLang's (runtime 'sglang', the bootstrap handshake, pd.ts)
   * or vLLM NixlConnector's (runtime 'vllm': prefill = kv producer, decode = kv consumer, nixl.ts).
   */
  pdRole?: PdRole;
  /** SGLang prefill: the bootstrap listener's port on `host` (default 8998; 0 = any free port). */
  bootstrapPort?: number;
  /** SGLang: modelled ms either leg waits for its partner; default 300 000 (SGLang's 300 s). */
  bootstrapTimeoutMs?: number;
  /** vLLM prefill: the NIXL side channel's port on `host` (default 5600, `VLLM_NIXL_SIDE_CHANNEL_PORT`; 0 = any free port). */
  sideChannelPort?: number;
  /**
   * vLLM: modelled ms a prefill keeps KV no decode server reads before freeing it, and the longest
   * a decode server waits for a read; default 480 000 (`VLLM_NIXL_ABORT_REQUEST_TIMEOUT`, 480 s).
   */
  kvAbortTimeoutMs?: number;
  /**
   * Prefill: the speed of the link its KV goes out on, Gb/s; default one 400 Gb/s RDMA NIC per GPU
   * of the profile (`tensorParallelSize × 400`; kv-link.ts). A transfer takes prompt tokens ×
   * the profile's `kvBytesPerToken` over it.
   */
  kvLinkGbps?: number;
  /** Prefill: a fixed modelled KV transfer cost per prompt token (ms) instead of bytes over the link. */
  kvTransferMsPerToken?: number;
  /** `usage.prompt_tokens_details.cached_tokens` in answers; default true (see docs/simulator.md). */
  cacheReport?: boolean;
  /** Seed of the engine's step-time jitter (only with a profile `jitter` > 0). */
  seed?: number;
  /**
   * Triton server version `2.N` (runtime 'trtllm'): selects how `stream_options` is answered
   * (triton-version.ts). Default: the newest behaviour (2.63, 25.11: accepted).
   */
  tritonVersion?: string;
  /** gzip responses for clients that accept it (compress.ts); default false. */
  compress?: boolean;
  /** `/metrics` fault at start (metrics/page.ts `MetricsFault`); default 'none'. */
  metricsFault?: MetricsFault;
  /** Server-wide generation fault at start (faults.ts); default 'ok'. */
  fault?: GenerationFaultMode;
  /** Length of `/v1/embeddings` vectors; default 384, at most 16 384. */
  embeddingDimension?: number;
  /** Serve `POST /debug/prefix-match` (prefix-match.ts: the benchmark's oracle asks it); default false. */
  prefixMatch?: boolean;
  /**
   * Publish vLLM KV events over ZeroMQ (vLLM `--kv-events-config`; kv-events/): BlockStored,
   * BlockRemoved, AllBlocksCleared in EventBatches, a replay socket. Default off.
   */
  kvEvents?: SimKvEventsOptions;
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
  /** An SGLang prefill server's bootstrap listener port; undefined otherwise. */
  readonly bootstrapPort: number | undefined;
  /** A vLLM prefill server's NIXL side channel port; undefined otherwise. */
  readonly sideChannelPort: number | undefined;
  /** The KV-event publisher's bound endpoints and topic, when `kvEvents` is on. */
  readonly kvEvents: KvEventsInfo | undefined;
  /** SGLang prefill: a decode leg has registered for `room` at the bootstrap listener (the handshake began). */
  decodeRegistered(room: number): boolean;
  stats(): SimStats;
  /** The server-wide fault settings. */
  faults(): SimFaults;
  /** Changes the server-wide faults (the fields given); throws RangeError for a bad value. */
  setFaults(faults: Partial<SimFaults>): SimFaults;
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
  const tokenizer = options.tokenizer === undefined ? undefined : await SimTokenizer.load(options.tokenizer);
  let server: SimServer;
  try {
    server = new SimServer(options, tokenizer);
  } catch (err) {
    tokenizer?.close();
    throw err;
  }
  try {
    await server.listen();
  } catch (err) {
    await server.close();
    throw err;
  }
  return server.handle();
}

/** A URL path segment decoded; a malformed escape is kept as sent (never a thrown URIError). */
function decodePathSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** The generation routes (their bodies count in `stats().received`). */
type GenerationRoute = 'chat' | 'completions' | 'responses' | 'embeddings';

class SimServer implements ExchangeHost {
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
  readonly nixl: NixlSideChannel | undefined;
  readonly kvAbortTimeoutMs: number;
  /** Prefill roles: the link the KV leaves on. */
  readonly kvLink: KvLink | undefined;
  readonly counters: SimStats = { received: 0, served: 0, inFlight: 0, aborted: 0 };
  readonly faultSettings = new FaultSettings();
  /** vLLM V1's request counter (printed on its `no-stats` page). */
  readonly httpCounts: HttpRequestCounts | undefined;
  readonly tritonMinor: number;
  readonly embeddingDimension: number;
  /** Adapter name → `root` in /v1/models (its path when loaded at runtime). */
  readonly loraPaths = new Map<string, string>();
  readonly http: Server;
  /** KV-event publisher, from `listen` on (its topic names the bound port). */
  kvPublisher: KvEventPublisher | undefined;
  port = 0;
  #nextId = 1;
  #closing: Promise<void> | undefined;

  /** The model's real tokenizer (`tokenizer` option); undefined: the stand-in. */
  readonly tokenizer: SimTokenizer | undefined;

  constructor(options: SimServerOptions, tokenizer?: SimTokenizer) {
    this.options = options;
    this.tokenizer = tokenizer;
    this.runtime = options.runtime ?? 'vllm';
    this.face = FACES[this.runtime];
    if (this.face === undefined) throw new RangeError(`unknown runtime "${String(options.runtime)}"`);
    this.name = options.name;
    this.pdRole = options.pdRole;
    if (this.pdRole !== undefined && this.runtime !== 'sglang' && this.runtime !== 'vllm') {
      throw new RangeError('pdRole needs runtime sglang (SGLang prefill/decode disaggregation) or vllm (NixlConnector P/D)');
    }
    this.ownsClock = options.clock === undefined;
    this.clock = options.clock ?? new SimClock({ timeScale: options.timeScale ?? 1 });
    const models = options.model === undefined ? ['mymodel'] : typeof options.model === 'string' ? [options.model] : [...options.model];
    const loras = options.loras ?? [];
    try {
      this.engine = new Engine({
        model: models,
        ...(options.modelPath === undefined ? {} : { modelPath: options.modelPath }),
        loras,
        profile: profileOf(options.profile),
        clock: this.clock,
        ...(options.maxLoras === undefined ? {} : { maxLoras: options.maxLoras }),
        ...(options.overrides === undefined ? {} : { overrides: options.overrides }),
        ...(options.seed === undefined ? {} : { seed: options.seed }),
        ...(options.kvEvents === undefined ? {} : { onKvEvent: (e) => this.kvPublisher?.add(e) }),
        ...(tokenizer === undefined ? {} : { answerWords: tokenizer.answerWords }),
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
    this.httpCounts = this.runtime === 'vllm' ? new HttpRequestCounts() : undefined;
    this.metrics = createMetricsPage(this.runtime, {
      engine: this.engine,
      modelName: this.primaryModel,
      loraEnabled: this.loraEnabled,
      ...(this.httpCounts === undefined ? {} : { http: this.httpCounts }),
    });
    try {
      this.tritonMinor = this.#tritonMinor(options.tritonVersion);
      this.embeddingDimension = options.embeddingDimension ?? DEFAULT_EMBEDDING_DIMENSION;
      if (!Number.isInteger(this.embeddingDimension) || this.embeddingDimension < 1 || this.embeddingDimension > MAX_EMBEDDING_DIMENSION) {
        throw new RangeError(`embeddingDimension must be an integer from 1 to ${MAX_EMBEDDING_DIMENSION} (got ${String(options.embeddingDimension)})`);
      }
      const msPerToken = linkMsPerToken({ ...this.engine.profile, kvLinkGbps: options.kvLinkGbps, kvTransferMsPerToken: options.kvTransferMsPerToken });
      this.kvLink = this.pdRole === 'prefill' ? new KvLink(this.clock, msPerToken) : undefined;
      const bad = this.faultSettings.update({
        ...(options.fault === undefined ? {} : { generation: options.fault }),
        ...(options.metricsFault === undefined ? {} : { metrics: options.metricsFault }),
      });
      if (bad !== undefined) throw new RangeError(bad);
    } catch (err) {
      this.engine.close();
      if (this.ownsClock) this.clock.close();
      throw err;
    }
    this.bootstrapTimeoutMs = options.bootstrapTimeoutMs ?? DEFAULT_BOOTSTRAP_TIMEOUT_MS;
    this.kvAbortTimeoutMs = options.kvAbortTimeoutMs ?? DEFAULT_KV_ABORT_TIMEOUT_MS;
    const prefill = this.pdRole === 'prefill';
    this.nixl =
      prefill && this.runtime === 'vllm'
        ? new NixlSideChannel({
            clock: this.clock,
            name: this.name,
            host: options.host,
            tpSize: this.engine.profile.tensorParallelSize,
            link: this.kvLink as KvLink,
            abortTimeoutMs: this.kvAbortTimeoutMs,
          })
        : undefined;
    this.bootstrap =
      prefill && this.runtime === 'sglang'
        ? new BootstrapServer({
            clock: this.clock,
            name: this.name,
            timeoutMs: this.bootstrapTimeoutMs,
            link: this.kvLink as KvLink,
          })
        : undefined;
    this.http = createServer({ noDelay: true }, (req, res) => this.#dispatch(req, res));
    // CONNECT reaches no handler in Node (its 'connect' event): answered as FastAPI answers a method it does not route.
    refuseConnect(this.http, { allow: 'GET, POST', body: () => METHOD_NOT_ALLOWED_BODY });
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
    if (this.nixl !== undefined) await this.nixl.listen(this.options.sideChannelPort ?? DEFAULT_SIDE_CHANNEL_PORT);
    const kv = this.options.kvEvents;
    if (kv !== undefined) {
      this.kvPublisher = new KvEventPublisher({
        endpoint: kv.endpoint,
        replayEndpoint: kv.replayEndpoint ?? null,
        topic: kv.topic ?? defaultTopic(host, this.port, this.primaryModel),
        host,
        encoding: kv.encoding ?? 'array',
        hashes: kv.hashes ?? 'int',
        ...(kv.bufferSteps === undefined ? {} : { bufferSteps: kv.bufferSteps }),
        ...(kv.hwm === undefined ? {} : { hwm: kv.hwm }),
        dataParallelRank: kv.dataParallelRank ?? 0,
        toEpochMs: (ms) => this.clock.toEpochMs(ms),
      });
      await this.kvPublisher.start(this.clock.now());
    }
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
      sideChannelPort: this.nixl?.port,
      kvEvents: this.kvPublisher?.info,
      decodeRegistered: (room) => self.bootstrap?.decodeRegistered(room) ?? false,
      stats: () => ({ ...self.counters }),
      faults: () => self.faultSettings.snapshot(),
      setFaults: (faults) => {
        const bad = self.faultSettings.update(faults);
        if (bad !== undefined) throw new RangeError(bad);
        return self.faultSettings.snapshot();
      },
      close: () => self.close(),
    };
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = this.http.listening ? new Promise<void>((resolve) => this.http.close(() => resolve())) : Promise.resolve();
      this.http.closeAllConnections();
      await this.bootstrap?.close();
      await this.nixl?.close();
      this.engine.close();
      await this.kvPublisher?.close();
      this.tokenizer?.close();
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

  #tritonMinor(version: string | undefined): number {
    if (version === undefined) return TRITON_LATEST_MINOR;
    if (this.runtime !== 'trtllm') throw new RangeError('tritonVersion needs runtime trtllm');
    const minor = parseTritonVersion(version);
    if (minor === undefined) throw new RangeError(`tritonVersion must look like "2.59" (Triton server version; got "${version}")`);
    return minor;
  }

  // --- routes -----------------------------------------------------------------------------------

  #dispatch(req: IncomingMessage, res: ServerResponse): void {
    if (this.options.compress === true) compressResponse(req, res);
    res.setHeader('x-sim-pod', this.name);
    res.setHeader('x-sim-port', String(this.port));
    res.setHeader('x-sim-runtime', this.runtime);
    const path = pathOf(req);
    const method = req.method ?? 'GET';
    let handler: string | undefined;
    const counts = this.httpCounts;
    if (counts !== undefined) res.once('finish', () => counts.record(method, res.statusCode, handler));
    const route = (allowed: string, fn: () => void | Promise<void>): void => {
      handler = path.startsWith('/v1/models/') ? '/v1/models/{model_name}' : path;
      if (method !== allowed) return sendJson(res, 405, METHOD_NOT_ALLOWED_BODY);
      const out = fn();
      if (out instanceof Promise) {
        out.catch((err: unknown) => {
          if (!res.headersSent) this.sendError(res, this.face.error(500, `Internal server error: ${String(err)}`, 'InternalServerError'));
          else res.destroy();
        });
      }
    };
    if (path === '/v1/chat/completions') return route('POST', () => this.#generation(req, res, 'chat'));
    if (path === '/v1/completions') return route('POST', () => this.#generation(req, res, 'completions'));
    if (path === '/v1/responses' && this.face.responses) return route('POST', () => this.#generation(req, res, 'responses'));
    if (path === '/v1/embeddings') return route('POST', () => this.#generation(req, res, 'embeddings'));
    if (path === '/v1/models') return route('GET', () => this.#models(res));
    const retrieve = this.face.retrieveModel;
    if (path.startsWith('/v1/models/') && retrieve !== undefined) {
      const id = decodePathSegment(path.slice('/v1/models/'.length));
      return route('GET', () => this.sendError(res, retrieve(id, this.#modelEntries(), this.#created(), this.engine.profile.maxModelLen)));
    }
    if (path === '/metrics') return route('GET', () => send(res, 200, this.metrics.render(this.faultSettings.metrics), METRICS_CONTENT_TYPE));
    if (path === '/sim/faults') return route(method === 'POST' ? 'POST' : 'GET', () => this.#faultsRoute(req, res));
    if (this.face.healthPaths.includes(path) || (path === '/ping' && this.runtime.startsWith('vllm'))) {
      if (path === '/health_generate') return route('GET', () => this.#healthGenerate(res));
      return route(method === 'POST' && path === '/ping' ? 'POST' : 'GET', () => send(res, 200, '', 'application/json'));
    }
    if (path === '/reset_prefix_cache' && this.runtime.startsWith('vllm')) return route('POST', () => this.#resetPrefixCache(res, false));
    if (path === '/flush_cache' && this.runtime === 'sglang') return route(method === 'POST' ? 'POST' : 'GET', () => this.#resetPrefixCache(res, true));
    if (this.loraAdmin && path === '/v1/load_lora_adapter') return route('POST', () => this.#loadLora(req, res));
    if (this.options.prefixMatch === true && path === PREFIX_MATCH_PATH) return route('POST', () => prefixMatchRoute(req, res, this));
    if (this.loraAdmin && path === '/v1/unload_lora_adapter') return route('POST', () => this.#unloadLora(req, res));
    sendJson(res, 404, NOT_FOUND_BODY);
  }

  /** Unix seconds, modelled. */
  #created(): number {
    return Math.floor(this.clock.toEpochMs() / 1000);
  }

  /**
   * The served base names (their `root` the model path, as vLLM lists it, else the primary name),
   * then every adapter (its parent the primary base name, as vLLM lists them).
   */
  #modelEntries(): ModelEntry[] {
    const root = this.engine.modelPath ?? this.primaryModel;
    const entries: ModelEntry[] = this.engine.modelNames.map((id) => ({ id, parent: null, root }));
    for (const l of this.engine.loras) entries.push({ id: l, parent: this.primaryModel, root: this.loraPaths.get(l) ?? l });
    return entries;
  }

  #models(res: ServerResponse): void {
    sendJson(res, 200, this.face.models(this.#modelEntries(), this.#created(), this.engine.profile.maxModelLen));
  }

  /** `GET /sim/faults` shows the server-wide faults; `POST` changes them (JSON, the fields given). */
  async #faultsRoute(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'POST') {
      const body = parseObject((await readBody(req, 64 * 1024)) ?? '');
      const bad = body === undefined ? 'the body must be a JSON object such as {"generation": "hang"}' : this.faultSettings.update(body);
      if (bad !== undefined) return sendJson(res, 400, JSON.stringify({ error: bad }));
    }
    sendJson(res, 200, JSON.stringify(this.faultSettings.snapshot()));
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

  /**
   * vLLM `POST /reset_prefix_cache` (an empty 200) and SGLang `/flush_cache` (its text): drops the
   * cached blocks no request holds; with KV events on, publishes the change (engine.ts).
   */
  #resetPrefixCache(res: ServerResponse, sglang: boolean): void {
    this.engine.resetPrefixCache();
    if (!sglang) return send(res, 200, '', 'application/json');
    send(res, 200, 'Cache flushed.\nPlease check backend logs for more details. (When there are running or waiting requests, the operation will not be performed.)\n', 'text/plain; charset=utf-8');
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

  /** The fault of this request: its `x-sim-fault` header, else the server-wide one; undefined for a bad header. */
  #faultOf(req: IncomingMessage): GenerationFault | undefined {
    const header = req.headers['x-sim-fault'];
    if (header === undefined) return this.faultSettings.generation;
    return parseGenerationFault(Array.isArray(header) ? (header[0] ?? '') : header);
  }

  /**
   * A generation route: read the body, apply a fault, validate, then hand the request to an
   * Exchange (or, for embeddings, an EmbeddingJob).
   */
  async #generation(req: IncomingMessage, res: ServerResponse, route: GenerationRoute): Promise<void> {
    const text = await readBody(req);
    this.counters.received++;
    const body = text === undefined ? undefined : parseObject(text);
    const error = route === 'responses' ? this.face.responsesError : this.face.error;

    const fault = this.#faultOf(req);
    if (fault === undefined) return this.sendError(res, error(400, `x-sim-fault: ${generationFaultHelp(String(req.headers['x-sim-fault']))}`, 'BadRequestError'));
    switch (fault.kind) {
      case 'hang':
        new RequestLife(this.counters, res);
        return;
      case 'hang-after-headers':
        new RequestLife(this.counters, res);
        res.writeHead(200, body?.['stream'] === true ? SSE_HEADERS : { 'content-type': 'application/json' });
        res.flushHeaders();
        return;
      case 'drop-after-body':
        req.socket.destroy();
        return;
      case 'status':
        return this.sendError(res, this.face.statusError(fault.status, `Simulated fault: HTTP ${fault.status}.`));
      default:
        break;
    }

    if (text === undefined) return this.sendError(res, error(413, 'Request body too large.', 'BadRequestError'));
    if (body === undefined) return this.sendError(res, error(400, 'The request body must be a JSON object.', 'BadRequestError'));
    const modelField = body['model'];
    // A header carries what a client sent only if it is a valid header value (bounded, visible ASCII).
    res.setHeader('x-sim-model', typeof modelField === 'string' && /^[\x20-\x7e]{0,256}$/.test(modelField) ? modelField : '');
    if (route === 'embeddings') return this.#embed(res, body, fault.kind === 'stall-mid-stream');
    if (this.runtime === 'trtllm') {
      const refused = tritonStreamOptionsRefusal(this.tritonMinor, body);
      if (refused !== undefined) return this.sendError(res, refused);
    }
    let echo: ResponsesEcho | undefined;
    let g: GenerateRequest;
    if (route === 'responses') {
      const parsed = parseResponses(body, this.face, this.primaryModel);
      if (!parsed.ok) return this.sendError(res, error(parsed.status, parsed.message, parsed.type));
      g = parsed.request;
      echo = parsed.echo;
    } else {
      const parsed = parseGenerate(body, route === 'chat', this.face, this.primaryModel);
      if (!parsed.ok) return this.sendError(res, error(parsed.status, parsed.message, parsed.type));
      g = parsed.request;
    }

    let leg: PdLeg | undefined;
    if (this.pdRole !== undefined) {
      const maxBlocks = Math.ceil(this.engine.profile.maxModelLen / this.engine.profile.blockSize);
      const parsed = parsePdLeg(body, this.runtime === 'sglang' ? 'sglang' : 'vllm', this.pdRole, g.stream, maxBlocks);
      if (!parsed.ok) return this.sendError(res, error(400, parsed.message, 'BadRequestError'));
      leg = parsed.leg;
    }

    let realTokens: readonly number[] | undefined;
    if (this.tokenizer !== undefined && g.promptTokens === undefined) {
      try {
        realTokens = await this.tokenizer.promptTokens(g);
      } catch (err) {
        const r = tokenizeRefusal(err);
        return this.sendError(res, route === 'responses' ? this.face.responsesError(r.status, r.message, r.type) : this.face.error(r.status, r.message, r.type));
      }
    }
    const promptTokens = g.promptTokens ?? realTokens;
    const engineReq: EngineRequest = {
      model: g.model,
      ...(promptTokens !== undefined ? { promptTokens } : { prompt: g.prompt ?? '' }),
      ...(g.maxTokens === undefined ? {} : { maxTokens: g.maxTokens }),
      ...(g.ignoreEos ? { ignoreEos: true } : {}),
      ...(g.cacheSalt === undefined ? {} : { cacheSalt: g.cacheSalt }),
      ...engineFlags(leg),
    };
    const check = this.engine.check(engineReq);
    if (!check.ok) return this.sendError(res, this.#checkError(check.error, g.model, route));
    if (req.headers['x-sim-reset'] === 'before-headers') {
      req.socket.destroy();
      return;
    }
    const checked = check.request;
    // Tokenised once: the ids go to `submit`. A counted prompt goes as it came (counting is O(1)).
    const { prompt: _text, ...rest } = engineReq;
    const header =
      this.tokenizer === undefined
        ? undefined
        : await this.tokenizer.header(answerHeader(g.model, { modelPath: this.engine.modelPath, adapter: checked.adapter })).catch(() => undefined);
    const submitted: EngineRequest = { ...(checked.promptTokens === undefined ? engineReq : { ...rest, promptTokens: checked.promptTokens }), ...(header === undefined ? {} : { answerHeader: header }) };
    const created = this.#created();
    const sink: AnswerSink =
      echo === undefined
        ? new AnswerWriter(res, {
            face: this.face,
            chat: route === 'chat',
            stream: g.stream,
            includeUsage: g.includeUsage,
            cacheReport: this.cacheReport,
            model: g.model,
            id: this.nextId(route === 'chat' ? this.face.chatIdPrefix : 'cmpl-'),
            created,
          })
        : new ResponsesWriter(res, { stream: g.stream, id: this.nextId('resp_'), messageId: this.nextId('msg_'), createdAt: created, model: g.model, echo });
    const mode = fault.kind === 'stall-mid-stream' ? 'stall' : req.headers['x-sim-reset'] === 'mid-stream' ? 'reset' : undefined;
    let cut: AnswerCut | undefined;
    if (mode !== undefined) {
      const tokens =
        engineReq.prefillOnly === true ? 1 : answerLength(naturalAnswerLength(answerSeed(checked.promptTokens ?? checked.promptLength, g.model)), checked.maxTokens, g.ignoreEos).tokens;
      cut = { at: Math.max(1, Math.ceil(tokens / 2)), mode };
    }
    await new Exchange(this, req, res, sink, submitted, leg, cut).run();
  }

  /** The face's answer to a request the engine refuses. */
  #checkError(e: CheckError, model: string, route: GenerationRoute): ErrorAnswer {
    const message = checkErrorMessage(e);
    if (route === 'responses') return this.face.responsesError(checkErrorStatus(e), message, checkErrorType(e));
    return e.kind === 'unknown_model' ? this.face.unknownModel(model, message) : this.face.error(checkErrorStatus(e), message, checkErrorType(e));
  }

  /** `/v1/embeddings`: every input checked by the engine, then one EmbeddingJob. */
  #embed(res: ServerResponse, body: Readonly<Record<string, unknown>>, stall: boolean): void {
    if (this.face.embeddings === 'refused') {
      const model = typeof body['model'] === 'string' ? body['model'] : this.primaryModel;
      const message = this.engine.check({ model, prompt: 'x', maxTokens: 1 }).ok
        ? `Model '${model}' cannot create embeddings: only the vLLM backend serves /v1/embeddings, and this model runs on TensorRT-LLM.`
        : `Unknown model: ${model}`;
      return this.sendError(res, this.face.error(400, message, 'BadRequestError'));
    }
    const parsed = parseEmbeddings(body, this.primaryModel, this.embeddingDimension);
    if (!parsed.ok) return this.sendError(res, this.face.error(parsed.status, parsed.message, parsed.type));
    const request = parsed.request;
    const prompts: Array<readonly number[]> = [];
    for (const input of request.inputs) {
      const check = this.engine.check({ model: request.model, maxTokens: 1, prefillOnly: true, ...('text' in input ? { prompt: input.text } : { promptTokens: input.tokens }) });
      if (!check.ok && check.error.kind === 'context_length') {
        // vLLM's wording for pooling requests (serving_engine.py `_validate_input`).
        const e = check.error;
        const message = `This model's maximum context length is ${e.maxModelLen} tokens. However, you requested ${e.promptTokens} tokens in the input for embedding generation. Please reduce the length of the input.`;
        return this.sendError(res, this.face.error(400, message, 'BadRequestError'));
      }
      if (!check.ok) return this.sendError(res, this.#checkError(check.error, request.model, 'embeddings'));
      // An embedding is drawn from the input's ids, even where the engine only counts prompts.
      prompts.push(check.request.promptTokens ?? ('text' in input ? tokenize(input.text) : input.tokens));
    }
    const id = this.runtime.startsWith('vllm') ? this.nextId('embd-') : undefined;
    new EmbeddingJob(this, res, request, { id, created: this.#created(), dimension: this.embeddingDimension, stall }).run(prompts);
  }
}
