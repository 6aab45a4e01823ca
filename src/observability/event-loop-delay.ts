import { Histogram, type Registry } from 'prom-client';
import { LOOP_DELAY_BUCKETS_S, type EventLoopDelay } from '../core/event-loop-delay.js';

/** The metric's name: a Prometheus histogram (`_bucket{le}`, `_sum`, `_count`). */
export const EVENT_LOOP_DELAY_METRIC = 'infergate_event_loop_delay_seconds';

const HELP = "How late the gateway's event loop ran, since start: each sample is how late a timer due every 10 ms fired (perf_hooks.monitorEventLoopDelay), so a synchronous task of B seconds shows as B - 0.01 to B.";

type Exported = Awaited<ReturnType<Histogram['get']>>;

/**
 * A histogram whose buckets are not observed one by one but read, at each scrape, from the
 * process's event-loop delay monitor (core/event-loop-delay.ts), which only Node's own histogram
 * sees sample by sample. The exposition is prom-client's histogram format (cumulative `le`
 * buckets, then `+Inf`, `_sum`, `_count`).
 */
class MonitorHistogram extends Histogram {
  readonly #monitor: EventLoopDelay;

  constructor(registry: Registry, monitor: EventLoopDelay) {
    super({
      name: EVENT_LOOP_DELAY_METRIC,
      help: HELP,
      buckets: [...LOOP_DELAY_BUCKETS_S],
      registers: [registry],
    });
    this.#monitor = monitor;
  }

  override async get(): Promise<Exported> {
    const exported = { name: EVENT_LOOP_DELAY_METRIC, help: HELP, type: 'histogram', aggregator: 'sum', values: this.#values() };
    // What prom-client's Registry reads; its typings say otherwise (`type` a numeric enum it does not export, a `collect` it never reads here).
    return Promise.resolve(exported as unknown as Exported);
  }

  /** What prom-client's Registry renders the text format from (it prefers this to `get`). */
  async getForPromString(): Promise<Exported> {
    return this.get();
  }

  #values(): Exported['values'] {
    const t = this.#monitor.totals();
    const bucket = `${EVENT_LOOP_DELAY_METRIC}_bucket`;
    const values: Exported['values'] = LOOP_DELAY_BUCKETS_S.map((le, i) => ({ metricName: bucket, labels: { le }, value: t.cumulative[i] as number }));
    values.push({ metricName: bucket, labels: { le: '+Inf' }, value: t.count });
    values.push({ metricName: `${EVENT_LOOP_DELAY_METRIC}_sum`, labels: {}, value: t.sumS });
    values.push({ metricName: `${EVENT_LOOP_DELAY_METRIC}_count`, labels: {}, value: t.count });
    return values;
  }
}

/** Registers `infergate_event_loop_delay_seconds`, read from `monitor` at each scrape. */
export function registerEventLoopDelay(registry: Registry, monitor: EventLoopDelay): void {
  new MonitorHistogram(registry, monitor);
}
