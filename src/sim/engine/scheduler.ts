/**
 * One scheduler step, after vLLM V1's `Scheduler.schedule()` (vllm/v1/core/sched/scheduler.py;
 * vLLM docs/configuration/optimization.md, vllm/v1/core/sched/scheduler.py). Pure bookkeeping: no clock, no callbacks. The engine calls `schedule()` at
 * the start of a step and `complete()` at its end.
 *
 * schedule():
 * 1. RUNNING requests first, oldest first, while the token budget lasts: a decoding request takes
 *    1 token, a request still prefilling takes its next chunk (chunked prefill). If its KV blocks
 *    cannot be allocated, preempt by recompute: pop the NEWEST running request, free its blocks
 *    (they keep their hashes), reset it to 0 computed tokens, put it at the FRONT of the waiting
 *    queue; repeat until the allocation fits (if the request itself is the newest, it is the one
 *    preempted).
 * 2. Only if nothing was preempted: WAITING requests FCFS, while budget, `maxNumSeqs` and blocks
 *    last. A request's prefix-cache hit (full blocks, never its last token) is taken from the
 *    cache; blocks for the rest are allocated. Not enough blocks ⇒ stop (head of line). A request
 *    whose LoRA adapter cannot get a slot is skipped (others behind it may run) and keeps its place.
 *
 * complete(): computed tokens advance; full computed blocks are registered in the prefix cache
 * (prompt and generated alike); requests that caught up sample a token; finished ones free their
 * blocks (last block first).
 */

import { Deque } from './deque.js';
import type { KvCache } from './kv-cache.js';
import type { LoraSlots } from './lora-slots.js';
import { chunkContextPairs, type StepWork } from './profiles.js';
import type { Seq } from './seq.js';

/** Step limits (vLLM `max_num_seqs`, `max_num_batched_tokens`). */
export interface SchedulerLimits {
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
}

/**
 * The work of one step (also the {@link StepWork} its duration is computed from). The arrays are
 * reused from step to step: read them before the next `schedule()`.
 */
export interface StepPlan extends StepWork {
  /** Scheduled requests; `seq.scheduled` is each one's token count. */
  readonly seqs: Seq[];
  /** Requests scheduled for exactly one token. */
  decodeTokens: number;
  /** Tokens of requests scheduled for more than one. */
  prefillTokens: number;
  /** Σ tokens already in the KV of the decode requests (attention reads them). */
  decodeContextTokens: number;
  /** Σ n × (c + n/2) over the prefill chunks (attention pairs). */
  prefillContextPairs: number;
  /** Adapters loaded into a slot for this step. */
  loraLoads: number;
  /** `awaitKv` requests whose blocks were allocated while planning this step (their KV may come now). */
  readonly kvAllocated: Seq[];
  /** Requests preempted while scheduling this step. */
  preempted: number;
  /** `seqs[admittedFrom..]` came from the waiting queue in this step (the rest were running). */
  admittedFrom: number;
}

/** Receives what happens at the end of a step. */
export interface StepSink {
  /** `seq` sampled a token (already appended to `seq.tokens`; text in `seq.answer.text`). */
  token(seq: Seq): void;
  /** `seq` generated its last token; its blocks are already freed. */
  finished(seq: Seq): void;
  /** Block `index` of `seq` was registered in the prefix cache under `seq.blockHashes[index]`. */
  stored?(seq: Seq, index: number): void;
}

/** Waiting queue, running batch, and the step logic; see the file comment. */
export class Scheduler {
  readonly #kv: KvCache;
  readonly #lora: LoraSlots;
  readonly #limits: SchedulerLimits;
  readonly #waiting = new Deque<Seq>(); // may hold finished (aborted) seqs, skipped lazily
  #running: Seq[] = []; // admission order; may hold finished seqs until the next compaction
  #numWaiting = 0;
  #numRunning = 0;
  readonly #waitingLoras = new Map<string, number>();
  readonly #plan: StepPlan = { seqs: [], decodeTokens: 0, prefillTokens: 0, decodeContextTokens: 0, prefillContextPairs: 0, loraLoads: 0, kvAllocated: [], preempted: 0, admittedFrom: 0 };
  #numAwaitingKv = 0;
  readonly #skipped: Seq[] = [];

