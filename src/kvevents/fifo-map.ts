/**
 * A Map that also gives its oldest entry in O(1) amortised, for eviction in insertion order.
 *
 * `map.keys().next()` on a plain V8 Map is O(deleted entries before the first live one): V8 keeps
 * deleted slots until the table is rehashed, so evicting from the front of a 50,000-entry Map a
 * million times costs about a minute (measured, Node 20). This keeps one live iterator instead, so
 * each slot is passed once. `set` of an existing key moves it to the end (it is young again).
 */
export class FifoMap<V> {
  readonly #map = new Map<number, V>();
  #cursor: IterableIterator<[number, V]> | undefined;
  /** The oldest entry, already taken from the cursor; undefined when not peeked yet. */
  #head: [number, V] | undefined;

  get size(): number {
    return this.#map.size;
  }

  get(key: number): V | undefined {
    return this.#map.get(key);
  }

  has(key: number): boolean {
    return this.#map.has(key);
  }

  set(key: number, value: V): void {
    this.delete(key);
    this.#map.set(key, value);
  }

  delete(key: number): boolean {
    if (this.#head !== undefined && this.#head[0] === key) this.#head = undefined;
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
    this.#cursor = undefined;
    this.#head = undefined;
  }

  /** The oldest entry, or undefined when empty. */
  oldest(): readonly [number, V] | undefined {
    if (this.#head !== undefined) return this.#head;
    if (this.#map.size === 0) return undefined;
    for (let pass = 0; pass < 2; pass++) {
      this.#cursor ??= this.#map.entries();
      for (;;) {
        const r = this.#cursor.next();
        if (r.done === true) break;
        // The cursor may pass an entry later moved to the end; only the live position counts.
        if (this.#map.has(r.value[0])) {
          this.#head = r.value;
          return r.value;
        }
      }
      this.#cursor = undefined; // exhausted iterators stay done: start again from the front
    }
    return undefined;
  }

  /** Removes and returns the oldest entry. */
  shift(): readonly [number, V] | undefined {
    const e = this.oldest();
    if (e !== undefined) this.delete(e[0]);
    return e;
  }

  /** Entries, oldest first. */
  entries(): IterableIterator<[number, V]> {
    return this.#map.entries();
  }
}
