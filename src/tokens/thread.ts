/**
 * The process's one tokenizer worker thread, seen from the main thread: jobs out, replies back by
 * id. Started on first use, shared by every loaded tokenizer (each directory is loaded once in it),
 * ended when the last tokenizer closes.
 *
 * A worker that dies (an exception escaping, out of memory, terminated) fails every job it held
 * with `TokenizeError('worker')` (or a load error) at once, never leaving a caller waiting, and
 * the next job starts a fresh worker, which reloads its tokenizers on demand. A worker stuck on
 * one job (no answer for the job's `stallMs`: pathological text can cost 20× the usual ~1 µs per
 * character) is treated the same way: terminated, its jobs failed, replaced. The worker is
 * referenced (keeps the process alive) only while it has jobs, so a forgotten close() never
 * holds a process open.
 */

import { Worker } from 'node:worker_threads';
import { TokenizeError, TokenizerLoadError } from './errors.js';
import type { WorkerReply, WorkerRequest } from './protocol.js';

type Distribute<T> = T extends unknown ? Omit<T, 'id'> : never;
export type JobRequest = Distribute<WorkerRequest>;

interface Pending {
  readonly stallMs: number;
  readonly sentAt: number;
  readonly resolve: (reply: WorkerReply) => void;
  readonly reject: (err: Error) => void;
  readonly dir: string;
  readonly op: WorkerRequest['op'];
}

/** Process-wide counters of the worker thread. */
export interface ThreadCounters {
  /** Workers started (1 + restarts). */
  readonly starts: number;
  /** Workers that died or failed while holding jobs, or exited unasked. */
  readonly deaths: number;
}

/** How often a busy worker is checked for a stalled job, ms. */
const WATCHDOG_MS = 250;
/**
 * The stall bound of a job whose tokenizer the worker has yet to load (the first job, or the first
 * after a restart): loading Llama 3's 9 MB tokenizer.json takes ~1 s; allow a slow disk and a
 * busy machine.
 */
export const LOAD_STALL_MS = 60_000;

export class TokenizerThread {
  #worker: Worker | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #users = 0;
  #starts = 0;
  #deaths = 0;
  /** When the worker last answered (or became busy): a job older than this is the one running. */
  #progressAt = 0;
  #watchdog: NodeJS.Timeout | undefined;
  /** Directories the current worker has loaded. */
  #loaded = new Set<string>();

  /** A tokenizer starts using the thread. */
  acquire(): void {
    this.#users++;
  }

  /** A tokenizer stops using the thread; the last one ends the worker (its jobs fail as `closed`). */
  release(): void {
    if (this.#users === 0) return;
    this.#users--;
    if (this.#users === 0) this.#stop(new TokenizeError('closed', 'the tokenizer was closed'));
  }

  counters(): ThreadCounters {
    return { starts: this.#starts, deaths: this.#deaths };
  }

  /** Whether a worker thread is running (tests: close() ends it). */
  get running(): boolean {
    return this.#worker !== undefined;
  }

  /**
   * Sends a job; resolves with the worker's reply, rejects if the worker dies first or spends over
   * `stallMs` on this job once it is the oldest.
   */
  request(job: JobRequest, stallMs: number, transfer: readonly ArrayBuffer[] = []): Promise<WorkerReply> {
    const worker = this.#worker ?? this.#start();
    const id = this.#nextId++;
    return new Promise<WorkerReply>((resolve, reject) => {
      const now = performance.now();
      const bound = this.#loaded.has(job.dir) ? stallMs : Math.max(stallMs, LOAD_STALL_MS);
      this.#pending.set(id, { stallMs: bound, sentAt: now, resolve, reject, dir: job.dir, op: job.op });
      if (this.#pending.size === 1) {
        worker.ref();
        this.#progressAt = now;
        this.#watchdog ??= setInterval(() => this.#checkStall(), WATCHDOG_MS).unref();
      }
      try {
        worker.postMessage({ ...job, id }, transfer as ArrayBuffer[]);
      } catch (err) {
        // Not cloneable: nothing was sent, so nothing will answer.
        this.#pending.delete(id);
        if (this.#pending.size === 0) worker.unref();
        reject(new TokenizeError('invalid-message', `cannot send the job to the worker: ${(err as Error).message}`));
      }
    });
  }

  #checkStall(): void {
    const oldest = this.#pending.values().next().value;
    const w = this.#worker;
    if (oldest === undefined || w === undefined) {
      clearInterval(this.#watchdog);
      this.#watchdog = undefined;
      return;
    }
    const busyMs = performance.now() - Math.max(oldest.sentAt, this.#progressAt);
    if (busyMs > oldest.stallMs) this.#died(w, new Error(`no answer for ${Math.round(busyMs)} ms on one job`));
  }

  /** Kills the worker as a crash would (tests: restart and failed jobs). */
  kill(): void {
    const w = this.#worker;
    if (w === undefined) return;
    this.#died(w, new Error('killed'));
  }

  #start(): Worker {
    const worker = new Worker(new URL('./worker.js', import.meta.url));
    this.#starts++;
    worker.unref();
    worker.on('message', (reply: WorkerReply) => {
      const p = this.#pending.get(reply.id);
      if (p === undefined) return;
      this.#pending.delete(reply.id);
      this.#progressAt = performance.now();
      if (reply.ok && this.#worker === worker) this.#loaded.add(p.dir);
      if (this.#pending.size === 0 && this.#worker === worker) worker.unref();
      p.resolve(reply);
    });
    worker.on('error', (err) => this.#died(worker, err));
    worker.on('exit', (code) => this.#died(worker, new Error(`exited with code ${code}`)));
    this.#worker = worker;
    this.#loaded = new Set();
    return worker;
  }

  #died(worker: Worker, err: Error): void {
    if (this.#worker !== worker) return; // already replaced or stopped
    this.#worker = undefined;
    this.#deaths++;
    void worker.terminate();
    this.#failAll((p) =>
      p.op === 'load'
        ? new TokenizerLoadError(p.dir, `the tokenizer worker died while loading (${err.message})`)
        : new TokenizeError('worker', `the tokenizer worker died (${err.message}); it restarts for the next request`),
    );
  }

  #stop(err: Error): void {
    const w = this.#worker;
    this.#worker = undefined;
    if (w !== undefined) void w.terminate();
    this.#failAll(() => err);
  }

  #failAll(errorFor: (p: Pending) => Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    for (const p of pending) p.reject(errorFor(p));
  }
}

let shared: TokenizerThread | undefined;

/** The process's tokenizer thread. */
export function tokenizerThread(): TokenizerThread {
  shared ??= new TokenizerThread();
  return shared;
}
