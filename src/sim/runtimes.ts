/**
 * What differs between the simulated runtimes on the outside: error bodies, validation wording,
 * health routes, `/v1/models` cards and a few response details (the OpenAI API reference; vLLM vllm/entrypoints/openai/api_server.py; vLLM ≥ 0.10.1 nests errors under "error", vllm-project/vllm PR #22099; SGLang's and Triton's own shapes; vLLM's and SGLang's /health and /health_generate routes).
 * The metric pages live in metrics/. Everything here is data plus tiny formatters, so a face is
 * one table entry, not a branch in the request handler.
 */
import { statusPhrase } from './http.js';

/** The simulated runtimes: vLLM V1 (≥ 0.10.1), vLLM V0 (0.6.x), SGLang, Triton + TensorRT-LLM (OpenAI frontend). */
export type SimRuntime = 'vllm' | 'vllm-v0' | 'sglang' | 'trtllm';

export const SIM_RUNTIMES: readonly SimRuntime[] = ['vllm', 'vllm-v0', 'sglang', 'trtllm'];

export function isSimRuntime(value: string): value is SimRuntime {
  return (SIM_RUNTIMES as readonly string[]).includes(value);
}

/** An error answer: status and JSON body text. */
export interface ErrorAnswer {
  readonly status: number;
  readonly body: string;
}

/** One `/v1/models` entry before a face formats it. */
export interface ModelEntry {
  readonly id: string;
  /** Base model of a LoRA adapter; null for a base model. */
  readonly parent: string | null;
  /** vLLM `root`: the model path (the primary name when the server knows none) or the adapter's path. */
  readonly root: string;
}

export interface Face {
  readonly runtime: SimRuntime;
  /** Default port of the real server (documentation and the CLI help). */
  readonly defaultPort: number;
  /** GET routes answering 200 with an empty body while the engine runs. */
  readonly healthPaths: readonly string[];
  /** `/v1/load_lora_adapter` and `/v1/unload_lora_adapter` exist (vLLM only, and only when enabled). */
  readonly loraAdmin: boolean;
  /** `max_tokens` when the client sends none; undefined = fill the context (vLLM, SGLang). */
  readonly defaultMaxTokens: number | undefined;
  /** Id prefix of chat completions (`chatcmpl-`; Triton uses `cmpl-` for both routes). */
  readonly chatIdPrefix: string;
  /** Triton's OpenAI frontend reports `finish_reason: "stop"` for every finished answer. */
  readonly alwaysStop: boolean;
  /** The message for `stream_options` without `stream: true`. */
  readonly streamOptionsMessage: string;
  /** An error answer; `type` is vLLM's error type (BadRequestError, NotFoundError, …). */
  error(status: number, message: string, type: string): ErrorAnswer;
  /** The answer for a model the server does not serve. */
  unknownModel(model: string, engineMessage: string): ErrorAnswer;
  /** The `/v1/models` body. */
  models(entries: readonly ModelEntry[], created: number, maxModelLen: number): string;
  /**
   * `GET /v1/models/{id}`: the card (status 200) or the server's 404; undefined where the server
   * has no such route (vLLM's OpenAI server lists models only).
   */
  readonly retrieveModel: ((id: string, entries: readonly ModelEntry[], created: number, maxModelLen: number) => ErrorAnswer) | undefined;
  /** `POST /v1/responses` exists (vLLM V1 since 0.10, SGLang); elsewhere FastAPI's 404. */
  readonly responses: boolean;
  /** Error bodies of `/v1/responses` (SGLang answers that route in the nested OpenAI shape). */
  responsesError(status: number, message: string, type: string): ErrorAnswer;
  /**
   * `POST /v1/embeddings`: 'served', or 'refused' where the route exists but the backend cannot
   * embed (Triton's frontend with TensorRT-LLM: only its vLLM backend serves embeddings).
   */
  readonly embeddings: 'served' | 'refused';
  /** An error with exactly `status` in this face's shape (the `status:<code>` fault). */
  statusError(status: number, message: string): ErrorAnswer;
}

const j = JSON.stringify;

/** vLLM ≥ 0.10.1: `{"error":{…}}` (vllm-project/vllm PR #22099). */
function nestedError(status: number, message: string, type: string): ErrorAnswer {
  return { status, body: `{"error":{"message":${j(message)},"type":${j(type)},"param":null,"code":${status}}}` };
}

/** vLLM ≤ 0.10.0: the same fields at the top level with `"object":"error"`. */
function flatError(status: number, message: string, type: string): ErrorAnswer {
  return { status, body: `{"object":"error","message":${j(message)},"type":${j(type)},"param":null,"code":${status}}` };
}

function vllmModels(entries: readonly ModelEntry[], created: number, maxModelLen: number): string {
  const data = entries.map((e, i) => vllmCard(e, i, created, maxModelLen));
  return j({ object: 'list', data });
}

function vllmCard(e: ModelEntry, i: number, created: number, maxModelLen: number): Record<string, unknown> {
  return {
    id: e.id,
    object: 'model',
    created,
    owned_by: 'vllm',
    root: e.root,
    parent: e.parent,
    max_model_len: e.parent === null ? maxModelLen : null,
    permission: [
      {
        id: `modelperm-sim${i}`,
        object: 'model_permission',
        created,
        allow_create_engine: false,
        allow_sampling: true,
        allow_logprobs: true,
        allow_search_indices: false,
        allow_view: true,
        allow_fine_tuning: false,
        organization: '*',
        group: null,
        is_blocking: false,
      },
    ],
  };
}

/** vLLM's error type for a status: its own names where it has one, else the reason phrase + "Error". */
function vllmErrorType(status: number): string {
  if (status === 400) return 'BadRequestError';
  if (status === 404) return 'NotFoundError';
  if (status === 500) return 'InternalServerError';
  return `${statusPhrase(status).replace(/[^A-Za-z]/g, '')}Error`;
}

