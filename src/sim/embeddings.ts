/**
 * `POST /v1/embeddings` (vLLM V1 and V0, SGLang): request fields, deterministic vectors and the
 * response (the OpenAI API reference; vLLM vllm/entrypoints/openai/api_server.py).
 *
 * Each input is a prefill-only request through the engine: it waits in the queue, takes engine
 * steps and KV blocks like any prompt, and produces no text. (The engine's prefill-only mode
 * samples one token at the end of the prefill; the face discards it, but the engine's counters,
 * e.g. `generation_tokens`, count it.)
 *
 * The vector depends only on the model name and the input's tokens: a PRNG seeded by their hash
 * draws `dimension` values in [-1, 1), scaled to unit length and rounded to float32. `dimensions`
 * keeps the first N values and scales them to unit length again (the Matryoshka way vLLM and
 * OpenAI shorten embeddings). `encoding_format: "base64"` is the float32 values, little-endian,
 * base64-encoded (what OpenAI sends and the official clients ask for by default).
 */
import type { ServerResponse } from 'node:http';
import { seededRandom } from '../core/weighted.js';
import { fmix32, fnv1a32, type EngineRequest, type RequestHandle } from './engine/index.js';
import { RequestLife, type ExchangeHost } from './exchange.js';
import { truncateEnd } from './faults.js';
import type { ParseResult } from './openai.js';

/** Vector length when the server is not told otherwise (many small sentence-embedding models use 384). */
export const DEFAULT_EMBEDDING_DIMENSION = 384;
/** Largest `embeddingDimension` a server accepts (a bound). */
export const MAX_EMBEDDING_DIMENSION = 16_384;
/** Inputs per request (OpenAI's limit for one embeddings request). */
export const MAX_EMBEDDING_INPUTS = 2048;

/** One input: text, or token ids sent by the client. */
export type EmbeddingInput = { readonly text: string } | { readonly tokens: readonly number[] };

/** A validated embeddings request. */
export interface EmbeddingRequest {
  readonly model: string;
  readonly inputs: readonly EmbeddingInput[];
  readonly format: 'float' | 'base64';
  /** Requested length (≤ the server's dimension); undefined = the full vector. */
  readonly dimensions: number | undefined;
}

/** An embeddings request read, or the 400 to answer. */
export type EmbeddingParse = { readonly ok: true; readonly request: EmbeddingRequest } | Extract<ParseResult, { ok: false }>;

const bad = (message: string): EmbeddingParse => ({ ok: false, status: 400, message, type: 'BadRequestError' });

const isTokenId = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) < 2 ** 32;

/** The inputs of `input`: a string, a list of strings, a list of token ids, or a list of token-id lists. */
function readInputs(input: unknown): EmbeddingInput[] | string {
  if (typeof input === 'string') return input === '' ? 'input must not be empty.' : [{ text: input }];
  if (!Array.isArray(input) || input.length === 0) return 'input must be a non-empty string, list of strings, list of token ids, or list of token-id lists.';
  if (input.length > MAX_EMBEDDING_INPUTS) return `input has ${input.length} items; at most ${MAX_EMBEDDING_INPUTS} per request.`;
  if (input.every((x) => typeof x === 'number')) return input.every(isTokenId) ? [{ tokens: input as number[] }] : 'token ids must be integers from 0 to 2^32 - 1.';
  const out: EmbeddingInput[] = [];
  for (const [i, x] of input.entries()) {
    if (typeof x === 'string') {
      if (x === '') return `input[${i}] must not be empty.`;
      out.push({ text: x });
    } else if (Array.isArray(x) && x.length > 0 && x.every(isTokenId)) {
      out.push({ tokens: x as number[] });
    } else {
      return `input[${i}] must be a non-empty string or a non-empty list of token ids (integers from 0 to 2^32 - 1).`;
    }
  }
  return out;
}

/** Reads an embeddings request for a server whose vectors have `dimension` values. */
export function parseEmbeddings(body: Readonly<Record<string, unknown>>, defaultModel: string, dimension: number): EmbeddingParse {
  const model = body['model'] ?? defaultModel;
  if (typeof model !== 'string') return bad('model must be a string.');
  const format = body['encoding_format'] ?? 'float';
  if (format !== 'float' && format !== 'base64') return bad('encoding_format must be "float" or "base64".');
  const dims = body['dimensions'] ?? null;
  if (dims !== null && (!Number.isInteger(dims) || (dims as number) < 1 || (dims as number) > dimension)) {
    return bad(`dimensions must be an integer from 1 to ${dimension} (this model's embedding size).`);
  }
  const inputs = readInputs(body['input']);
  if (typeof inputs === 'string') return bad(inputs);
  return { ok: true, request: { model, inputs, format, dimensions: dims === null ? undefined : (dims as number) } };
}

