/**
 * Internal state of one request inside the engine (vLLM's `Request` in the V1 scheduler).
 *
 * Token bookkeeping follows vLLM: `tokens` holds the prompt plus every sampled token; the KV of
 * the first `numComputed` of them is on the GPU. A step computes some of the remaining tokens;
 * when `numComputed` catches up with `tokens.length`, the model samples one new token. So a
 * decode step computes exactly the previously sampled token, and a finished request's last token
 * is never computed (nor cached) — as in vLLM.
 */

import { AnswerStream } from './output.js';
import { hashBlock } from './block-hash.js';
import type { FinishReason, RequestCallbacks } from './request.js';

/**
 * Lifecycle: in the API server, in the waiting queue, in the running batch, done; an `awaitKv`
 * request sits in 'awaiting-kv' between its blocks' allocation and its KV's arrival.
 */
export type SeqState = 'arriving' | 'waiting' | 'awaiting-kv' | 'running' | 'finished';

/** Fields fixed at submission. */
export interface SeqInit {
  id: string;
  model: string;
  adapter: string | null;
  /** The prompt's ids; undefined for a prompt that was counted (nothing of it is cached). */
  promptTokens: readonly number[] | undefined;
  promptLength: number;
  /** Completion tokens to generate before finishing with `finishReason`. */
  target: number;
  finishReason: 'stop' | 'length';
  answer: AnswerStream;
  prefillOnly: boolean;
  remotePrefill: boolean;
  awaitKv: boolean;
  holdKv: boolean;
  blockSize: number;
  /** Extra hash key of every block but the first (the adapter's). */
  loraKey: number;
  /** Extra hash key of the first block (adapter ^ cache salt). */
  firstBlockKey: number;
  /** Hashes of the prompt's full blocks (see block-hash.ts); empty for a counted prompt. */
  promptBlockHashes: number[];
  arrivalMs: number;
  readyMs: number;
  callbacks: RequestCallbacks;
}

/** One request's mutable state; owned by the engine and its scheduler. */
export class Seq {
  readonly id: string;
  readonly model: string;
  readonly adapter: string | null;
  readonly promptLen: number;
  readonly target: number;
  readonly naturalFinish: 'stop' | 'length';
  readonly answer: AnswerStream;
  readonly prefillOnly: boolean;
  /** True until first admitted; a preempted request recomputes locally (the remote KV is gone). */
  remotePrefill: boolean;
  /** The remote KV is still to come after admission (EngineRequest.awaitKv); false once it arrived. */
  awaitKv: boolean;
  /** Keep the blocks when finished (EngineRequest.holdKv). */
  readonly holdKv: boolean;
  /** The blocks a finished `holdKv` request still holds, until released; null otherwise. */
  heldBlocks: number[] | null = null;
  readonly blockSize: number;
  readonly loraKey: number;
  readonly firstBlockKey: number;
  readonly callbacks: RequestCallbacks;

  state: SeqState = 'arriving';
  /**
   * Whether the request's blocks are hashed and prefix-cached: its prompt was tokenised. A counted
   * prompt (profile `tokenizePrompts: false`) keeps no ids, so `tokens` and `blockHashes` stay empty.
   */
  readonly cached: boolean;
  /** Prompt ids followed by sampled ids (empty unless `cached`). */
  readonly tokens: number[];
  /** Chained hashes of every *full* block of `tokens` (known, not necessarily computed). */
  readonly blockHashes: number[];
  #sampled = 0;
  /** Tokens whose KV is on the GPU. */
  numComputed = 0;
  /** Leading blocks of `blocks` that are registered in the prefix cache (or were hits). */
  numRegistered = 0;
  /** KV block ids, in sequence order. */
  blocks: number[] = [];
  /** Tokens scheduled in the step in flight. */
  scheduled = 0;

  readonly arrivalMs: number;
  readonly readyMs: number;
  firstScheduledMs: number | null = null;
  firstTokenMs: number | null = null;
  lastTokenMs = 0;
  cachedTokens = 0;
  preemptions = 0;
  finishReason: FinishReason | null = null;

  constructor(init: SeqInit) {
    this.id = init.id;
    this.model = init.model;
    this.adapter = init.adapter;
    this.promptLen = init.promptLength;
    this.target = init.target;
    this.naturalFinish = init.finishReason;
    this.answer = init.answer;
    this.prefillOnly = init.prefillOnly;
    this.remotePrefill = init.remotePrefill;
    this.awaitKv = init.awaitKv;
    this.holdKv = init.holdKv;
    this.blockSize = init.blockSize;
    this.loraKey = init.loraKey;
    this.firstBlockKey = init.firstBlockKey;
    this.callbacks = init.callbacks;
    this.cached = init.promptTokens !== undefined;
    this.tokens = init.promptTokens?.slice() ?? [];
    this.blockHashes = init.promptBlockHashes;
    this.arrivalMs = init.arrivalMs;
    this.readyMs = init.readyMs;
  }

  /** Prompt plus sampled tokens. */
  get numTokens(): number {
    return this.promptLen + this.#sampled;
  }

  /** Completion tokens sampled so far. */
  get numOutput(): number {
    return this.#sampled;
  }

  /** Samples the next answer token: appends its id and, when a block fills, that block's hash. */
  sample(): void {
    this.answer.next();
    this.#sampled++;
    if (!this.cached) return;
    const tokens = this.tokens;
    tokens.push(this.answer.id);
    const bs = this.blockSize;
    if (tokens.length % bs === 0) {
      const b = tokens.length / bs - 1;
      const parent = b === 0 ? 0 : this.blockHashes[b - 1]!;
      this.blockHashes.push(hashBlock(parent, tokens, b * bs, bs, b === 0 ? this.firstBlockKey : this.loraKey));
    }
  }
}