const VLLM_STREAM_OPTIONS = 'Stream options can only be defined when `stream=True`.';

const VLLM: Face = {
  runtime: 'vllm',
  defaultPort: 8000,
  healthPaths: ['/health'],
  loraAdmin: true,
  defaultMaxTokens: undefined,
  chatIdPrefix: 'chatcmpl-',
  alwaysStop: false,
  streamOptionsMessage: VLLM_STREAM_OPTIONS,
  error: nestedError,
  unknownModel: (_model, message) => nestedError(404, message, 'NotFoundError'),
  models: vllmModels,
  retrieveModel: undefined,
  responses: true,
  responsesError: nestedError,
  embeddings: 'served',
  statusError: (status, message) => nestedError(status, message, vllmErrorType(status)),
};

const VLLM_V0: Face = {
  ...VLLM,
  runtime: 'vllm-v0',
  error: flatError,
  unknownModel: (_model, message) => flatError(404, message, 'NotFoundError'),
  // vLLM 0.6.x predates the Responses API (served since 0.10).
  responses: false,
  statusError: (status, message) => flatError(status, message, vllmErrorType(status)),
};

/** SGLang's `ErrorResponse`: flat, `type` is the HTTP reason phrase (sgl-project/sglang: python/sglang/srt/entrypoints/openai/protocol.py ErrorResponse). */
function sglangError(status: number, message: string): ErrorAnswer {
  return flatError(status, message, statusPhrase(status));
}

const SGLANG: Face = {
  runtime: 'sglang',
  defaultPort: 30000,
  healthPaths: ['/health', '/health_generate'],
  loraAdmin: false,
  defaultMaxTokens: undefined,
  chatIdPrefix: 'chatcmpl-',
  alwaysStop: false,
  streamOptionsMessage: VLLM_STREAM_OPTIONS,
  error: (status, message) => sglangError(status, message),
  unknownModel: (_model, message) => sglangError(404, message),
  models: (entries, created, maxModelLen) => j({ object: 'list', data: entries.map((e) => sglangCard(e, created, maxModelLen)) }),
  retrieveModel: (id, entries, created, maxModelLen) => {
    // SGLang looks the name up among its served model names only, not its adapters.
    const base = entries.find((e) => e.parent === null && e.id === id);
    if (base === undefined) {
      return { status: 404, body: j({ error: { message: `The model '${id}' does not exist`, type: 'invalid_request_error', param: 'model', code: 'model_not_found' } }) };
    }
    return { status: 200, body: j({ ...sglangCard(base, created, maxModelLen), root: id }) };
  },
  responses: true,
  responsesError: nestedError,
  embeddings: 'served',
  statusError: (status, message) => sglangError(status, message),
};

/**
 * SGLang's `ModelCard`; adapters have no `max_model_len`, and a served name's `root` is the served
 * name itself, not the model path (sgl-project/sglang: http_server.py `available_models`).
 */
function sglangCard(e: ModelEntry, created: number, maxModelLen: number): Record<string, unknown> {
  return { id: e.id, object: 'model', created, owned_by: 'sglang', root: e.parent === null ? e.id : e.root, parent: e.parent, max_model_len: e.parent === null ? maxModelLen : null };
}

/**
 * Triton's OpenAI frontend turns every engine exception into FastAPI's `{"detail": "<message>"}`
 * with status 400 (triton-inference-server/server: python/openai/openai_frontend/frontend/fastapi/
 * routers/chat.py, completions.py); server-side failures keep their 5xx.
 */
function tritonError(status: number, message: string): ErrorAnswer {
  return { status: status < 500 ? 400 : status, body: j({ detail: message }) };
}

const TRTLLM: Face = {
  runtime: 'trtllm',
  defaultPort: 9000,
  healthPaths: ['/health/ready'],
  loraAdmin: false,
  // openai_frontend/main.py `--default-max-tokens` 16.
  defaultMaxTokens: 16,
  chatIdPrefix: 'cmpl-',
  alwaysStop: true,
  streamOptionsMessage: '`stream_options` can only be used when `stream` is True',
  error: (status, message) => tritonError(status, message),
  unknownModel: (model) => tritonError(400, `Unknown model: ${model}`),
  // The frontend lists Triton's models; adapters only with the vLLM backend (as `<model><sep><lora>`),
  // so a TensorRT-LLM server lists its base model(s) alone.
  models: (entries, created) => j({ object: 'list', data: entries.filter((e) => e.parent === null).map((e) => tritonCard(e.id, created)) }),
  // routers/models.py: `GET /v1/models/{model_name}` searches the listed models.
  retrieveModel: (id, entries, created) =>
    entries.some((e) => e.parent === null && e.id === id) ? { status: 200, body: j(tritonCard(id, created)) } : { status: 404, body: j({ detail: `Unknown model: ${id}` }) },
  responses: false,
  responsesError: (status, message) => tritonError(status, message),
  embeddings: 'refused',
  statusError: (status, message) => ({ status, body: j({ detail: message }) }),
};

function tritonCard(id: string, created: number): Record<string, unknown> {
  return { id, object: 'model', created, owned_by: 'Triton Inference Server' };
}

export const FACES: { readonly [R in SimRuntime]: Face } = {
  vllm: VLLM,
  'vllm-v0': VLLM_V0,
  sglang: SGLANG,
  trtllm: TRTLLM,
};

/** FastAPI's answer for a route that does not exist (all three servers are FastAPI apps). */
export const NOT_FOUND_BODY = '{"detail":"Not Found"}';
export const METHOD_NOT_ALLOWED_BODY = '{"detail":"Method Not Allowed"}';
