import type { Endpoint, ServedModel } from '../core/endpoint.js';

/**
 * What the endpoints' own `GET /v1/models` lists say, counted per endpoint so that one endpoint
 * arriving or leaving (a pod event) costs O(its own list), not O(all endpoints): which model ids
 * some endpoint serves, and each LoRA adapter's base model.
 */
export class ServedModels {
  /** The list each endpoint was counted with (its `servedModels` may change later: `reset` then). */
  readonly #counted = new Map<Endpoint, readonly ServedModel[]>();
  /** Model id → how many counted endpoints list it. */
  readonly #ids = new Map<string, number>();
  /** Adapter id → base model → how many endpoints list that pair, in the order first seen. */
  readonly #parents = new Map<string, Map<string, number>>();

  /** Counts `endpoints` afresh (after a configuration change or a changed list). */
  reset(endpoints: Iterable<Endpoint>): void {
    this.#counted.clear();
    this.#ids.clear();
    this.#parents.clear();
    for (const e of endpoints) this.add(e);
  }

  /** Counts an endpoint that joined (its list as it is now); once per endpoint. */
  add(endpoint: Endpoint): void {
    if (this.#counted.has(endpoint)) return;
    const list = endpoint.servedModels ?? [];
    this.#counted.set(endpoint, list);
    for (const m of list) {
      this.#ids.set(m.id, (this.#ids.get(m.id) ?? 0) + 1);
      if (m.parent === null) continue;
      let parents = this.#parents.get(m.id);
      if (parents === undefined) {
        parents = new Map();
        this.#parents.set(m.id, parents);
      }
      parents.set(m.parent, (parents.get(m.parent) ?? 0) + 1);
    }
  }

  /** Uncounts an endpoint that left. */
  remove(endpoint: Endpoint): void {
    const list = this.#counted.get(endpoint);
    if (list === undefined) return;
    this.#counted.delete(endpoint);
    for (const m of list) {
      const n = (this.#ids.get(m.id) ?? 1) - 1;
      if (n > 0) this.#ids.set(m.id, n);
      else this.#ids.delete(m.id);
      if (m.parent === null) continue;
      const parents = this.#parents.get(m.id);
      const p = (parents?.get(m.parent) ?? 1) - 1;
      if (p > 0) parents?.set(m.parent, p);
      else parents?.delete(m.parent);
      if (parents?.size === 0) this.#parents.delete(m.id);
    }
  }

  /** True when some counted endpoint lists `id`. */
  has(id: string): boolean {
    return this.#ids.has(id);
  }

  /** The base model of adapter `id` (of the endpoints listing it, the pair seen first wins). */
  baseOf(id: string): string | undefined {
    const parents = this.#parents.get(id);
    if (parents === undefined) return undefined;
    for (const parent of parents.keys()) return parent;
    return undefined;
  }
}
