/**
 * Virtual ("modelled") time for the simulator.
 *
 * Every latency the simulator reports — step durations, TTFT, histograms, timestamps — is in
 * modelled milliseconds. `timeScale` only says how fast modelled time runs against the wall clock:
 * at 10, a 120 ms modelled step takes 12 ms of real time. The *results* do not depend on the scale.
 *
 * How that is guaranteed:
 * - Timers live in one binary heap ordered by (due time, creation order). One Node timer is armed
 *   for the earliest entry; when it fires, every entry that is due is run in heap order. So two
 *   events 0.2 ms apart (modelled) run in the right order even when Node's ~1 ms timer granularity
 *   makes them fire in the same tick, and timers set from inside a callback that are already due
 *   run in the same drain. Timing errors never accumulate: a due time is absolute, so a late
 *   wake-up is followed by an earlier one (no drift).
 * - Inside a timer callback, `now()` is exactly that timer's due time, not a wall-clock reading,
 *   and it stays there for the promise continuations that callback triggers (each modelled instant
 *   runs in its own macrotask). A chain of steps therefore advances by the modelled durations only,
 *   and `await clock.sleep(10)` resumes exactly 10 modelled ms later.
 * - Outside callbacks (e.g. an HTTP request arriving), `now()` maps the wall clock to modelled
 *   time, but never past the earliest pending timer and never backwards. The clock can therefore
 *   never "skip over" an event that is due but has not run yet (say, when the CPU is busy).
 */

/** A pending timer; `cancel()` is idempotent. */
export interface SimTimer {
  /** Modelled time (ms) at which the callback runs. */
  readonly dueMs: number;
  cancel(): void;
}

/** Options for {@link SimClock}. */
export interface SimClockOptions {
  /** Modelled ms per real ms; default 1. Must be finite and > 0. Ignored when `virtual`. */
  timeScale?: number;
  /**
   * Discrete-event mode: the wall clock is never read. Time stands still between timers and jumps
   * to the next one as soon as the event loop comes round, so a run goes as fast as the CPU allows
   * and its timings are exact and repeatable (no wall-clock offset ever enters the arithmetic).
   * `now()` outside callbacks is the last instant run. For calibration and simulation runs that
   * no outside client talks to. `timeScale` reads Infinity.
   */
  virtual?: boolean;
  /** Unix epoch ms that modelled time 0 corresponds to; default `Date.now()` at construction. */
  epochMs?: number;
  /**
   * Called when a timer callback throws. Default: rethrow asynchronously (an uncaught exception),
   * after the drain has finished, so the clock's own state is never left half-updated.
   */
  onError?: (err: unknown) => void;
}

interface Entry extends SimTimer {
  readonly seq: number;
  fn: (() => void) | null;
}

/**
 * Above this much real time spent in one drain, the clock yields to the event loop (setImmediate)
 * so that sockets are served even when a "zero latency" engine has endless 0 ms steps queued.
 */
const DRAIN_SLICE_MS = 5;

/** Modelled clock with a timer heap; see the file comment for the guarantees. */
export class SimClock {
  /** Modelled ms per real ms. */
  readonly timeScale: number;
  /** Unix epoch ms at modelled time 0. */
  readonly epochMs: number;

  readonly #wallOrigin = performance.now();
  readonly #virtual: boolean;
  readonly #onError: (err: unknown) => void;
  #heap: Entry[] = [];
  #seq = 0;
  #lastNow = 0;
  #inCallback = false;
  /** True from a drained instant until the event loop comes round (see #drain). */
  #pinned = false;
  #callbackTime = 0;
  #closed = false;
  #nodeTimer: NodeJS.Timeout | null = null;
  #nodeTimerDue = Infinity;
  #immediate: NodeJS.Immediate | null = null;

  constructor(options: SimClockOptions = {}) {
    const scale = options.timeScale ?? 1;
    if (!Number.isFinite(scale) || scale <= 0) throw new RangeError(`timeScale must be a finite number > 0, got ${scale}`);
    this.#virtual = options.virtual === true;
    this.timeScale = this.#virtual ? Number.POSITIVE_INFINITY : scale;
    this.epochMs = options.epochMs ?? Date.now();
    this.#onError =
      options.onError ??
      ((err) => {
        setImmediate(() => {
          throw err;
        });
      });
  }

