/**
 * Prometheus text exposition (format 0.0.4) written directly into strings: a page is rebuilt on
 * every scrape (the gateway scrapes each endpoint every 50 ms), so nothing here allocates more
 * than the output itself.
 */
import type { HistogramSnapshot } from '../engine/index.js';

/**
 * A number as Python's prometheus_client prints it (vLLM and SGLang use that library): Python's
 * float repr (`8.0`, `0.28`), and exponent form when there are more than 6 digits before the
 * point (`8.128902e+06`, `1.7382173358407154e+09`) — the format of the published samples.
 */
export function pyFloat(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  let s = String(n);
  if (s.includes('e')) return s.replace(/e([+-])(\d)$/, 'e$10$2'); // 1e-7 → 1e-07, like Python
  if (!s.includes('.')) s += '.0';
  const neg = s.charCodeAt(0) === 45; // '-'
  const body = neg ? s.slice(1) : s;
  const dot = body.indexOf('.');
  if (dot <= 6) return s;
  const digits = body.slice(0, dot) + body.slice(dot + 1);
  let mantissa = `${digits[0]}.${digits.slice(1)}`;
  let end = mantissa.length;
  while (end > 0 && (mantissa[end - 1] === '0' || mantissa[end - 1] === '.')) end--;
  mantissa = mantissa.slice(0, end);
  return `${neg ? '-' : ''}${mantissa}e+0${dot - 1}`;
}

/** A number as Triton (prometheus-cpp) prints it: shortest form, integers without a point. */
export function cppFloat(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

/** A label value escaped for the exposition format (backslash, double quote, newline). */
export function escapeLabel(value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n') : value;
}

/** `k1="v1",k2="v2"` from pairs (values escaped). */
export function labels(pairs: ReadonlyArray<readonly [string, string]>): string {
  return pairs.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',');
}

/** `# HELP` and `# TYPE` lines of one family. */
export function header(name: string, type: 'gauge' | 'counter' | 'histogram', help: string): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

/**
 * A histogram's `_bucket`, `_count` and `_sum` lines. `bounds` picks the buckets to print (each
 * must be a bound of the snapshot; default all); `le` is appended after the family's labels, as
 * prometheus_client does.
 */
export class HistogramLines {
  readonly #name: string;
  readonly #labels: string;
  readonly #bucketPrefixes: string[] = [];
  #indexes: number[] | undefined;
  readonly #bounds: readonly number[] | undefined;
  readonly #fmt: (n: number) => string;

  constructor(name: string, labelText: string, bounds?: readonly number[], fmt: (n: number) => string = pyFloat) {
    this.#name = name;
    this.#labels = labelText;
    this.#bounds = bounds;
    this.#fmt = fmt;
  }

  render(h: HistogramSnapshot): string {
    if (this.#indexes === undefined) this.#prepare(h);
    const indexes = this.#indexes as number[];
    let out = '';
    for (let i = 0; i < indexes.length; i++) {
      const bucket = h.buckets[indexes[i]!]!;
      out += `${this.#bucketPrefixes[i]!}${this.#fmt(bucket.count)}\n`;
    }
    const l = this.#labels === '' ? '' : `{${this.#labels}}`;
    out += `${this.#name}_count${l} ${this.#fmt(h.count)}\n`;
    out += `${this.#name}_sum${l} ${this.#fmt(h.sum)}\n`;
    return out;
  }

  /** Maps the wanted bounds to snapshot bucket indexes once (snapshots of one histogram share bounds). */
  #prepare(h: HistogramSnapshot): void {
    const indexes: number[] = [];
    const sep = this.#labels === '' ? '' : ',';
    h.buckets.forEach((b, i) => {
      if (b.le !== Infinity && this.#bounds !== undefined && !this.#bounds.includes(b.le)) return;
      indexes.push(i);
      const le = b.le === Infinity ? '+Inf' : pyFloat(b.le);
      this.#bucketPrefixes.push(`${this.#name}_bucket{${this.#labels}${sep}le="${le}"} `);
    });
    this.#indexes = indexes;
  }
}