  /** Prefix-cache lookups in tokens (vLLM `prefix_cache_queries`), cumulative. */
  prefixQueriesTokens = 0;
  /** Prefix-cache hits in tokens (vLLM `prefix_cache_hits`), cumulative. */
  prefixHitsTokens = 0;
  /** Preemptions (vLLM `num_preemptions`), cumulative. */
  preemptionsTotal = 0;
  /** Prompt tokens whose KV came from a prefill engine (`remotePrefill` admissions), cumulative. */
  remotePrefillTokens = 0;
  /** Blocks held by finished `holdKv` requests (a prefill leg's KV waiting to be pulled). */
  heldBlocks = 0;

  constructor(kv: KvCache, lora: LoraSlots, limits: SchedulerLimits) {
    this.#kv = kv;
    this.#lora = lora;
    this.#limits = limits;
  }

  /** Requests in the waiting queue (new, preempted, LoRA-blocked). */
  get numWaiting(): number {
    return this.#numWaiting;
  }

  /** Requests in the running batch. */
  get numRunning(): number {
    return this.#numRunning;
  }

  /** `awaitKv` requests holding their blocks while their KV is on its way (vLLM's WAITING_FOR_REMOTE_KVS). */
  get numAwaitingKv(): number {
    return this.#numAwaitingKv;
  }

  /**
   * The remote KV of an `awaitKv` request has arrived: one whose blocks are allocated goes to the
   * front of the waiting queue (to run its first decode step when the batch has room); one not
   * admitted yet will not wait after its admission.
   */
  kvArrived(seq: Seq): void {
    if (!seq.awaitKv) return;
    seq.awaitKv = false;
    if (seq.state !== 'awaiting-kv') return;
    this.#numAwaitingKv--;
    seq.state = 'waiting';
    this.#waiting.pushFront(seq);
    this.#enterWaiting(seq);
  }

