/**
 * One `/metrics` page + a dialect → the endpoint's `ModelServerMetrics`.
 *
 * One scan of the page (prometheus-text.ts) reads only the families the dialect names and notes
 * every dialect's name prefix, so the check "does this page contradict the configured dialect"
 * costs nothing extra. Each signal then takes its first source that yields a value and combines
 * that source's series by the signal's rule (signals.ts). Series are matched by label values,
 * never by label order.
 */
import {
  ALL_PREFIXES,
  DIALECTS,
  dialectFromPrefixes,
  type Dialect,
  type DialectSpec,
  type LoraSource,
  type MetricSource,
  type SeriesSource,
} from './dialects.js';
import { scanMetrics, type Sample, type ScanResult } from './prometheus-text.js';
import {
  NUMERIC_SIGNALS,
  SIGNAL_RULES,
  type Combine,
  type LoraState,
  type ModelServerMetrics,
  type NumericSignal,
  type Unit,
} from './signals.js';

/** A partial, writable `ModelServerMetrics` while it is being filled. */
type Found = { -readonly [K in keyof ModelServerMetrics]?: ModelServerMetrics[K] };

export interface ExtractResult {
  /**
   * The scrape's metrics when every required signal (waiting, running, KV) was found; undefined
   * otherwise, and `problems` names the metrics that were tried, so the caller can mark the
   * scrape failed (stale metrics count as saturated, as upstream's endpoint picker counts them).
   */
  readonly metrics: ModelServerMetrics | undefined;
  /** Every signal that was found, even when a required one is missing (`=== metrics` if complete). */
  readonly found: Partial<ModelServerMetrics>;
  /**
   * Human-readable problems, one per line to log: missing required signals, unusable values,
   * disagreeing series, a page of another dialect. Optional signals that are simply absent are not
   * problems. The same problems recur every scrape, so callers should log changes, not repeats.
   */
  readonly problems: readonly string[];
  /** The dialect the page's metric names belong to; undefined when no known prefix is present. */
  readonly detected: Dialect | undefined;
  /**
   * The page carries Triton Inference Server's core series (`nv_inference_*`): the server is
   * Triton whatever backend's names it also shows (its vLLM backend exports `vllm:` series), and
   * Triton's OpenAI frontend refuses `stream_options` before 25.11.
   */
  readonly triton: boolean;
  /** Lines skipped as malformed (only lines of the dialect's families are fully checked). */
  readonly malformedLines: number;
  /** 1-based line number of the first malformed line, if any. */
  readonly firstMalformedLine: number | undefined;
}

/**
 * Extracts the load signals of `dialect` from a `/metrics` page. Never throws on page content.
 *
 * Several series of one signal (vLLM DP `engine`s, several `model_name`s) are combined: waiting,
 * running, prefix and preemption counters and `num_gpu_blocks` are summed, KV utilisation takes
 * the maximum, `block_size` must agree, LoRA takes the series with the largest value (its value is
 * a timestamp: the newest wins).
 */
export function extractMetrics(text: string, dialect: Dialect | DialectSpec): ExtractResult {
  const spec = typeof dialect === 'string' ? DIALECTS[dialect] : dialect;
  const scan = scanMetrics(text, wantedFamilies(spec), { prefixes: SCANNED_PREFIXES });
  const problems: string[] = [];
  const detected = dialectFromPrefixes(scan.seenPrefixes, spec.name);
  if (detected !== undefined && detected !== spec.name) {
    problems.push(`the page has ${detected} metrics, but the endpoint is configured as ${spec.name}`);
  }
  const read = new Reader(scan, problems);
  const found: Found = {};
  let complete = true;
  for (const signal of NUMERIC_SIGNALS) {
    const rule = SIGNAL_RULES[signal];
    const sources = spec.signals[signal] ?? [];
    let value: number | undefined;
    for (const source of sources) {
      value = read.signal(signal, source, rule.combine, rule.unit, rule.max);
      if (value !== undefined) break;
    }
    if (value !== undefined) {
      found[signal] = value;
    } else if (rule.required) {
      complete = false;
      problems.push(
        sources.length === 0
          ? `${signal} missing: dialect ${spec.name} has no source for it`
          : `${signal} missing: no usable ${sources.map(describe).join(' or ')} on the page`,
      );
    }
  }
  if (spec.lora !== undefined) {
    const lora = read.lora(spec.lora);
    if (lora !== undefined) found.lora = lora;
  }
  const served = servedModels(scan.families);
  if (served.length > 0) found.servedModels = served;
  return {
    metrics: complete ? (found as ModelServerMetrics) : undefined,
    found,
    problems,
    detected,
    triton: scan.seenPrefixes.includes(TRITON_CORE_PREFIX),
    malformedLines: scan.malformedLines,
    firstMalformedLine: scan.firstMalformedLine,
  };
}

