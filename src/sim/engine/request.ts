/**
 * The request contract between the engine and its HTTP faces: what a face submits, what it gets
 * back, and the validation a face must run *before* submitting so it can answer with the right
 * OpenAI error (unknown model ⇒ 404, context too long ⇒ 400).
 */

import type { AnswerPieces } from './output.js';

/** One generation request. Exactly one of `prompt` / `promptTokens` must be given. */
export interface EngineRequest {
  /** Id for logs and results; the engine makes one up when absent. */
  id?: string;
  /** A served base-model name or a LoRA adapter name (the adapter is selected this way). */
  model: string;
  /** Rendered prompt text (use `renderChat` for chat messages). */
  prompt?: string;
  /**
   * Prompt token ids (from `tokenize`); pass these instead of `prompt` when the face has already
   * tokenised, to avoid doing it twice. The engine copies them.
   */
  promptTokens?: readonly number[];
  /** Completion limit; default `maxModelLen − prompt tokens` (vLLM's default). Must be ≥ 1. */
  maxTokens?: number;
  /** Generate exactly `maxTokens` tokens (finish reason 'length'). */
  ignoreEos?: boolean;
  /**
   * Prefill-disaggregation prefill leg: stop after the prefill step, having emitted exactly one
   * token, finish reason 'length' (SGLang prefill servers finish with FINISH_LENGTH).
   */
  prefillOnly?: boolean;
  /**
   * Decode leg of prefill disaggregation: the prompt's KV arrives from another engine. Its blocks
   * are allocated but no prefill compute is charged; the first token comes at its first decode step.
   */
  remotePrefill?: boolean;
  /**
   * With `remotePrefill`: the KV is not there yet. The request's blocks are allocated when the
   * scheduler admits it (then `callbacks.onKvAllocated` runs: the transfer may start), and it waits
   * holding them — not running, not waiting — until `RequestHandle.kvArrived()`, then runs its
   * first decode step when the batch has room. As vLLM's WAITING_FOR_REMOTE_KVS, and SGLang's
   * decode server, which allocates the KV before the prefill server may send it.
   */
  awaitKv?: boolean;
  /**
   * Keep the request's KV blocks allocated after it finishes (not after an abort), until
   * `RequestHandle.releaseKv()`: a prefill leg's KV waits there for the decode engine to pull it
   * (vLLM NixlConnector's delayed free, SGLang's prefill holding a request until its KV is sent).
   * Held blocks count as used, as in vLLM's `kv_cache_usage_perc`, and stay hits for other requests.
   */
  holdKv?: boolean;
  /** vLLM V1 `cache_salt`: salts the first block hash, so only requests with the same salt share blocks. */
  cacheSalt?: string;
  /** The answer header's tokens, when the face tokenised it with a real tokenizer (output.ts). */
  answerHeader?: AnswerPieces;
}

/** Why a request ended; 'abort' when the client (or `close()`) cancelled it. */
export type FinishReason = 'stop' | 'length' | 'abort';

/** Reported once per request, in modelled ms. */
export interface RequestResult {
  id: string;
  /** The requested model name (base or adapter). */
  model: string;
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens served from the prefix cache at the first scheduling (vLLM `num_cached_tokens`). */
  cachedTokens: number;
  /** Arrival to first token; null if no token was produced. */
  ttftMs: number | null;
  /** Arrival to finish. */
  e2eMs: number;
  /** Time in the scheduler's waiting queue before first being scheduled; null if never scheduled. */
  queueMs: number | null;
  /** How often the request was preempted (recomputed). */
  preemptions: number;
  /** Modelled arrival and finish times (ms on the engine's clock). */
  arrivalMs: number;
  finishMs: number;
}

/**
 * Callbacks of one request. They run inside the engine's step, synchronously: keep them short and
 * do not throw (a thrown error is reported through `EngineOptions.onCallbackError` and ignored).
 */
export interface RequestCallbacks {
  /** One generated token: its text and 0-based index. */
  onToken?(text: string, index: number): void;
  /** Exactly once, after the last `onToken`. */
  onFinish?(result: RequestResult): void;
  /** An `awaitKv` request's blocks are allocated: its KV may be sent now. */
  onKvAllocated?(): void;
}