  /** Current modelled time in ms since the clock's origin (monotonic). */
  now(): number {
    if (this.#inCallback) return this.#callbackTime;
    if (this.#pinned || this.#virtual) return this.#lastNow;
    let t = this.#wallVirtual();
    const top = this.#heap[0];
    if (top !== undefined && top.dueMs < t) t = top.dueMs; // do not pass an event that has not run
    if (t < this.#lastNow) t = this.#lastNow;
    this.#lastNow = t;
    return t;
  }

  /** Modelled Unix epoch ms for modelled time `t` (default: now). */
  toEpochMs(t: number = this.now()): number {
    return this.epochMs + t;
  }

  /** Runs `fn` after `delayMs` modelled ms (negative counts as 0). After `close()` it never runs. */
  setTimeout(fn: () => void, delayMs: number): SimTimer {
    return this.at(this.now() + Math.max(0, delayMs), fn);
  }

  /** Runs `fn` at modelled time `timeMs` (or now, if that is in the past). */
  at(timeMs: number, fn: () => void): SimTimer {
    const now = this.now();
    const entry: Entry = {
      dueMs: timeMs > now ? timeMs : now,
      seq: this.#seq++,
      fn,
      cancel() {
        entry.fn = null; // lazily dropped when it reaches the top of the heap
      },
    };
    if (this.#closed) {
      entry.fn = null;
      return entry;
    }
    this.#push(entry);
    if (this.#heap[0] === entry) this.#arm();
    return entry;
  }

  /** Returns a promise resolved after `delayMs` modelled ms (handy in tests). */
  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, delayMs));
  }

  /** Number of timers not yet run or cancelled (for tests and diagnostics). */
  get pendingTimers(): number {
    let n = 0;
    for (const e of this.#heap) if (e.fn !== null) n++;
    return n;
  }

  /** Cancels every timer and stops the clock; later timers are ignored. */
  close(): void {
    this.#closed = true;
    this.#pinned = false;
    for (const e of this.#heap) e.fn = null;
    this.#heap = [];
    if (this.#nodeTimer !== null) clearTimeout(this.#nodeTimer);
    if (this.#immediate !== null) clearImmediate(this.#immediate);
    this.#nodeTimer = null;
    this.#immediate = null;
    this.#nodeTimerDue = Infinity;
  }

  /** The wall clock in modelled ms; in virtual mode always "later than any timer". */
  #wallVirtual(): number {
    return this.#virtual ? Number.POSITIVE_INFINITY : (performance.now() - this.#wallOrigin) * this.timeScale;
  }

  /** Arms the single Node timer for the earliest entry (unref'd: never keeps a process alive). */
  #arm(): void {
    if (this.#closed || this.#immediate !== null) return; // a pending drain re-arms at its end
    const top = this.#heap[0];
    if (top === undefined) {
      if (this.#nodeTimer !== null) clearTimeout(this.#nodeTimer);
      this.#nodeTimer = null;
      this.#nodeTimerDue = Infinity;
      return;
    }
    if (this.#nodeTimer !== null && this.#nodeTimerDue <= top.dueMs) return;
    if (this.#nodeTimer !== null) clearTimeout(this.#nodeTimer);
    const wallDelay = this.#virtual ? 0 : (top.dueMs - this.#wallVirtual()) / this.timeScale;
    this.#nodeTimerDue = top.dueMs;
    this.#nodeTimer = setTimeout(this.#drain, Math.max(0, Math.ceil(wallDelay)));
    this.#nodeTimer.unref();
  }

  /**
   * Runs every timer due at the earliest due instant (if that instant has come), then continues
   * in a fresh macrotask (setImmediate). One instant per macrotask means promise continuations of
   * a callback run before the next instant, and while catching up `now()` stays pinned to the
   * instant just run — so `await clock.sleep(x)` resumes at exactly the modelled time.
   */
  readonly #drain = (): void => {
    this.#nodeTimer = null;
    this.#nodeTimerDue = Infinity;
    this.#immediate = null;
    const first = this.#heap[0];
    if (this.#closed || first === undefined || first.dueMs > this.#wallVirtual()) {
      this.#pinned = false;
      this.#arm();
      return;
    }
    const instant = first.dueMs;
    const sliceStart = performance.now();
    let ran = 0;
    this.#pinned = true;
    if (instant > this.#lastNow) this.#lastNow = instant;
    for (;;) {
      const top = this.#heap[0];
      if (top === undefined || top.dueMs !== instant || this.#closed) break;
      this.#pop();
      const fn = top.fn;
      if (fn === null) continue;
      top.fn = null;
      this.#inCallback = true;
      this.#callbackTime = instant;
      try {
        fn();
      } catch (err) {
        this.#onError(err);
      } finally {
        this.#inCallback = false;
      }
      // A zero-latency loop can keep adding timers at this same instant: let sockets breathe.
      if ((++ran & 7) === 0 && performance.now() - sliceStart > DRAIN_SLICE_MS) break;
    }
    if (this.#closed) return;
    // Not unref'd: an unref'd immediate does not stop libuv from blocking in the poll phase until
    // the next ref'd timer. It lives only until the next loop turn; when nothing more is due the
    // drain arms the (unref'd) Node timer instead, so an idle clock never keeps a process alive.
    this.#immediate = setImmediate(this.#drain);
  };

  // --- binary heap on (dueMs, seq) -------------------------------------------------------------

  #less(a: Entry, b: Entry): boolean {
    return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.seq < b.seq);
  }

  #push(e: Entry): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (!this.#less(e, parent)) break;
      h[i] = parent;
      i = p;
    }
    h[i] = e;
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.#less(h[r]!, h[l]!) ? r : l;
      if (!this.#less(h[c]!, last)) break;
      h[i] = h[c]!;
      i = c;
    }
    h[i] = last;
  }
}