/**
 * The `model_name` label values on the page: vLLM and SGLang label every series with the served
 * base model, which tells a base-model request (no LoRA slot needed) from an adapter request.
 */
function servedModels(families: ReadonlyMap<string, readonly { readonly labels: Readonly<Record<string, string>> }[]>): string[] {
  const names = new Set<string>();
  for (const samples of families.values()) {
    for (const s of samples) {
      const name = s.labels['model_name'];
      if (name !== undefined && name !== '' && name.length <= MAX_NAME_CHARS) names.add(name);
      if (names.size >= MAX_NAMES) return [...names];
    }
  }
  return [...names];
}

/**
 * Names a page may give the gateway (served models, LoRA adapters running or waiting), and their
 * length: the same bounds as an endpoint's `/v1/models` list (model-lister.ts) and the gateway's
 * longest accepted `model` (256 characters), so a page cannot grow the gateway's model tables.
 */
const MAX_NAMES = 256;
const MAX_NAME_CHARS = 256;
/** vLLM's `max_lora` (`--max-loras`) above this is clamped: GPUs hold a few dozen adapters at most. */
const MAX_LORA_SLOTS = 1024;

/** Triton Inference Server's own per-model series (`nv_inference_request_success`, …; docs/user_guide/metrics.md). */
const TRITON_CORE_PREFIX = 'nv_inference_';
/** Every dialect's prefixes, and Triton's core one: one scan detects both. */
const SCANNED_PREFIXES: readonly string[] = [...ALL_PREFIXES, TRITON_CORE_PREFIX];

// Computed once per spec object: the families a scan of that dialect must return.
const wantedCache = new WeakMap<DialectSpec, ReadonlySet<string>>();

function wantedFamilies(spec: DialectSpec): ReadonlySet<string> {
  let wanted = wantedCache.get(spec);
  if (wanted === undefined) {
    const names = new Set<string>();
    const add = (s: MetricSource): void => {
      if ('derive' in s) s.of.forEach(add);
      else names.add(s.family);
    };
    for (const sources of Object.values(spec.signals)) sources?.forEach(add);
    if (spec.lora !== undefined) names.add(spec.lora.family);
    wanted = names;
    wantedCache.set(spec, wanted);
  }
  return wanted;
}

/** `family{k="v"}`, `family label k`, or the derivation, for problem messages. */
function describe(source: MetricSource): string {
  if ('derive' in source) {
    const [a, b] = source.of;
    if (source.derive === 'difference') return `(${describe(a)} - ${describe(b)})`;
    if (source.derive === 'ratio') return `(${describe(a)} / ${describe(b)})`;
    return `floor(${describe(a)} / ${describe(b)})`;
  }
  const where = source.where === undefined ? '' : `{${Object.entries(source.where).map(([k, v]) => `${k}="${v}"`).join(',')}}`;
  return source.label === undefined ? `${source.family}${where}` : `${source.family}${where} label ${source.label}`;
}

/** Reads sources from one scan, reporting unusable values into `problems`. */
class Reader {
  readonly #scan: ScanResult;
  readonly #problems: string[];

  constructor(scan: ScanResult, problems: string[]) {
    this.#scan = scan;
    this.#problems = problems;
  }

  /** One source's value for a signal, checked against the signal's unit; undefined if unusable. */
  signal(signal: NumericSignal, source: MetricSource, combine: Combine, unit: Unit, max: number): number | undefined {
    const value = 'derive' in source ? this.#derive(source.derive, source.of) : this.#combined(source, source.combine ?? combine);
    return value === undefined ? undefined : this.#checkUnit(signal, source, value, unit, max);
  }

