/**
 * The simulated model server's engine: a vLLM-V1-like continuous-batching loop in modelled time.
 *
 * A request's life: `submit` → `requestOverheadMs` in the "API server" (tokenisation, HTTP) →
 * the scheduler's waiting queue → the running batch (prefill in chunks, then one token per step)
 * → finished. Steps run back to back while there is work; each lasts `stepDurationMs` of the
 * profile (see profiles.ts). An idle engine holds no timer; a request arriving wakes it. Requests
 * submitted during a step join at the next one.
 *
 * The engine owns the timing, the callbacks and the metrics; scheduler.ts owns the step logic,
 * kv-cache.ts the blocks, lora-slots.ts the adapters.
 */

import { seededRandom, type Random } from '../../core/weighted.js';
import { extraKey, hashFullBlocks } from './block-hash.js';
import type { SimClock, SimTimer } from './clock.js';
import { Deque } from './deque.js';
import { Histogram, ITL_BUCKETS_S, REQUEST_LATENCY_BUCKETS_S, TTFT_BUCKETS_S, type HistogramSnapshot } from './histogram.js';
import { KvCache } from './kv-cache.js';
import { LoraSlots } from './lora-slots.js';
import { AnswerStream, answerLength, answerSeed, type AnswerPieces } from './output.js';
import { resolveProfile, stepDurationMs, type EngineProfile, type EngineProfileOverrides } from './profiles.js';
import {
  EngineRequestError,
  type CheckError,
  type CheckResult,
  type EngineRequest,
  type FinishReason,
  type RequestCallbacks,
  type RequestHandle,
  type RequestResult,
} from './request.js';
import { Scheduler, type StepSink } from './scheduler.js';
import { Seq } from './seq.js';
import { estimateTokens, tokenize } from './tokenizer.js';

/** Construction options of an {@link Engine}. */
export interface EngineOptions {
  /** Served base-model name(s) (vLLM `--served-model-name`, may be a list); the first is the primary. */
  model: string | readonly string[];
  /**
   * The model this engine stands for: the path or hub id a real server was started with (vLLM's
   * positional model, SGLang's `--model-path`). Answers introduce themselves with its last segment
   * (output.ts). Default: unknown, answers start with the requested name.
   */
  modelPath?: string;
  /** Known LoRA adapter names (vLLM `--lora-modules`); more can be added with `loadLora`. Default none. */
  loras?: readonly string[];
  /** GPU adapter slots (vLLM `--max-loras`); default 1. */
  maxLoras?: number;
  /** Latency and capacity profile (see `PROFILES`). */
  profile: EngineProfile;
  /** Per-engine changes to the profile (e.g. a smaller `numGpuBlocks`). */
  overrides?: EngineProfileOverrides;
  /** Modelled clock; may be shared by several engines. */
  clock: SimClock;
  /** Seed of the step-time jitter PRNG (only used when the profile's `jitter` > 0); default 1. */
  seed?: number;
  /** Prefix-cache events (vLLM KV events, §h), per block; off unless given. */
  onKvEvent?: (event: KvEvent) => void;
  /** Errors thrown by request callbacks; default: rethrown asynchronously. */
  onCallbackError?: (err: unknown, requestId: string) => void;
  /**
   * The words answers are drawn from, as a real tokenizer's single tokens (sim/real-tokens.ts);
   * default: the simulator tokenizer's word list (output.ts).
   */
  answerWords?: AnswerPieces;
}

/** A prefix-cache change, shaped like vLLM's KV events (one block per event). */
export type KvEvent =
  | {
      type: 'BlockStored';
      blockHashes: [number];
      /** Hash of the previous block of the sequence; null for a sequence's first block. */
      parentBlockHash: number | null;
      tokenIds: number[];
      blockSize: number;
      loraName: string | null;
      /**
       * The cache salt's hash key when this is a salted sequence's first block (vLLM puts
       * `cache_salt` in the first block's extra keys), else null.
       */
      saltKey: number | null;
      /** Modelled time (ms). */
      timeMs: number;
    }
  | { type: 'BlockRemoved'; blockHashes: [number]; timeMs: number }
  /** The whole prefix cache was dropped (`resetPrefixCache` with no block in use). */
  | { type: 'AllBlocksCleared'; timeMs: number };

