import type { Metric, Registry } from 'prom-client';

/*
 * Counters and histograms for the series every request updates. prom-client finds a series by
 * hashing a label object on every call (sorting its keys, validating them, building a string) and
 * a histogram looks its bucket up by the bound turned into a string: a few microseconds a call,
 * half a dozen calls a request and one per streamed chunk (the inter-token histogram). Here a
 * series (a "child") is found by its label values in nested maps, once per request, and holds its
 * numbers itself. They are exported through prom-client's Registry in the values prom-client's
 * own Counter and Histogram give it, so /metrics reads the same, line for line.
 */

/** Label values in the order of the family's label names. */
type LabelValues = readonly string[];

interface Config {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly registers: readonly Registry[];
}

/** The series of one metric, one per label set, found by label values without allocation once they exist. */
abstract class Family<C> {
  name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly aggregator = 'sum';
  /** Nested by label value, the last level holding the series. */
  #root = new Map<string, unknown>();
  /** Every series with its labels, in the order they appeared (prom-client's export order). */
  protected series: Array<{ readonly labels: Readonly<Record<string, string>>; readonly child: C }> = [];

  constructor(config: Config) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames;
    // A prom-client Registry exports any metric with get() (or getForPromString()) and a name.
    for (const r of config.registers) r.registerMetric(this as unknown as Metric);
  }

  /** The series of `values` (one per label name), made on first use. */
  child(values: LabelValues): C {
    let level = this.#root;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      const v = values[i] as string;
      let next = level.get(v) as Map<string, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(v, next);
      }
      level = next;
    }
    const key = values[last] as string;
    let child = level.get(key) as C | undefined;
    if (child === undefined) {
      child = this.create();
      level.set(key, child);
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i] as string));
      this.series.push({ labels, child });
    }
    return child;
  }

  /** Forgets every series (Registry.resetMetrics). */
  reset(): void {
    this.#root = new Map();
    this.series = [];
  }

  protected abstract create(): C;
}

/** One counter series. */
export interface CounterChild {
  value: number;
}

/** A counter family (prom-client's Counter, `inc` with the same checks). */
export class CounterFamily extends Family<CounterChild> {
  readonly type = 'counter';

  /** Adds `by` (default 1) to the series of `values`; throws as prom-client does for a non-finite or negative amount. */
  inc(values: LabelValues, by = 1): void {
    if (by && !Number.isFinite(by)) throw new TypeError(`Value is not a valid number: ${by}`);
    if (by < 0) throw new Error('It is not possible to decrease a counter');
    this.child(values).value += by;
  }

  protected create(): CounterChild {
    return { value: 0 };
  }

  async get(): Promise<{ help: string; name: string; type: string; values: Array<{ value: number; labels: Readonly<Record<string, string>> }>; aggregator: string }> {
    return { help: this.help, name: this.name, type: this.type, values: this.series.map((s) => ({ value: s.child.value, labels: s.labels })), aggregator: this.aggregator };
  }
}

/** One histogram series: counts per bucket (not cumulative), sum and count. */
export class HistogramChild {
  readonly #bounds: readonly number[];
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }

  /** Throws as prom-client does for a non-finite value. */
  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1;
        break;
      }
    }
    this.sum += value;
    this.count += 1;
  }
}

/** What prom-client's Histogram gives the Registry for one exported line. */
interface HistogramValue {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly sharedLabels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly metricName: string;
  readonly exemplar: null | undefined;
}

/** A histogram family (prom-client's Histogram: the same buckets, lines and order). */
export class HistogramFamily extends Family<HistogramChild> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];

  constructor(config: Config & { readonly buckets: readonly number[] }) {
    super(config);
    this.buckets = config.buckets;
  }

  observe(values: LabelValues, value: number): void {
    this.child(values).observe(value);
  }

  protected create(): HistogramChild {
    return new HistogramChild(this.buckets);
  }

  /** Per series: each bucket (cumulative), `+Inf`, `_sum`, `_count`, as prom-client's getForPromString. */
  async getForPromString(): Promise<{ name: string; help: string; type: string; values: HistogramValue[]; aggregator: string }> {
    const bucketName = `${this.name}_bucket`;
    const values: HistogramValue[] = [];
    for (const { labels, child } of this.series) {
      let acc = 0;
      this.buckets.forEach((le, i) => {
        acc += child.counts[i] as number;
        values.push({ labels: { le }, sharedLabels: labels, value: acc, metricName: bucketName, exemplar: null });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: labels, value: child.count, metricName: bucketName, exemplar: null });
      values.push({ labels: {}, sharedLabels: labels, value: child.sum, metricName: `${this.name}_sum`, exemplar: undefined });
      values.push({ labels: {}, sharedLabels: labels, value: child.count, metricName: `${this.name}_count`, exemplar: undefined });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** The same values with each line's labels whole (prom-client's get(), for JSON and aggregation). */
  async get(): Promise<{ name: string; help: string; type: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName: string; exemplar: null | undefined }>; aggregator: string }> {
    const data = await this.getForPromString();
    return { ...data, values: data.values.map(({ labels, sharedLabels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } })) };
  }
}