  #derive(op: 'difference' | 'ratio' | 'quotient', [sa, sb]: readonly [SeriesSource, SeriesSource]): number | undefined {
    const a = this.#combined(sa, sa.combine ?? 'sum');
    const b = this.#combined(sb, sb.combine ?? 'sum');
    if (a === undefined || b === undefined) return undefined;
    if (op === 'difference') return Math.max(0, a - b);
    if (op === 'ratio') return b === 0 ? 0 : a / b;
    return b > 0 ? Math.floor(a / b) : undefined;
  }

  /** The values of a series source combined into one; undefined when no series has a value. */
  #combined(source: SeriesSource, combine: Combine): number | undefined {
    const values = this.#values(source);
    if (values.length === 0) return undefined;
    switch (combine) {
      case 'sum':
        return values.reduce((a, b) => a + b, 0);
      case 'max':
        return Math.max(...values);
      case 'mean':
        return values.reduce((a, b) => a + b, 0) / values.length;
      case 'agree': {
        const first = values[0] as number;
        if (values.every((v) => v === first)) return first;
        this.#problems.push(`${describe(source)}: series disagree (${[...new Set(values)].join(', ')}); ignored`);
        return undefined;
      }
    }
  }

  /** Finite values of the matching series (sample values, or a numeric label). */
  #values(source: SeriesSource): number[] {
    const samples = this.#scan.families.get(source.family);
    const out: number[] = [];
    if (samples === undefined) return out;
    for (const sample of samples) {
      if (!isPlainSample(sample, source.family) || !matches(sample.labels, source.where)) continue;
      if (source.label === undefined) {
        if (Number.isFinite(sample.value)) out.push(sample.value);
        else this.#problems.push(`${describe(source)}: value ${sample.value} ignored`);
        continue;
      }
      const raw = sample.labels[source.label];
      if (raw === undefined) continue;
      const n = raw.trim() === '' ? Number.NaN : Number(raw);
      if (Number.isFinite(n)) out.push(n);
      else this.#problems.push(`${describe(source)}: "${raw}" is not a number; ignored`);
    }
    return out;
  }

  #checkUnit(signal: NumericSignal, source: MetricSource, value: number, unit: Unit, max: number): number | undefined {
    // Finite series can still sum (or divide) to Infinity or NaN.
    if (Number.isNaN(value)) {
      this.#problems.push(`${signal}: ${describe(source)} is not a number; ignored`);
      return undefined;
    }
    if (unit !== 'fraction' && value > max) {
      if (unit === 'size') {
        this.#problems.push(`${signal}: ${describe(source)} is ${value}, above ${max}; ignored`);
        return undefined;
      }
      this.#problems.push(`${signal}: ${describe(source)} is ${value}, above ${max}; clamped to ${max}`);
      return max;
    }
    switch (unit) {
      case 'fraction':
        // Negative = "not in use" (vLLM v0 reports -1 for an unused prefix cache).
        if (value < 0) return undefined;
        if (value > 1) {
          this.#problems.push(`${signal}: ${describe(source)} is ${value}, above 1; clamped to 1`);
          return 1;
        }
        return value;
      case 'count':
        if (value >= 0) return value;
        break;
      case 'size':
        if (value > 0) return value;
        break;
    }
    this.#problems.push(`${signal}: ${describe(source)} is ${value}, out of range; ignored`);
    return undefined;
  }

  /** The LoRA state of the series with the largest value; undefined when there is none. */
  lora(source: LoraSource): LoraState | undefined {
    const samples = this.#scan.families.get(source.family);
    if (samples === undefined) return undefined;
    let newest: Sample | undefined;
    for (const s of samples) {
      if (!isPlainSample(s, source.family) || !Number.isFinite(s.value)) continue;
      if (newest === undefined || s.value > newest.value) newest = s;
    }
    if (newest === undefined) return undefined;
    const max = newest.labels[source.maxLabel]?.trim();
    if (max === undefined || !/^\d+$/.test(max)) {
      this.#problems.push(`${source.family}: ${source.maxLabel}="${max ?? ''}" is not an integer; LoRA state ignored`);
      return undefined;
    }
    const maxLoras = Number(max);
    if (maxLoras > MAX_LORA_SLOTS) this.#problems.push(`${source.family}: ${source.maxLabel}="${max.slice(0, 32)}" is above ${MAX_LORA_SLOTS}; clamped`);
    return {
      maxLoras: Math.min(MAX_LORA_SLOTS, maxLoras),
      running: adapterNames(newest.labels[source.runningLabel]),
      waiting: adapterNames(newest.labels[source.waitingLabel]),
    };
  }
}

/** The family's own line, not a `_bucket`/`_sum`/`_count` line folded into it by the scanner. */
function isPlainSample(sample: Sample, family: string): boolean {
  return sample.name === family || (sample.name.length === family.length + 6 && sample.name.endsWith('_total'));
}

function matches(labels: Readonly<Record<string, string>>, where: Readonly<Record<string, string>> | undefined): boolean {
  if (where === undefined) return true;
  for (const key in where) if (labels[key] !== where[key]) return false;
  return true;
}

/**
 * `"lora4, lora3,"` → `['lora4', 'lora3']`: vLLM joins adapter names with commas. At most
 * MAX_NAMES names, each at most MAX_NAME_CHARS (longer ones are dropped: no request can name them,
 * the gateway refuses longer model names).
 */
function adapterNames(csv: string | undefined): readonly string[] {
  if (csv === undefined || csv === '') return [];
  const out: string[] = [];
  for (const part of csv.split(',', MAX_NAMES * 4)) {
    const name = part.trim();
    if (name.length === 0 || name.length > MAX_NAME_CHARS) continue;
    out.push(name);
    if (out.length >= MAX_NAMES) break;
  }
  return out;
}