/** Finished-request counts by reason (vLLM `request_success_total{finished_reason}`). */
export interface FinishCounts {
  stop: number;
  length: number;
  abort: number;
}

/** Everything a /metrics page needs, in modelled time. */
export interface EngineStats {
  /** Modelled ms on the engine's clock, and the matching modelled Unix epoch ms. */
  nowMs: number;
  epochMs: number;
  /** Requests in the running batch (vLLM `num_requests_running`). */
  running: number;
  /** Requests in the waiting queue, including preempted and LoRA-blocked ones (`num_requests_waiting`). */
  waiting: number;
  /** Requests still in the API-server overhead, not yet visible to the scheduler (no vLLM metric). */
  arriving: number;
  /** `awaitKv` requests holding their blocks until their KV arrives (vLLM counts them as waiting). */
  awaitingKv: number;
  /** usedBlocks / numGpuBlocks, 0..1 (`kv_cache_usage_perc`). */
  kvUsage: number;
  numGpuBlocks: number;
  blockSize: number;
  /** Blocks referenced by running requests (and held by finished `holdKv` ones). */
  usedBlocks: number;
  /** Distinct block hashes in the prefix cache (used or free). */
  cachedBlocks: number;
  /** Cumulative prefix-cache lookups / hits, in tokens (`prefix_cache_queries` / `_hits`). */
  prefixQueriesTokens: number;
  prefixHitsTokens: number;
  /** Cumulative preemptions (`num_preemptions`; SGLang `num_retracted_reqs`). */
  preemptionsTotal: number;
  /** Cumulative prompt tokens of requests whose prefill finished (`prompt_tokens`). */
  promptTokensTotal: number;
  /** Cumulative generated tokens (`generation_tokens`). */
  generationTokensTotal: number;
  requestSuccessTotal: FinishCounts;
  /** Engine steps run so far. */
  stepsTotal: number;
  /**
   * Cumulative tokens computed in prefill chunks (steps that scheduled a request for more than one
   * token: what the step model charges `prefillPerTokenMs`). A decode-role engine keeps this at 0
   * for disaggregated requests; a preempted request's recompute counts.
   */
  prefillTokensTotal: number;
  /** Cumulative prompt tokens whose KV came from a prefill engine (`remotePrefill`). */
  remotePrefillTokensTotal: number;
  /** Blocks held by finished `holdKv` requests (prefill legs waiting for their KV to be pulled). */
  heldKvBlocks: number;
  /** Histograms in seconds with vLLM V1 buckets. */
  histograms: {
    ttft: HistogramSnapshot;
    interTokenLatency: HistogramSnapshot;
    e2eLatency: HistogramSnapshot;
    queueTime: HistogramSnapshot;
  };
  /** What `vllm:lora_requests_info` reports (§b.2), plus the resident set. */
  lora: {
    maxLoras: number;
    /** Adapters with running requests. */
    running: string[];
    /** Adapters with waiting requests. */
    waiting: string[];
    /** Adapters loaded in a GPU slot (newer `vllm:lora_adapter_loaded`). */
    resident: string[];
    /** Modelled epoch seconds of the last scheduling pass (the gauge's value). */
    updatedAtSeconds: number;
  };
}

/** A vLLM-V1-like engine in modelled time; see the file comment. */
export class Engine {
  /** The effective profile (base + overrides). */
  readonly profile: EngineProfile;
  /** Served base-model names; `modelNames[0]` is the primary. */
  readonly modelNames: readonly string[];
  /** The model this engine stands for (EngineOptions.modelPath); undefined when unknown. */
  readonly modelPath: string | undefined;
  readonly clock: SimClock;

