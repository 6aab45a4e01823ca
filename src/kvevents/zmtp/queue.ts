/**
 * Received messages waiting for the reader: at most `capacity` (the socket's receive high-water
 * mark), one reader at a time, which may wait with a timeout. Whether a full queue drops (SUB)
 * or stops reading (DEALER) is the socket's choice: `push` refuses past capacity.
 */
interface Waiter {
  readonly resolve: (m: Buffer[] | undefined) => void;
  readonly reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

export class MessageQueue {
  readonly #capacity: number;
  readonly #items: Buffer[][] = [];
  #head = 0;
  #waiter: Waiter | undefined;
  #closed = false;

  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
  }

  get length(): number {
    return this.#items.length - this.#head;
  }

  get full(): boolean {
    return this.length >= this.#capacity;
  }

  /** Hands `frames` to a waiting reader or queues them; false (not queued) when full or closed. */
  push(frames: Buffer[]): boolean {
    if (this.#closed) return false;
    const w = this.#waiter;
    if (w !== undefined) {
      this.#waiter = undefined;
      clearTimeout(w.timer);
      w.resolve(frames);
      return true;
    }
    if (this.full) return false;
    this.#items.push(frames);
    return true;
  }

  /**
   * The next message; undefined once closed. `timeoutMs` < 0 waits for ever; on timeout rejects
   * with an Error whose `code` is 'EAGAIN' (as zeromq.js's receive does). A second reader while
   * one waits rejects with 'EBUSY'.
   */
  next(timeoutMs = -1): Promise<Buffer[] | undefined> {
    if (this.length > 0) {
      const m = this.#items[this.#head]!;
      this.#items[this.#head++] = [];
      if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
        this.#items.splice(0, this.#head);
        this.#head = 0;
      }
      return Promise.resolve(m);
    }
    if (this.#closed) return Promise.resolve(undefined);
    if (this.#waiter !== undefined) return Promise.reject(codeError('EBUSY', 'another receive is already waiting'));
    return new Promise((resolve, reject) => {
      const w: Waiter = { resolve, reject };
      if (timeoutMs >= 0) {
        w.timer = setTimeout(() => {
          if (this.#waiter === w) this.#waiter = undefined;
          reject(codeError('EAGAIN', 'Socket temporarily unavailable'));
        }, timeoutMs);
      }
      this.#waiter = w;
    });
  }

  /** Drops what waits; a waiting reader gets undefined. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#items.length = 0;
    this.#head = 0;
    const w = this.#waiter;
    this.#waiter = undefined;
    if (w !== undefined) {
      clearTimeout(w.timer);
      w.resolve(undefined);
    }
  }
}

/** An Error with a zeromq.js-style `code` ('EAGAIN', 'EBUSY', 'ENOTSOCK'). */
export function codeError(code: string, message: string): Error & { code: string } {
  return Object.assign(new Error(message), { code });
}