/** The unit-length float32 vector of `tokens` under `model` (see the file comment), `length` values long. */
export function embeddingVector(tokens: readonly number[], model: string, dimension: number, length = dimension): number[] {
  let h = fnv1a32(model);
  for (const t of tokens) h = fmix32((h ^ t) >>> 0);
  const random = seededRandom(h);
  const raw: number[] = [];
  for (let i = 0; i < dimension; i++) raw.push(random() * 2 - 1);
  const kept = raw.slice(0, length);
  const norm = Math.sqrt(kept.reduce((sum, x) => sum + x * x, 0)) || 1;
  return kept.map((x) => Math.fround(x / norm));
}

/** The vector as the client asked for it: numbers, or base64 of little-endian float32. */
export function encodeEmbedding(v: readonly number[], format: 'float' | 'base64'): number[] | string {
  if (format === 'float') return [...v];
  const bytes = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => bytes.writeFloatLE(x, i * 4));
  return bytes.toString('base64');
}

/** How the response is labelled. */
export interface EmbeddingMeta {
  /** `embd-…`; vLLM prints `id` and `created`, SGLang neither (undefined). */
  readonly id: string | undefined;
  /** Unix seconds (modelled). */
  readonly created: number;
  readonly dimension: number;
  /** The `stall-mid-stream` fault: half of the body, then nothing. */
  readonly stall: boolean;
}

/**
 * Runs the inputs of one embeddings request through the engine at once (one prefill-only engine
 * request per input, as vLLM schedules a batch of prompts) and answers when the last finishes.
 * The inputs were checked by the engine (`promptTokens` of each).
 */
export class EmbeddingJob {
  readonly #srv: ExchangeHost;
  readonly #res: ServerResponse;
  readonly #request: EmbeddingRequest;
  readonly #meta: EmbeddingMeta;
  readonly #life: RequestLife;
  readonly #handles: RequestHandle[] = [];

  constructor(srv: ExchangeHost, res: ServerResponse, request: EmbeddingRequest, meta: EmbeddingMeta) {
    this.#srv = srv;
    this.#res = res;
    this.#request = request;
    this.#meta = meta;
    this.#life = new RequestLife(srv.counters, res, () => {
      for (const h of this.#handles) h.abort();
    });
  }

  /** Submits every input (`prompts[i]` = the token ids of input i). */
  run(prompts: readonly (readonly number[])[]): void {
    const srv = this.#srv;
    const vectors: Array<number[] | string> = [];
    let pending = prompts.length;
    let promptTokens = 0;
    prompts.forEach((tokens, index) => {
      if (this.#life.done) return;
      const submitMs = srv.clock.now();
      const engineReq: EngineRequest = { model: this.#request.model, promptTokens: tokens, maxTokens: 1, prefillOnly: true };
      try {
        this.#handles.push(
          srv.engine.submit(engineReq, {
            // The one sampled token is not part of an embedding; the metrics page still sees it.
            onToken: (_text, i) => srv.metrics.token(i, srv.clock.now() - submitMs, 0),
            onFinish: (result) => {
              srv.metrics.finished(result);
              if (this.#life.done) return;
              if (result.finishReason === 'abort') return this.#life.destroy();
              promptTokens += result.promptTokens;
              const v = embeddingVector(tokens, this.#request.model, this.#meta.dimension, this.#request.dimensions ?? this.#meta.dimension);
              vectors[index] = encodeEmbedding(v, this.#request.format);
              if (--pending === 0) this.#answer(vectors, promptTokens);
            },
          }),
        );
        srv.metrics.submitted();
      } catch (err) {
        for (const h of this.#handles) h.abort();
        if (!this.#life.done) {
          srv.sendError(this.#res, srv.face.error(500, `the engine refused the request: ${String(err)}`, 'InternalServerError'));
          this.#life.end('none');
        }
      }
    });
  }

  #answer(vectors: ReadonlyArray<number[] | string>, promptTokens: number): void {
    const m = this.#meta;
    const data = vectors.map((embedding, index) => ({ object: 'embedding', index, embedding }));
    const usage = { prompt_tokens: promptTokens, total_tokens: promptTokens, completion_tokens: 0, prompt_tokens_details: null };
    const head = m.id === undefined ? {} : { id: m.id, created: m.created };
    const body = JSON.stringify({ ...head, object: 'list', model: this.#request.model, data, usage });
    if (m.stall) truncateEnd(this.#res);
    this.#res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    this.#res.end(body);
    if (!m.stall) this.#life.end('served');
  }
}
