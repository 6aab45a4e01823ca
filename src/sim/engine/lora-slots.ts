/**
 * GPU slots for LoRA adapters (vLLM `--max-loras`).
 *
 * An adapter occupies a slot while it is resident. A slot is pinned while any running request uses
 * its adapter; an unpinned adapter stays resident (a later request needs no reload) until a new
 * adapter needs the slot, which evicts the least recently used unpinned adapter — like
 * llm-d-inference-sim, which evicts idle adapters, and vLLM, which never runs more than
 * `max_loras` adapters in one batch.
 */

/** What {@link LoraSlots.acquire} found. */
export type LoraAcquire =
  /** already resident: no load cost */
  | 'resident'
  /** put into a slot now (free or evicted): the step pays the load time */
  | 'loaded'
  /** every slot is pinned by running requests: the request must wait */
  | 'blocked';

interface Slot {
  running: number;
  lastUsed: number;
}

/** Residency and pinning of adapters; see the file comment. */
export class LoraSlots {
  /** Number of GPU slots. */
  readonly maxLoras: number;
  readonly #slots = new Map<string, Slot>();
  #tick = 0;

  /** @param maxLoras slots (vLLM default 1); 0 means no adapter can run */
  constructor(maxLoras: number) {
    if (!Number.isInteger(maxLoras) || maxLoras < 0) throw new RangeError(`maxLoras must be an integer >= 0, got ${maxLoras}`);
    this.maxLoras = maxLoras;
  }

  /** Whether `name` could be scheduled now without waiting (resident, or a slot can be freed). */
  canAcquire(name: string): boolean {
    if (this.#slots.has(name)) return true;
    if (this.#slots.size < this.maxLoras) return true;
    for (const s of this.#slots.values()) if (s.running === 0) return true;
    return false;
  }

  /**
   * Makes `name` resident if possible (evicting the least recently used unpinned adapter when all
   * slots are taken) and pins it for one running request. Returns how it got there; on 'blocked'
   * nothing changes.
   */
  acquire(name: string): LoraAcquire {
    const existing = this.#slots.get(name);
    if (existing !== undefined) {
      existing.running++;
      existing.lastUsed = ++this.#tick;
      return 'resident';
    }
    if (this.#slots.size >= this.maxLoras) {
      let victim: string | undefined;
      let oldest = Infinity;
      for (const [n, s] of this.#slots) {
        if (s.running === 0 && s.lastUsed < oldest) {
          oldest = s.lastUsed;
          victim = n;
        }
      }
      if (victim === undefined) return 'blocked';
      this.#slots.delete(victim);
    }
    this.#slots.set(name, { running: 1, lastUsed: ++this.#tick });
    return 'loaded';
  }

  /** Unpins `name` for one request (it finished, was aborted or preempted). */
  release(name: string): void {
    const s = this.#slots.get(name);
    if (s === undefined || s.running === 0) throw new Error(`LoRA ${name} released more often than acquired`);
    s.running--;
  }

  /** Drops an unpinned adapter from its slot (unload); returns false if absent or pinned. */
  evict(name: string): boolean {
    const s = this.#slots.get(name);
    if (s === undefined || s.running > 0) return false;
    return this.#slots.delete(name);
  }

  /** Adapters with at least one running request, in slot order. */
  running(): string[] {
    const out: string[] = [];
    for (const [n, s] of this.#slots) if (s.running > 0) out.push(n);
    return out;
  }

  /** Adapters resident in a slot (pinned or not). */
  resident(): string[] {
    return [...this.#slots.keys()];
  }
}
