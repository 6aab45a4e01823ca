/** A source of uniform numbers in [0, 1); injectable so tests can be deterministic. */
export type Random = () => number;

/**
 * A weighted choice table built once when the config compiles, so a request pays one binary search.
 * Entries with weight 0 are kept out; a table whose weights are all 0 is empty.
 */
export class WeightedTable<T> {
  readonly #items: readonly T[];
  readonly #cumulative: Float64Array;
  readonly total: number;

  constructor(entries: ReadonlyArray<{ readonly item: T; readonly weight: number }>) {
    const kept = entries.filter((e) => e.weight > 0);
    this.#items = kept.map((e) => e.item);
    this.#cumulative = new Float64Array(kept.length);
    let sum = 0;
    kept.forEach((e, i) => {
      sum += e.weight;
      this.#cumulative[i] = sum;
    });
    this.total = sum;
  }

  get size(): number {
    return this.#items.length;
  }

  get items(): readonly T[] {
    return this.#items;
  }

  /**
   * Draws among the items `keep` accepts, each with probability weight / (the kept weights' sum):
   * the table's weights renormalised over a subset. `undefined` when `keep` accepts none.
   */
  pickWhere(random: Random, keep: (item: T, index: number) => boolean): T | undefined {
    const n = this.#items.length;
    let total = 0;
    let last = -1;
    for (let i = 0; i < n; i++) {
      if (!keep(this.#items[i] as T, i)) continue;
      total += this.#weight(i);
      last = i;
    }
    if (last < 0) return undefined;
    const x = random() * total;
    let sum = 0;
    for (let i = 0; i < last; i++) {
      if (!keep(this.#items[i] as T, i)) continue;
      sum += this.#weight(i);
      if (x < sum) return this.#items[i];
    }
    return this.#items[last];
  }

  #weight(i: number): number {
    return (this.#cumulative[i] ?? 0) - (i === 0 ? 0 : (this.#cumulative[i - 1] ?? 0));
  }

  /** Draws an item with probability weight / total; `undefined` when the table is empty. */
  pick(random: Random): T | undefined {
    const n = this.#items.length;
    if (n <= 1) return this.#items[0];
    const x = random() * this.total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (x < (this.#cumulative[mid] ?? 0)) hi = mid;
      else lo = mid + 1;
    }
    return this.#items[lo];
  }
}

/** A small seedable PRNG (mulberry32) for reproducible tests and benchmarks; not for security. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
