import { Gauge, type Registry } from 'prom-client';
import type { ConfigSource } from '../config/source.js';

/**
 * `infergate_config_source_stale{source}`: 1 while a configuration source serves a view it cannot
 * keep current (the Kubernetes API server unreachable past its backoff), else 0; one series per
 * source type that reports health (files do not). Read at scrape time.
 */
export function registerSourceStaleGauge(registry: Registry, sources: readonly ConfigSource[]): void {
  const reporting = sources.filter((s) => s.health !== undefined);
  if (reporting.length === 0) return;
  new Gauge({
    name: 'infergate_config_source_stale',
    help: 'Whether a configuration source is serving a stale view (1: its origin, the Kubernetes API server, cannot be followed; the last view keeps serving).',
    labelNames: ['source'],
    // Workers of `serve --workers N` each follow the source: stale when any of them is.
    aggregator: 'max',
    registers: [registry],
    collect() {
      this.reset();
      const byType = new Map<string, number>();
      for (const s of reporting) {
        const h = s.health?.();
        if (h === undefined) continue;
        byType.set(h.type, Math.max(byType.get(h.type) ?? 0, h.stale ? 1 : 0));
      }
      for (const [type, v] of byType) this.set({ source: type }, v);
    },
  });
}
