/**
 * Messages between the main thread and the tokenizer worker (worker.ts). Structured-cloned;
 * token ids come back as Uint32Arrays whose buffers are transferred, not copied.
 */

import type { AddedTokenEntry } from './added-tokens.js';
import type { TemplateMessage } from './chat-turn.js';

export interface FileLimits {
  /** Bound on tokenizer.json, bytes. */
  readonly tokenizerJsonBytes: number;
  /** Bound on tokenizer_config.json, bytes. */
  readonly tokenizerConfigBytes: number;
}

/** What the worker learned from a tokenizer directory, for the main thread. */
export interface TokenizerInfo {
  readonly addedTokens: readonly AddedTokenEntry[];
  /** Piecewise tokenisation is exact (added-tokens.ts); otherwise texts go whole. */
  readonly exact: boolean;
  readonly inexactWhy?: string;
  /**
   * The ids the post-processor adds around one sequence with add_special_tokens=true (Llama 3.1's
   * TemplateProcessing: prefix [128000]; BERT: [CLS] … [SEP]); undefined when they could not be
   * determined (then prompts are tokenised whole).
   */
  readonly promptSpecials?: { readonly prefix: readonly number[]; readonly suffix: readonly number[] };
  /** tokenizer_config.json's `chat_template` as found (a string, a list of {name, template}, or absent). */
  readonly chatTemplate: unknown;
  /** tokenizer_config.json's special tokens as found (strings or {content} objects). */
  readonly specialTokens: Readonly<Record<string, unknown>>;
}

export type WorkerRequest =
  | { readonly id: number; readonly op: 'load'; readonly dir: string; readonly limits: FileLimits }
  | {
      readonly id: number;
      readonly op: 'encode';
      readonly dir: string;
      readonly limits: FileLimits;
      /** Each text tokenised on its own. */
      readonly texts: readonly string[];
      readonly addSpecialTokens: boolean;
      /** Also answer each token's decoded text (`texts`, parallel to `ids`). */
      readonly pieces?: boolean;
    }
  | {
      readonly id: number;
      readonly op: 'render';
      readonly dir: string;
      readonly limits: FileLimits;
      /** Validated on the main thread (chat-turn.ts); the template's cost is the worker's. */
      readonly messages: readonly TemplateMessage[];
      readonly tools?: unknown;
    };

export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly info: TokenizerInfo }
  | { readonly id: number; readonly ok: true; readonly ids: readonly Uint32Array[]; readonly texts?: readonly (readonly string[])[] }
  | { readonly id: number; readonly ok: true; readonly text: string }
  | {
      readonly id: number;
      readonly ok: false;
      readonly load?: { readonly path: string; readonly reason: string };
      /** A TokenizeError's reason (a template that refused the messages, a model without one). */
      readonly failure?: 'template' | 'no-template';
      readonly message: string;
    };
