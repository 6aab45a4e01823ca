import { Counter, Gauge, type Aggregator, type Registry } from 'prom-client';
import { KV_EVENT_PROBLEMS } from '../kvevents/events.js';
import { PRECISE_FALLBACK_REASONS } from '../scheduling/precise-services.js';
import type { PrecisePrefix } from './precise-prefix.js';
import type { Runtime } from './runtime.js';

/**
 * Precise prefix-cache routing's series (docs/metrics.md), read at scrape time from the gateway's
 * PrecisePrefix: every label is from a fixed set (event types, problem and reset reasons, fallback
 * reasons) or a configured pool, never from what a server or client sends.
 */
export function registerPreciseMetrics(registry: Registry, precise: PrecisePrefix, runtime: () => Runtime | undefined): void {
  type Read = (set: (labels: Record<string, string>, v: number) => void) => void;
  // Both kinds are read whole at scrape time: reset, then every current value.
  // Workers of `serve --workers N` (each subscribes to every engine's events) combine into one
  // answer: counters sum, gauges take the highest worker's value (a pool's mode: the first's).
  const series = (kind: 'counter' | 'gauge', name: string, help: string, labelNames: readonly string[], read: Read, aggregator: Aggregator = 'max'): void => {
    const options = { name, help, labelNames: [...labelNames], registers: [registry] };
    if (kind === 'gauge') {
      new Gauge({ ...options, aggregator, collect() { this.reset(); read((labels, v) => this.set(labels, v)); } });
    } else {
      new Counter({ ...options, collect() { this.reset(); read((labels, v) => { if (v > 0) this.inc(labels, v); }); } });
    }
  };
  const total = (name: string, help: string, labelNames: readonly string[], read: Read): void => series('counter', name, help, labelNames, read);
  const gauge = (name: string, help: string, labelNames: readonly string[], read: Read, aggregator?: Aggregator): void => series('gauge', name, help, labelNames, read, aggregator);

  gauge('infergate_prefix_cache_mode', 'Prefix-cache mode a pool asked for precise mode runs in now (1): precise (a tokenizer loaded), or estimate (tokenizers loading or failed, none configured, or no prefix affinity).', ['pool', 'mode'], (set) => {
    for (const pool of runtime()?.pools.values() ?? []) {
      const m = precise.modeOf(pool);
      if (m.preciseUnavailable !== undefined) set({ pool: pool.config.key, mode: 'estimate' }, 1);
      if (m.mode === 'estimate') continue;
      const ready = m.tokenizers?.some((t) => t.state === 'ready') === true;
      set({ pool: pool.config.key, mode: ready ? 'precise' : 'estimate' }, 1);
    }
  }, 'first');
  total('infergate_prefix_precise_fallbacks_total', 'Requests of precise pools judged in estimate mode, by reason.', ['reason'], (set) => {
    for (const r of PRECISE_FALLBACK_REASONS) set({ reason: r }, precise.fallbacks.get(r) ?? 0);
  });
  total('infergate_prefix_precise_picks_total', 'Requests sent where precise mode judged them.', [], (set) => set({}, precise.picks.requests));
  total('infergate_prefix_precise_matched_blocks_total', "Prompt blocks the chosen endpoint held (by its KV events) when precise mode sent a request there; over infergate_prefix_precise_prompt_blocks_total it is the picks' hit rate.", [], (set) => set({}, precise.picks.matchedBlocks));
  total('infergate_prefix_precise_prompt_blocks_total', 'Prompt blocks of the requests precise mode judged.', [], (set) => set({}, precise.picks.promptBlocks));

  gauge('infergate_kv_index_blocks', 'Block entries the KV-event index holds (a block on GPU and CPU counts twice).', [], (set) => set({}, precise.index.stats().entries));
  gauge('infergate_kv_index_endpoints', 'Endpoints with blocks or speculative entries in the KV-event index.', [], (set) => set({}, precise.index.stats().endpoints));
  total('infergate_kv_index_lookups_total', 'Lookups in the KV-event index (one per precise scoring).', [], (set) => set({}, precise.index.stats().lookups));
  total('infergate_kv_index_lookup_blocks_total', 'Blocks asked for by KV-event index lookups.', [], (set) => set({}, precise.index.stats().lookupBlocks));
  total('infergate_kv_index_hit_blocks_total', "Blocks found by KV-event index lookups (the best candidate's run per lookup).", [], (set) => set({}, precise.index.stats().hitBlocks));
  total('infergate_kv_index_evicted_total', 'Block entries dropped to keep the KV-event index within its memory bound.', [], (set) => set({}, precise.index.stats().evicted));

  total('infergate_kv_events_total', 'KV events applied, by type.', ['type'], (set) => {
    const s = precise.stats();
    for (const [type, n] of Object.entries(s.events)) set({ type }, n);
  });
  total('infergate_kv_event_problems_total', 'KV-event messages, batches or events skipped, by reason.', ['reason'], (set) => {
    const problems = precise.stats().problems;
    for (const r of KV_EVENT_PROBLEMS) set({ reason: r }, problems.get(r) ?? 0);
  });
  total('infergate_kv_event_resets_total', "Endpoints whose blocks were dropped because their event stream could not be trusted (gap, restart, reconnect), by reason.", ['reason'], (set) => {
    for (const [reason, n] of precise.stats().resets) set({ reason }, n);
  });
  gauge('infergate_kv_event_subscribers', 'KV-event subscriptions: subscribed endpoints and those whose socket is connected now.', ['state'], (set) => {
    const s = precise.stats();
    set({ state: 'subscribed' }, s.subscribers);
    set({ state: 'connected' }, s.connected);
  });
}
