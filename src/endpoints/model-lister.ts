import { Agent, type Dispatcher } from 'undici';
import type { Endpoint, ServedModel } from '../core/endpoint.js';
import { readBoundedText } from './bounded-read.js';

/** Listing settings; every field has a default. */
export interface ModelListOptions {
  /** Time between two listings of one endpoint. Default 30 000 ms: adapters load and unload rarely. */
  readonly intervalMs?: number;
  /** A listing slower than this fails (the previous list is kept). Default 2000 ms. */
  readonly timeoutMs?: number;
}

/** Entries kept per endpoint at most; a server listing more is cut (and said so once). */
export const MAX_MODELS_PER_ENDPOINT = 256;
/** Longest model id kept (the gateway refuses longer `model` names anyway). */
const MAX_ID = 256;
/** A `/v1/models` body larger than this is not read. */
const MAX_BODY_BYTES = 1024 * 1024;

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * The models a `/v1/models` body lists (vLLM, SGLang, Triton and trtllm-serve all answer the
 * OpenAI `ModelList`, the OpenAI API reference; vLLM vllm/entrypoints/openai/api_server.py): ids, and for vLLM's LoRA cards the base model in
 * `parent`. Malformed entries are skipped; at most MAX_MODELS_PER_ENDPOINT are kept.
 */
export function parseModelList(text: string): ServedModel[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return [];
  }
  const data = isRecord(json) ? json['data'] : undefined;
  if (!Array.isArray(data)) return [];
  const out: ServedModel[] = [];
  for (const item of data) {
    if (out.length >= MAX_MODELS_PER_ENDPOINT) break;
    if (!isRecord(item)) continue;
    const id = item['id'];
    if (typeof id !== 'string' || id === '' || id.length > MAX_ID) continue;
    const parent = typeof item['parent'] === 'string' && item['parent'] !== id && item['parent'].length <= MAX_ID ? item['parent'] : null;
    const ownedBy = typeof item['owned_by'] === 'string' && item['owned_by'].length <= MAX_ID ? item['owned_by'] : undefined;
    out.push({ id, parent, ...(ownedBy === undefined ? {} : { ownedBy }) });
  }
  return out;
}

/**
 * Keeps every endpoint's `servedModels` current from its own `GET /v1/models`: what the pods
 * serve, base models and loaded LoRA adapters, so the gateway can list them to clients and map an
 * adapter to its base model. One slow loop per endpoint; a failed listing keeps the last list.
 */
export class ModelLister {
  readonly #timers = new Map<Endpoint, NodeJS.Timeout>();
  readonly #interval: number;
  readonly #timeout: number;
  readonly #dispatcher: Dispatcher;
  readonly #onChange: (endpoint: Endpoint) => void;

  /** `onChange` is told of each endpoint whose list changed (its `servedModels` is the new one). */
  constructor(options: ModelListOptions = {}, onChange: (endpoint: Endpoint) => void = () => undefined) {
    this.#interval = options.intervalMs ?? 30_000;
    this.#timeout = options.timeoutMs ?? 2000;
    this.#onChange = onChange;
    this.#dispatcher = new Agent({ connections: 1, keepAliveTimeout: 4000, headersTimeout: this.#timeout, bodyTimeout: this.#timeout });
  }

  /** Starts listing endpoints not yet listed (at once) and stops those no longer given. */
  sync(endpoints: Iterable<Endpoint>): void {
    const wanted = new Set(endpoints);
    for (const [endpoint, timer] of this.#timers) {
      if (wanted.has(endpoint)) continue;
      clearTimeout(timer);
      this.#timers.delete(endpoint);
    }
    for (const endpoint of wanted) if (!this.#timers.has(endpoint)) this.#schedule(endpoint, 0);
  }

  /** Starts listing `added` (at once) and stops `removed`: costs O(the change), not O(all endpoints). */
  update(added: Iterable<Endpoint>, removed: Iterable<Endpoint>): void {
    for (const endpoint of removed) {
      clearTimeout(this.#timers.get(endpoint));
      this.#timers.delete(endpoint);
    }
    for (const endpoint of added) if (!this.#timers.has(endpoint)) this.#schedule(endpoint, 0);
  }

  /** Lists one endpoint now; true when its list changed. */
  async listOnce(endpoint: Endpoint): Promise<boolean> {
    try {
      const res = await this.#dispatcher.request({ origin: endpoint.origin, path: '/v1/models', method: 'GET', signal: AbortSignal.timeout(this.#timeout) });
      if (res.statusCode !== 200) {
        await res.body.dump();
        return false;
      }
      // Declared or not (chunked, compressed), no more than MAX_BODY_BYTES is read.
      const text = await readBoundedText(res, MAX_BODY_BYTES);
      if (typeof text !== 'string') return false;
      // The server answers: a new endpoint may get traffic (for a runtime without metrics too).
      endpoint.contacted();
      const models = parseModelList(text);
      const before = JSON.stringify(endpoint.servedModels ?? []);
      endpoint.servedModels = models;
      return JSON.stringify(models) !== before;
    } catch {
      return false;
    }
  }

  #schedule(endpoint: Endpoint, delayMs: number): void {
    const timer = setTimeout(() => {
      void this.listOnce(endpoint).then((changed) => {
        if (changed) this.#onChange(endpoint);
        if (this.#timers.get(endpoint) === timer) this.#schedule(endpoint, this.#interval * (0.9 + Math.random() * 0.2));
      });
    }, delayMs);
    timer.unref();
    this.#timers.set(endpoint, timer);
  }

  async close(): Promise<void> {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    // A listing in flight is of no use any more: ended, not waited for (up to its timeout).
    await this.#dispatcher.destroy();
  }
}