  /** Adapters with at least one waiting request. */
  waitingLoras(): string[] {
    return [...this.#waitingLoras.keys()];
  }

  /** Appends a request to the waiting queue. */
  add(seq: Seq): void {
    seq.state = 'waiting';
    this.#waiting.pushBack(seq);
    this.#enterWaiting(seq);
  }

  /** Removes a waiting or running request (abort): frees its blocks and slot pin at once. */
  remove(seq: Seq): void {
    if (seq.state === 'waiting') {
      this.#leaveWaiting(seq); // the deque entry is dropped lazily
      if (seq.blocks.length > 0) {
        // Its KV arrived: it holds the blocks and adapter pin it got at admission.
        this.#kv.release(seq.blocks);
        seq.blocks = [];
        if (seq.adapter !== null) this.#lora.release(seq.adapter);
      }
    } else if (seq.state === 'awaiting-kv') {
      this.#numAwaitingKv--;
      this.#kv.release(seq.blocks);
      seq.blocks = [];
      if (seq.adapter !== null) this.#lora.release(seq.adapter);
    } else if (seq.state === 'running') {
      this.#releaseRunning(seq);
    }
    seq.state = 'finished';
  }

  /** Plans one step at modelled time `now`; see the file comment. */
  schedule(now: number): StepPlan {
    const plan = this.#plan;
    plan.seqs.length = 0;
    plan.decodeTokens = 0;
    plan.prefillTokens = 0;
    plan.decodeContextTokens = 0;
    plan.prefillContextPairs = 0;
    plan.loraLoads = 0;
    plan.kvAllocated.length = 0;
    plan.preempted = 0;
    this.#compactRunning();
    let budget = this.#limits.maxNumBatchedTokens;

    // 1. Running requests.
    const running = this.#running;
    for (let i = 0; i < running.length && budget > 0; i++) {
      const seq = running[i]!;
      const n = Math.min(seq.numTokens - seq.numComputed, budget);
      if (n <= 0) continue; // cannot happen: a running request always has a token to compute
      const need = this.#kv.blocksFor(seq.numComputed + n) - seq.blocks.length;
      let self = false;
      while (need > this.#kv.numFree) {
        const victim = this.#popNewestRunning();
        if (victim === undefined) break;
        this.#preempt(victim);
        plan.preempted++;
        if (victim === seq) {
          self = true;
          break;
        }
      }
      if (self) break; // it was the newest: nothing after it is left to schedule
      if (!this.#kv.allocate(need, seq.blocks)) break; // unreachable: preemption freed enough
      this.#addToPlan(seq, n);
      budget -= n;
    }

    // 2. Waiting requests, FCFS, unless this step had to preempt (as vLLM).
    plan.admittedFrom = plan.seqs.length;
    if (plan.preempted === 0) {
      const skipped = this.#skipped;
      while (budget > 0 && this.#numRunning < this.#limits.maxNumSeqs) {
        const seq = this.#waiting.popFront();
        if (seq === undefined) break;
        if (seq.state !== 'waiting') continue; // aborted while waiting
        if (seq.adapter !== null && !this.#lora.canAcquire(seq.adapter)) {
          skipped.push(seq);
          continue;
        }
        const admitted = this.#admit(seq, budget, now);
        if (admitted < 0) {
          this.#waiting.pushFront(seq); // head of line: wait for blocks
          break;
        }
        budget -= admitted;
      }
      for (let i = skipped.length - 1; i >= 0; i--) this.#waiting.pushFront(skipped[i]!);
      skipped.length = 0;
    }
    return plan;
  }

  /**
   * Ends the step planned by the last `schedule()`: advances computed tokens, registers full
   * blocks, samples tokens, finishes requests. Requests removed meanwhile (abort) are skipped.
   */
  complete(sink: StepSink): void {
    const seqs = this.#plan.seqs;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      if (seq.state !== 'running') continue;
      seq.numComputed += seq.scheduled;
      seq.scheduled = 0;
      this.#registerComputedBlocks(seq, sink);
      if (seq.numComputed < seq.numTokens) continue; // prefill chunk, more to come
      seq.sample();
      sink.token(seq);
      if (seq.state !== 'running') continue; // aborted from the token callback
      if (seq.numOutput >= seq.target) {
        this.#releaseRunning(seq, seq.holdKv);
        seq.state = 'finished';
        sink.finished(seq);
      }
    }
    seqs.length = 0;
  }

  // --- internals --------------------------------------------------------------------------------

  /**
   * Tries to admit a waiting request; returns the tokens scheduled (0 for an `awaitKv` request now
   * holding its blocks until its KV arrives), or -1 if its blocks do not fit.
   */
  #admit(seq: Seq, budget: number, now: number): number {
    if (seq.blocks.length > 0) return this.#resume(seq);
    const kv = this.#kv;
    const bs = kv.blockSize;
    const numTokens = seq.numTokens;
    // vLLM never serves the last token from the cache: it must be computed to sample the next one.
    const hitBlocks = kv.matchPrefix(seq.blockHashes, Math.floor((numTokens - 1) / bs));
    let computed = hitBlocks * bs;
    let n: number;
    if (seq.remotePrefill) {
      // The prompt's KV arrived from the prefill engine: its blocks are allocated and filled by
      // the transfer, and the first step is a decode step (it samples the first token).
      computed = numTokens - 1;
      n = 1;
      this.remotePrefillTokens += numTokens;
    } else {
      n = Math.min(numTokens - computed, budget);
    }
    const need = kv.blocksFor(computed + n) - hitBlocks;
    if (need + kv.countFreeHits(seq.blockHashes, hitBlocks) > kv.numFree) return -1;

    kv.acquireHits(seq.blockHashes, hitBlocks, seq.blocks);
    kv.allocate(need, seq.blocks);
    this.prefixQueriesTokens += numTokens;
    this.prefixHitsTokens += hitBlocks * bs;
    if (seq.firstScheduledMs === null) {
      seq.firstScheduledMs = now;
      seq.cachedTokens = hitBlocks * bs;
    }
    seq.numComputed = computed;
    seq.numRegistered = hitBlocks;
    seq.remotePrefill = false;
    if (seq.adapter !== null && this.#lora.acquire(seq.adapter) === 'loaded') this.#plan.loraLoads++;

    this.#leaveWaiting(seq);
    if (seq.awaitKv) {
      // Blocks allocated for the KV to land in; the request runs once it has arrived.
      seq.state = 'awaiting-kv';
      this.#numAwaitingKv++;
      this.#plan.kvAllocated.push(seq);
      return 0;
    }
    seq.state = 'running';
    this.#running.push(seq);
    this.#numRunning++;
    this.#addToPlan(seq, n);
    return n;
  }

  /** A request whose blocks were allocated before its KV arrived: its first decode step. */
  #resume(seq: Seq): number {
    this.#leaveWaiting(seq);
    seq.state = 'running';
    this.#running.push(seq);
    this.#numRunning++;
    this.#addToPlan(seq, 1);
    return 1;
  }

