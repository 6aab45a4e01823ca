/**
 * Exponential backoff with jitter, capped: delays of base·2^n (n = failures so far), each drawn
 * uniformly from [½, 1] of that so replicas that lost the API server together do not come back in
 * step (client-go's reflector backs off the same way: 800 ms doubling to 30 s, with jitter).
 */
export class Backoff {
  #failures = 0;

  constructor(
    readonly initialMs = 250,
    readonly maxMs = 10_000,
    readonly random: () => number = Math.random,
  ) {}

  /** The delay before the next attempt (ms); each call counts one more failure. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.#failures, 30));
    this.#failures++;
    return Math.round(base * (0.5 + 0.5 * this.random()));
  }

  /** After a success. */
  reset(): void {
    this.#failures = 0;
  }

  get failures(): number {
    return this.#failures;
  }
}
