/**
 * Per-request scheduling data one plugin produces for another (the prefix scorer's match lengths,
 * read again when the request finishes). Keys are typed, so `read` needs no cast; the state hangs
 * off the request and dies with it.
 */
export interface StateKey<T> {
  readonly name: string;
  /** Phantom field carrying T; never set. */
  readonly __type?: T;
}

export function stateKey<T>(name: string): StateKey<T> {
  return { name };
}

export class CycleState {
  readonly #values = new Map<StateKey<unknown>, unknown>();

  write<T>(key: StateKey<T>, value: T): void {
    this.#values.set(key, value);
  }

  read<T>(key: StateKey<T>): T | undefined {
    return this.#values.get(key) as T | undefined;
  }
}