/** What `submit` returns. */
export interface RequestHandle {
  readonly id: string;
  /** True once the request has finished (any reason). */
  readonly finished: boolean;
  /** Cancels the request: frees its blocks at once and calls `onFinish` with 'abort'. No-op when finished. */
  abort(): void;
  /**
   * A `holdKv` request that finished: the ids of the KV blocks it still holds, in sequence order
   * (they cover its prompt); null before it finishes, after an abort, after `releaseKv()`, and for
   * other requests.
   */
  readonly heldKvBlocks: readonly number[] | null;
  /** Frees the blocks a finished `holdKv` request still holds; a no-op otherwise (and the second time). */
  releaseKv(): void;
  /** An `awaitKv` request's KV has arrived (before or after its blocks were allocated); a no-op otherwise. */
  kvArrived(): void;
}

/** Why a request cannot be submitted; faces turn this into an HTTP error. */
export type CheckError =
  | { kind: 'unknown_model'; model: string }
  | { kind: 'empty_prompt' }
  | { kind: 'invalid_request'; message: string }
  | { kind: 'invalid_max_tokens'; maxTokens: number }
  | {
      kind: 'context_length';
      maxModelLen: number;
      /** prompt + completion */
      requestedTokens: number;
      promptTokens: number;
      /** null when the client gave no max_tokens (the prompt alone is too long) */
      completionTokens: number | null;
    };

/** A request that passed `check`, with everything the engine needs. */
export interface CheckedRequest {
  /** The prompt's token ids; undefined when the profile counts prompts instead (`tokenizePrompts: false`). */
  promptTokens: readonly number[] | undefined;
  /** Prompt tokens: the ids' count, or the estimate of a counted prompt. */
  promptLength: number;
  maxTokens: number;
  /** The adapter the request runs with, or null for the base model. */
  adapter: string | null;
}

/** Result of `Engine.check`. */
export type CheckResult = { ok: true; request: CheckedRequest } | { ok: false; error: CheckError };

/** HTTP status vLLM answers with: 404 for an unknown model, 400 for everything else. */
export function checkErrorStatus(e: CheckError): 400 | 404 {
  return e.kind === 'unknown_model' ? 404 : 400;
}

/** OpenAI error `type` vLLM uses: NotFoundError / BadRequestError. */
export function checkErrorType(e: CheckError): 'NotFoundError' | 'BadRequestError' {
  return e.kind === 'unknown_model' ? 'NotFoundError' : 'BadRequestError';
}

/** vLLM's message wording (serving_engine.py; vllm-project/vllm issue #12886 for the context one). */
export function checkErrorMessage(e: CheckError): string {
  switch (e.kind) {
    case 'unknown_model':
      return `The model \`${e.model}\` does not exist.`;
    case 'empty_prompt':
      return 'The prompt cannot be empty.';
    case 'invalid_request':
      return e.message;
    case 'invalid_max_tokens':
      return `max_tokens must be at least 1, got ${e.maxTokens}.`;
    case 'context_length':
      if (e.completionTokens === null) {
        return (
          `This model's maximum context length is ${e.maxModelLen} tokens. However, you requested ` +
          `${e.promptTokens} tokens in the messages, Please reduce the length of the messages.`
        );
      }
      return (
        `This model's maximum context length is ${e.maxModelLen} tokens. However, you requested ` +
        `${e.requestedTokens} tokens (${e.promptTokens} in the messages, ${e.completionTokens} in the completion). ` +
        'Please reduce the length of the messages or completion.'
      );
  }
}

/** Thrown by `Engine.submit` for a request that fails `check`. */
export class EngineRequestError extends Error {
  readonly error: CheckError;
  readonly status: 400 | 404;
  constructor(error: CheckError) {
    super(checkErrorMessage(error));
    this.name = 'EngineRequestError';
    this.error = error;
    this.status = checkErrorStatus(error);
  }
}
