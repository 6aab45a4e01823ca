import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/**
 * How late this process's own event loop has been running lately. A scrape that times out while
 * the gateway itself was starved (a flood of large bodies to parse and hash, a long GC) says
 * nothing about the model server: its answer may have been waiting in the socket for the loop.
 * Counting such timeouts would let a client's load mark every healthy server down. The worst
 * delay over the current and the previous one-second window is what a scrape that just failed
 * lived through.
 */
export class LoopLag {
  readonly #histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  #windowStart = performance.now();
  #previousMaxMs = 0;

  constructor() {
    this.#histogram.enable();
  }

  /** The worst event-loop delay, in ms, seen in the last one to two seconds. */
  recentMaxMs(): number {
    const now = performance.now();
    if (now - this.#windowStart >= 1000) {
      this.#previousMaxMs = this.#currentMaxMs();
      this.#histogram.reset();
      this.#windowStart = now;
    }
    return Math.max(this.#previousMaxMs, this.#currentMaxMs());
  }

  close(): void {
    this.#histogram.disable();
  }

  #currentMaxMs(): number {
    // The histogram is in nanoseconds; empty, its max is 0.
    return this.#histogram.max / 1e6;
  }
}
