/**
 * A growable ring-buffer double-ended queue. The scheduler's waiting queue needs O(1) push at the
 * back (new requests), push at the front (preempted or skipped requests go back first) and pop at
 * the front; `Array.prototype.shift/unshift` are O(n).
 */
export class Deque<T> {
  #buf: (T | undefined)[] = new Array<T | undefined>(16);
  #head = 0;
  #size = 0;

  /** Number of items. */
  get length(): number {
    return this.#size;
  }

  /** Appends at the back. */
  pushBack(item: T): void {
    if (this.#size === this.#buf.length) this.#grow();
    this.#buf[(this.#head + this.#size) % this.#buf.length] = item;
    this.#size++;
  }

  /** Inserts at the front. */
  pushFront(item: T): void {
    if (this.#size === this.#buf.length) this.#grow();
    this.#head = (this.#head - 1 + this.#buf.length) % this.#buf.length;
    this.#buf[this.#head] = item;
    this.#size++;
  }

  /** Removes and returns the front item, or undefined when empty. */
  popFront(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#buf[this.#head];
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#buf.length;
    this.#size--;
    return item;
  }

  /** The front item without removing it. */
  peekFront(): T | undefined {
    return this.#size === 0 ? undefined : this.#buf[this.#head];
  }

  /** Items front to back. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.#size; i++) yield this.#buf[(this.#head + i) % this.#buf.length] as T;
  }

  #grow(): void {
    const old = this.#buf;
    const next = new Array<T | undefined>(old.length * 2);
    for (let i = 0; i < this.#size; i++) next[i] = old[(this.#head + i) % old.length];
    this.#buf = next;
    this.#head = 0;
  }
}
