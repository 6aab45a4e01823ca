import type { RequestSpec, Workload, WorkloadKind } from './types.js';

/**
 * A workload whose requests never depend on answers: request `seq` is `make(seq)`, always ready.
 * It never finishes; the runner's request or time bound ends the run. `make` must be a pure
 * function of `seq` (and the seed it closes over) so the sequence repeats run to run.
 */
export class StaticWorkload implements Workload {
  readonly kind: WorkloadKind;
  readonly size: number;
  readonly done = false;
  readonly finite = false;
  readonly #make: (seq: number) => RequestSpec;
  #seq = 0;

  constructor(kind: WorkloadKind, size: number, make: (seq: number) => RequestSpec) {
    this.kind = kind;
    this.size = size;
    this.#make = make;
  }

  next(): RequestSpec {
    return this.#make(this.#seq++);
  }

  complete(): void {}
}