  /** Adds `n` tokens of `seq` (its first `numComputed` already in the KV) to the step's work. */
  #addToPlan(seq: Seq, n: number): void {
    const plan = this.#plan;
    seq.scheduled = n;
    plan.seqs.push(seq);
    if (n === 1) {
      plan.decodeTokens++;
      plan.decodeContextTokens += seq.numComputed;
    } else {
      plan.prefillTokens += n;
      plan.prefillContextPairs += chunkContextPairs(seq.numComputed, n);
    }
  }

  #registerComputedBlocks(seq: Seq, sink: StepSink): void {
    if (!seq.cached) return;
    const full = Math.floor(seq.numComputed / seq.blockSize);
    for (let b = seq.numRegistered; b < full; b++) {
      if (this.#kv.cacheBlock(seq.blocks[b]!, seq.blockHashes[b]!)) sink.stored?.(seq, b);
    }
    if (full > seq.numRegistered) seq.numRegistered = full;
  }

  #preempt(seq: Seq): void {
    this.#releaseRunning(seq);
    seq.numComputed = 0;
    seq.numRegistered = 0;
    seq.scheduled = 0;
    seq.preemptions++;
    this.preemptionsTotal++;
    seq.state = 'waiting';
    this.#waiting.pushFront(seq);
    this.#enterWaiting(seq);
  }

  /** Frees the blocks a finished `holdKv` request kept (no-op when it holds none). */
  releaseHeld(seq: Seq): void {
    const blocks = seq.heldBlocks;
    if (blocks === null) return;
    seq.heldBlocks = null;
    this.heldBlocks -= blocks.length;
    this.#kv.release(blocks);
  }

  /**
   * Frees a running request's blocks (or, with `keep`, moves them to `heldBlocks`) and its LoRA
   * pin; the array entry is dropped lazily.
   */
  #releaseRunning(seq: Seq, keep = false): void {
    if (keep) {
      seq.heldBlocks = seq.blocks;
      this.heldBlocks += seq.blocks.length;
    } else {
      this.#kv.release(seq.blocks);
    }
    seq.blocks = [];
    if (seq.adapter !== null) this.#lora.release(seq.adapter);
    this.#numRunning--;
    seq.state = 'finished'; // callers set the real next state
  }

  #popNewestRunning(): Seq | undefined {
    const running = this.#running;
    for (;;) {
      const seq = running.pop();
      if (seq === undefined || seq.state === 'running') return seq;
    }
  }

  #compactRunning(): void {
    const running = this.#running;
    let w = 0;
    for (let r = 0; r < running.length; r++) {
      const seq = running[r]!;
      if (seq.state === 'running') running[w++] = seq;
    }
    running.length = w;
  }

  #enterWaiting(seq: Seq): void {
    this.#numWaiting++;
    if (seq.adapter !== null) this.#waitingLoras.set(seq.adapter, (this.#waitingLoras.get(seq.adapter) ?? 0) + 1);
  }

  #leaveWaiting(seq: Seq): void {
    this.#numWaiting--;
    if (seq.adapter !== null) {
      const n = (this.#waitingLoras.get(seq.adapter) ?? 1) - 1;
      if (n === 0) this.#waitingLoras.delete(seq.adapter);
      else this.#waitingLoras.set(seq.adapter, n);
    }
  }
}