  readonly #baseNames: ReadonlySet<string>;
  readonly #loras: Set<string>;
  readonly #kv: KvCache;
  readonly #slots: LoraSlots;
  readonly #scheduler: Scheduler;
  readonly #arrivals = new Deque<Seq>();
  #numArriving = 0;
  readonly #random: Random;
  readonly #onKvEvent: ((event: KvEvent) => void) | undefined;
  /** During `resetPrefixCache`: the hashes the reset drops (reported after it, see there). */
  #resetting: number[] | null = null;
  readonly #onCallbackError: (err: unknown, requestId: string) => void;

  #stepTimer: SimTimer | null = null; // the step in flight
  #wakeTimer: SimTimer | null = null; // idle engine waiting for an arrival
  #closed = false;
  #nextId = 1;
  #stepsTotal = 0;
  #prefillTokensTotal = 0;
  #promptTokensTotal = 0;
  #generationTokensTotal = 0;
  readonly #finished: FinishCounts = { stop: 0, length: 0, abort: 0 };
  readonly #ttft = new Histogram(TTFT_BUCKETS_S);
  readonly #itl = new Histogram(ITL_BUCKETS_S);
  readonly #e2e = new Histogram(REQUEST_LATENCY_BUCKETS_S);
  readonly #queue = new Histogram(REQUEST_LATENCY_BUCKETS_S);
  #loraUpdatedAtMs: number;
  readonly #inFlight = new Set<Seq>();
  readonly #answerWords: AnswerPieces | undefined;

