import { Endpoint, endpointKey, type EndpointInit } from '../core/endpoint.js';

export type { EndpointInit } from '../core/endpoint.js';

/**
 * Keeps one live `Endpoint` per `address:port` across config reloads, so in-flight counts and
 * scraped metrics survive a snapshot swap. Snapshots hold references; `retainOnly` drops
 * endpoints no snapshot refers to any more (objects held by in-flight requests stay valid).
 */
export class EndpointRegistry {
  readonly #byKey = new Map<string, Endpoint>();

  /** Returns the endpoint for `address:port`, creating it or refreshing its name, labels, dialect and role. */
  acquire(init: EndpointInit): Endpoint {
    const key = endpointKey(init.address, init.port);
    const existing = this.#byKey.get(key);
    if (existing !== undefined) {
      existing.name = init.name;
      existing.podName = init.podName;
      existing.labels = init.labels;
      // A configured dialect always applies; a default one does not undo what the scraper detected.
      const configured = init.dialectConfigured === true;
      if (init.dialect !== undefined && init.dialect !== existing.dialect && (configured || existing.dialectConfigured)) {
        // Another dialect means other metric names: the old scrape says nothing about the new one.
        existing.dialect = init.dialect;
        existing.dialectDetected = false;
        existing.metrics = undefined;
      }
      existing.dialectConfigured = configured;
      existing.role = init.role ?? 'both';
      existing.bootstrapPort = init.bootstrapPort;
      return existing;
    }
    const created = new Endpoint(init);
    this.#byKey.set(key, created);
    return created;
  }

  /** Forgets `endpoint` (no target uses it any more), unless another object holds its key now. */
  drop(endpoint: Endpoint): void {
    if (this.#byKey.get(endpoint.key) === endpoint) this.#byKey.delete(endpoint.key);
  }

  retainOnly(keys: ReadonlySet<string>): void {
    for (const key of this.#byKey.keys()) {
      if (!keys.has(key)) this.#byKey.delete(key);
    }
  }

  get size(): number {
    return this.#byKey.size;
  }

  all(): IterableIterator<Endpoint> {
    return this.#byKey.values();
  }
}