  /** @throws RangeError for an invalid profile, no model name, an empty modelPath, or maxLoras < 1. */
  constructor(options: EngineOptions) {
    this.profile = resolveProfile(options.profile, options.overrides);
    const names = typeof options.model === 'string' ? [options.model] : [...options.model];
    if (names.length === 0 || names.some((n) => n === '')) throw new RangeError('Engine needs at least one non-empty model name');
    this.modelNames = names;
    if (options.modelPath === '') throw new RangeError('modelPath must not be empty');
    this.modelPath = options.modelPath;
    this.#answerWords = options.answerWords;
    this.#baseNames = new Set(names);
    this.#loras = new Set(options.loras ?? []);
    const maxLoras = options.maxLoras ?? 1;
    if (!Number.isInteger(maxLoras) || maxLoras < 1) throw new RangeError(`maxLoras must be an integer >= 1, got ${maxLoras}`);
    this.clock = options.clock;
    this.#onKvEvent = options.onKvEvent;
    this.#onCallbackError =
      options.onCallbackError ??
      ((err) => {
        setImmediate(() => {
          throw err;
        });
      });
    const onEvict =
      this.#onKvEvent === undefined
        ? undefined
        : (hash: number) => {
            if (this.#resetting !== null) this.#resetting.push(hash);
            else this.#emitKvEvent({ type: 'BlockRemoved', blockHashes: [hash], timeMs: this.clock.now() });
          };
    this.#kv = new KvCache(this.profile.numGpuBlocks, this.profile.blockSize, onEvict);
    this.#slots = new LoraSlots(maxLoras);
    this.#scheduler = new Scheduler(this.#kv, this.#slots, this.profile);
    this.#random = seededRandom(options.seed ?? 1);
    this.#loraUpdatedAtMs = this.clock.now();
  }

  /** Known adapter names (static and loaded at runtime). */
  get loras(): string[] {
    return [...this.#loras];
  }

  /** GPU adapter slots. */
  get maxLoras(): number {
    return this.#slots.maxLoras;
  }

  /**
   * Validates a request without submitting it: model known (base or adapter), prompt non-empty,
   * `maxTokens` ≥ 1, prompt + maxTokens ≤ maxModelLen. On success returns the prompt's token ids
   * (tokenised once if only text was given) — pass them as `promptTokens` to `submit` to avoid
   * tokenising again.
   */
  check(req: EngineRequest): CheckResult {
    let adapter: string | null = null;
    if (!this.#baseNames.has(req.model)) {
      if (!this.#loras.has(req.model)) return { ok: false, error: { kind: 'unknown_model', model: req.model } };
      adapter = req.model;
    }
    if ((req.prompt === undefined) === (req.promptTokens === undefined)) {
      return { ok: false, error: { kind: 'invalid_request', message: 'Exactly one of prompt and promptTokens must be given.' } };
    }
    if (req.prefillOnly === true && req.remotePrefill === true) {
      return { ok: false, error: { kind: 'invalid_request', message: 'prefillOnly and remotePrefill exclude each other.' } };
    }
    if (req.awaitKv === true && req.remotePrefill !== true) {
      return { ok: false, error: { kind: 'invalid_request', message: 'awaitKv needs remotePrefill.' } };
    }
    // A profile that counts prompts keeps no ids, whether the face gave them or text.
    const counted = this.profile.tokenizePrompts === false;
    const promptTokens = counted ? undefined : (req.promptTokens ?? tokenize(req.prompt ?? ''));
    const p = promptTokens?.length ?? req.promptTokens?.length ?? estimateTokens(req.prompt ?? '');
    if (p === 0) return { ok: false, error: { kind: 'empty_prompt' } };
    const maxLen = this.profile.maxModelLen;
    const completion = req.maxTokens;
    if (completion !== undefined && (!Number.isInteger(completion) || completion < 1)) {
      return { ok: false, error: { kind: 'invalid_max_tokens', maxTokens: completion } };
    }
    // Without max_tokens vLLM fills the context; then only the prompt itself can be too long.
    const requested = p + (completion ?? 0);
    if (completion === undefined ? p >= maxLen : requested > maxLen) {
      const error = {
        kind: 'context_length' as const,
        maxModelLen: maxLen,
        requestedTokens: requested,
        promptTokens: p,
        completionTokens: completion ?? null,
      };
      return { ok: false, error };
    }
    return { ok: true, request: { promptTokens, promptLength: p, maxTokens: completion ?? maxLen - p, adapter } };
  }

  /**
   * Submits a request; tokens and the result arrive through `callbacks`, never synchronously
   * inside this call. Arrival time is the clock's `now()`.
   * @throws EngineRequestError when `check(req)` fails (carries the error kind and HTTP status)
   * @throws Error after `close()`
   */
  submit(req: EngineRequest, callbacks: RequestCallbacks = {}): RequestHandle {
    if (this.#closed) throw new Error('Engine is closed');
    const checked = this.check(req);
    if (!checked.ok) throw new EngineRequestError(checked.error);
    const { promptTokens, promptLength, maxTokens, adapter } = checked.request;
    const p = this.profile;
    const now = this.clock.now();
    const answer = new AnswerStream(
      answerSeed(promptTokens ?? promptLength, req.model),
      req.model,
      { modelPath: this.modelPath, adapter },
      { header: req.answerHeader, words: this.#answerWords },
    );
    // A prefill-only leg emits exactly the first token (SGLang's prefill finishes with "length").
    const length =
      req.prefillOnly === true
        ? { tokens: 1, finishReason: 'length' as const }
        : answerLength(answer.naturalLength, maxTokens, req.ignoreEos === true);
    const salt = req.cacheSalt ?? null;
    const seq = new Seq({
      id: req.id ?? `req-${this.#nextId++}`,
      model: req.model,
      adapter,
      promptTokens,
      promptLength,
      target: length.tokens,
      finishReason: length.finishReason,
      answer,
      prefillOnly: req.prefillOnly === true,
      remotePrefill: req.remotePrefill === true,
      awaitKv: req.awaitKv === true,
      holdKv: req.holdKv === true,
      blockSize: p.blockSize,
      loraKey: extraKey(adapter),
      firstBlockKey: extraKey(adapter) ^ extraKey(salt),
      promptBlockHashes: promptTokens === undefined ? [] : hashFullBlocks(promptTokens, p.blockSize, adapter, salt),
      arrivalMs: now,
      readyMs: now + p.requestOverheadMs,
      callbacks,
    });
    this.#arrivals.pushBack(seq);
    this.#numArriving++;
    this.#inFlight.add(seq);
    if (this.#stepTimer === null) this.#wakeAt(seq.readyMs);
    const scheduler = this.#scheduler;
    return {
      id: seq.id,
      get finished() {
        return seq.state === 'finished';
      },
      abort: () => this.#abort(seq),
      get heldKvBlocks() {
        return seq.heldBlocks;
      },
      releaseKv: () => {
        scheduler.releaseHeld(seq);
        // Freed blocks may let a request waiting for them in: an idle engine wakes up.
        this.#wakeIfWaiting();
      },
      kvArrived: () => {
        scheduler.kvArrived(seq);
        this.#wakeIfWaiting();
      },
    };
  }

  /**
   * Prompt tokens of `req` the prefix cache would serve if it were admitted now: the longest run
   * of cached full blocks at the prompt's start, never the last prompt token (the scheduler's own
   * count at admission, scheduler.ts). Changes nothing. For the bench's oracle placement
   * (src/sim/prefix-match.ts); `ok: false` with the reason `check` gives for an invalid request.
   */
  prefixHitTokens(req: EngineRequest): { ok: true; promptTokens: number; cachedTokens: number } | { ok: false; error: CheckError } {
    const checked = this.check(req);
    if (!checked.ok) return checked;
    const { promptTokens, promptLength, adapter } = checked.request;
    if (promptTokens === undefined) return { ok: true, promptTokens: promptLength, cachedTokens: 0 }; // nothing is cached
    const bs = this.#kv.blockSize;
    const hashes = hashFullBlocks(promptTokens, bs, adapter, req.cacheSalt ?? null);
    const blocks = this.#kv.matchPrefix(hashes, Math.floor((promptTokens.length - 1) / bs));
    return { ok: true, promptTokens: promptTokens.length, cachedTokens: blocks * bs };
  }

  /** Adds a LoRA adapter name at runtime (vLLM `/v1/load_lora_adapter`); false if already known. */
  loadLora(name: string): boolean {
    if (this.#loras.has(name) || this.#baseNames.has(name)) return false;
    this.#loras.add(name);
    return true;
  }

  /**
   * Forgets an adapter (vLLM `/v1/unload_lora_adapter`); false if unknown. Requests already
   * submitted finish normally; new ones get `unknown_model`.
   */
  unloadLora(name: string): boolean {
    if (!this.#loras.delete(name)) return false;
    this.#slots.evict(name);
    return true;
  }

  /**
   * Drops every cached block that no running request holds (vLLM `reset_prefix_cache`, SGLang
   * `flush_cache`). KV events: when no cached block is left, one `AllBlocksCleared` (as vLLM's
   * BlockPool.reset_prefix_cache sends); when blocks in use keep theirs (vLLM would refuse the
   * reset then), a `BlockRemoved` per dropped block, so a subscriber's view stays exact.
   */
  resetPrefixCache(): number {
    if (this.#onKvEvent === undefined) return this.#kv.clearCache();
    const dropped: number[] = [];
    this.#resetting = dropped;
    let n: number;
    try {
      n = this.#kv.clearCache();
    } finally {
      this.#resetting = null;
    }
    const timeMs = this.clock.now();
    if (this.#kv.numCached === 0) this.#emitKvEvent({ type: 'AllBlocksCleared', timeMs });
    else for (const hash of dropped) this.#emitKvEvent({ type: 'BlockRemoved', blockHashes: [hash], timeMs });
    return n;
  }

  /** A snapshot for /metrics; cheap (no scan of blocks or queues). */
  stats(): EngineStats {
    const now = this.clock.now();
    const s = this.#scheduler;
    return {
      nowMs: now,
      epochMs: this.clock.toEpochMs(now),
      running: s.numRunning,
      waiting: s.numWaiting,
      arriving: this.#numArriving,
      awaitingKv: s.numAwaitingKv,
      kvUsage: this.#kv.usage,
      numGpuBlocks: this.#kv.numBlocks,
      blockSize: this.#kv.blockSize,
      usedBlocks: this.#kv.numUsed,
      cachedBlocks: this.#kv.numCached,
      prefixQueriesTokens: s.prefixQueriesTokens,
      prefixHitsTokens: s.prefixHitsTokens,
      preemptionsTotal: s.preemptionsTotal,
      promptTokensTotal: this.#promptTokensTotal,
      generationTokensTotal: this.#generationTokensTotal,
      requestSuccessTotal: { ...this.#finished },
      stepsTotal: this.#stepsTotal,
      prefillTokensTotal: this.#prefillTokensTotal,
      remotePrefillTokensTotal: s.remotePrefillTokens,
      heldKvBlocks: s.heldBlocks,
      histograms: {
        ttft: this.#ttft.snapshot(),
        interTokenLatency: this.#itl.snapshot(),
        e2eLatency: this.#e2e.snapshot(),
        queueTime: this.#queue.snapshot(),
      },
      lora: {
        maxLoras: this.#slots.maxLoras,
        running: this.#slots.running(),
        waiting: s.waitingLoras(),
        resident: this.#slots.resident(),
        updatedAtSeconds: this.clock.toEpochMs(this.#loraUpdatedAtMs) / 1000,
      },
    };
  }

  /** Stops the engine: cancels its timers and aborts every unfinished request (onFinish 'abort'). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stepTimer?.cancel();
    this.#wakeTimer?.cancel();
    this.#stepTimer = null;
    this.#wakeTimer = null;
    for (const seq of [...this.#inFlight]) this.#abort(seq);
  }

  // --- step loop --------------------------------------------------------------------------------

  /** An idle engine with requests in its waiting queue runs a step now (blocks were freed, KV arrived). */
  #wakeIfWaiting(): void {
    if (this.#stepTimer === null && this.#scheduler.numWaiting > 0) this.#wakeAt(this.clock.now());
  }

  /** Arms the idle wake-up for modelled time `t` unless an earlier one is set. */
  #wakeAt(t: number): void {
    if (this.#closed) return;
    if (this.#wakeTimer !== null) {
      if (this.#wakeTimer.dueMs <= t) return;
      this.#wakeTimer.cancel();
    }
    this.#wakeTimer = this.clock.at(t, this.#onWake);
  }

  readonly #onWake = (): void => {
    this.#wakeTimer = null;
    if (this.#stepTimer === null) this.#runStep();
  };

  /** Starts a step at the current modelled time, or goes idle. */
  #runStep(): void {
    if (this.#closed) return;
    const now = this.clock.now();
    this.#admitArrivals(now);
    const plan = this.#scheduler.schedule(now);
    this.#loraUpdatedAtMs = now; // vLLM refreshes lora_requests_info every iteration
    for (const seq of plan.kvAllocated) this.#callback(seq, () => seq.callbacks.onKvAllocated?.());
    if (plan.seqs.length === 0) {
      if (this.#unstick()) {
        this.#runStep();
        return;
      }
      const next = this.#arrivals.peekFront();
      if (next !== undefined) this.#wakeAt(next.readyMs);
      return; // idle: no timer until something arrives
    }
    this.#stepsTotal++;
    this.#prefillTokensTotal += plan.prefillTokens;
    for (let i = plan.admittedFrom; i < plan.seqs.length; i++) {
      const seq = plan.seqs[i]!;
      if (seq.preemptions > 0) continue; // queue time counts the first wait only
      this.#queue.observe((now - seq.readyMs) / 1000);
    }
    let ms = stepDurationMs(this.profile, plan);
    if (this.profile.jitter > 0) ms *= 1 + this.profile.jitter * (2 * this.#random() - 1);
    this.#wakeTimer?.cancel();
    this.#wakeTimer = null;
    this.#stepTimer = this.clock.at(now + ms, this.#onStepEnd);
  }

  readonly #onStepEnd = (): void => {
    this.#stepTimer = null;
    if (this.#closed) return;
    this.#scheduler.complete(this.#sink);
    this.#runStep(); // chain the next step at exactly this modelled time
  };

  #admitArrivals(now: number): void {
    for (;;) {
      const seq = this.#arrivals.peekFront();
      if (seq === undefined || seq.readyMs > now) return;
      this.#arrivals.popFront();
      if (seq.state !== 'arriving') continue; // aborted meanwhile
      this.#numArriving--;
      this.#scheduler.add(seq);
    }
  }

  /**
   * Safety net: with nothing running and no KV held for a transfer (sent or awaited), the head of the queue always
   * fits (maxModelLen fits the KV pool, idle adapters are evictable), so waiting requests and an
   * empty plan mean a bug. Rather than hang, abort the waiting requests. Returns whether it did
   * anything. (Held blocks are freed by `releaseKv`, which wakes the engine.)
   */
  #unstick(): boolean {
    const s = this.#scheduler;
    if (s.numRunning > 0 || s.numWaiting === 0 || s.heldBlocks > 0 || s.numAwaitingKv > 0) return false;
    let aborted = false;
    for (const seq of [...this.#inFlight]) {
      if (seq.state === 'waiting') {
        this.#abort(seq);
        aborted = true;
      }
    }
    return aborted;
  }

  // --- request events ---------------------------------------------------------------------------

  readonly #sink: StepSink = {
    token: (seq) => {
      const now = this.clock.now();
      const index = seq.numOutput - 1;
      this.#generationTokensTotal++;
      if (index === 0) {
        seq.firstTokenMs = now;
        this.#promptTokensTotal += seq.promptLen;
        this.#ttft.observe((now - seq.arrivalMs) / 1000);
      } else {
        this.#itl.observe((now - seq.lastTokenMs) / 1000);
      }
      seq.lastTokenMs = now;
      const cb = seq.callbacks.onToken;
      if (cb !== undefined) {
        try {
          cb.call(seq.callbacks, seq.answer.text, index);
        } catch (err) {
          this.#onCallbackError(err, seq.id);
        }
      }
    },
    finished: (seq) => this.#finish(seq, seq.naturalFinish),
    stored: (seq, index) => {
      if (this.#onKvEvent === undefined) return;
      const bs = seq.blockSize;
      this.#emitKvEvent({
        type: 'BlockStored',
        blockHashes: [seq.blockHashes[index]!],
        parentBlockHash: index === 0 ? null : seq.blockHashes[index - 1]!,
        tokenIds: seq.tokens.slice(index * bs, (index + 1) * bs),
        blockSize: bs,
        loraName: seq.adapter,
        saltKey: index === 0 && seq.firstBlockKey !== seq.loraKey ? (seq.firstBlockKey ^ seq.loraKey) >>> 0 : null,
        timeMs: this.clock.now(),
      });
    },
  };

  #abort(seq: Seq): void {
    if (seq.state === 'finished') return;
    if (seq.state === 'arriving') {
      this.#numArriving--; // the deque entry is dropped lazily
      seq.state = 'finished';
    } else {
      this.#scheduler.remove(seq);
    }
    this.#finish(seq, 'abort');
  }

  #finish(seq: Seq, reason: FinishReason): void {
    const now = this.clock.now();
    seq.state = 'finished';
    seq.finishReason = reason;
    this.#inFlight.delete(seq);
    this.#finished[reason]++;
    this.#e2e.observe((now - seq.arrivalMs) / 1000);
    const cb = seq.callbacks.onFinish;
    if (cb === undefined) return;
    const result: RequestResult = {
      id: seq.id,
      model: seq.model,
      finishReason: reason,
      promptTokens: seq.promptLen,
      completionTokens: seq.numOutput,
      cachedTokens: seq.cachedTokens,
      ttftMs: seq.firstTokenMs === null ? null : seq.firstTokenMs - seq.arrivalMs,
      e2eMs: now - seq.arrivalMs,
      queueMs: seq.firstScheduledMs === null ? null : seq.firstScheduledMs - seq.readyMs,
      preemptions: seq.preemptions,
      arrivalMs: seq.arrivalMs,
      finishMs: now,
    };
    try {
      cb.call(seq.callbacks, result);
    } catch (err) {
      this.#onCallbackError(err, seq.id);
    }
  }

  /** Runs a request callback, reporting a throw through `onCallbackError`. */
  #callback(seq: Seq, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#onCallbackError(err, seq.id);
    }
  }

  #emitKvEvent(event: KvEvent): void {
    try {
      this.#onKvEvent?.(event);
    } catch (err) {
      this.#onCallbackError(err, '');
    }
  }
}
