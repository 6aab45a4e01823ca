/**
 * A targeted scanner for the Prometheus text exposition format 0.0.4.
 *
 * Why hand-written: the gateway scrapes every endpoint's `/metrics` every 50 ms, and a model
 * server's page is tens of KB, mostly histogram buckets the gateway never reads. We need about ten
 * families. A generic parser builds an object per sample and per family for the whole page; this
 * scanner looks at each line's metric name, skips the line with one `indexOf('\n')` when the family
 * is not wanted, and only splits labels and parses numbers for the wanted lines. Consecutive lines
 * of one family (all the `_bucket` lines) are recognised with one `startsWith` against the previous
 * name, without slicing a new string.
 *
 * Grammar accepted (per line, `\n` or `\r\n` endings, blank lines ignored, leading blanks allowed):
 * ```
 * # HELP <name> <docstring>
 * # TYPE <name> counter|gauge|histogram|summary|untyped
 * # <any other comment>
 * <name>[{<label>="<value>"[,<label>="<value>"]*[,]}] <value> [<timestamp ms>]
 * ```
 * Label values may contain `\"`, `\\` and `\n`. An unknown escape is kept literally, as the
 * Prometheus server does. Values are floats in any JS/Go float notation (`1.257894567e+09`, `8`,
 * `.5`), or `+Inf`, `-Inf`, `Inf`, `NaN` (any case). Hex values are refused, as Go's parser does.
 *
 * Malformed lines never throw. They are skipped and counted, so the caller can log "N malformed
 * lines". Lines longer than MAX_LINE_CHARS and samples with more than MAX_LABELS labels count as
 * malformed: a page, whatever it holds, yields bounded samples. In targeted mode, a line of an unwanted family is checked only up to its name, so its
 * labels and value are not validated. Scan with `'all'` for a full check.
 */

/** The metric types of `# TYPE` lines in format 0.0.4. */
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

/** One sample line of a wanted family. */
export interface Sample {
  /** The name as written on the line, e.g. `x_bucket` for a sample of histogram `x`. */
  readonly name: string;
  /** Label name → unescaped value. Key order is the line's order; never rely on it. */
  readonly labels: Readonly<Record<string, string>>;
  /** The sample value; may be `NaN` or `±Infinity`. */
  readonly value: number;
}

/** Which families to return: a set of family names, or `'all'` (full validation, e.g. in tests). */
export type WantedFamilies = ReadonlySet<string> | 'all';

export interface ScanOptions {
  /**
   * Metric-name prefixes to look for (e.g. `vllm:`), checked on sample lines of every family,
   * wanted or not, so dialect detection costs no second pass. Default: none.
   */
  readonly prefixes?: readonly string[];
}

export interface ScanResult {
  /**
   * Samples of each wanted family that has at least one sample, in page order. A histogram's or
   * summary's `_bucket`/`_sum`/`_count` lines belong to the base family; a counter's `_total`
   * line belongs to family `x` when `x` (not `x_total`) is wanted or declared as a counter.
   */
  readonly families: ReadonlyMap<string, readonly Sample[]>;
  /** The `# TYPE` of each wanted family that declares one (first declaration wins). */
  readonly types: ReadonlyMap<string, MetricType>;
  /** Lines that were skipped because they do not follow the format. */
  readonly malformedLines: number;
  /** 1-based number of the first malformed line, for the log line; undefined when none. */
  readonly firstMalformedLine: number | undefined;
  /** The subset of `options.prefixes` that starts at least one sample name, in the given order. */
  readonly seenPrefixes: readonly string[];
}

const CR = 13;
const SPACE = 32;
const TAB = 9;
const HASH = 35;
const LBRACE = 123;
const RBRACE = 125;
const COMMA = 44;
const EQUALS = 61;
const QUOTE = 34;
const BACKSLASH = 92;
const MINUS = 45;

/**
 * Longest line read (characters). A vLLM `lora_requests_info` line naming dozens of adapters is
 * a few KiB; 64 KiB is far beyond any real series.
 */
export const MAX_LINE_CHARS = 64 * 1024;
/** Most labels on one sample: real series carry fewer than ten (`model_name`, `engine`, `le`, …). */
export const MAX_LABELS = 64;

const METRIC_TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function isBlank(c: number): boolean {
  return c === SPACE || c === TAB;
}
function isLabelStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95;
}
function isLabelChar(c: number): boolean {
  return isLabelStart(c) || (c >= 48 && c <= 57);
}
function isNameStart(c: number): boolean {
  return isLabelStart(c) || c === 58; // ':' is allowed in metric names, not in label names
}
function isNameChar(c: number): boolean {
  return isNameStart(c) || (c >= 48 && c <= 57);
}

/**
 * Parses a sample value token. Returns undefined for anything that is not a float.
 * `Number()` does the work; it also accepts `0x1f`, `0o7` and `0b1`, which Go's parser refuses.
 */
export function parseSampleValue(token: string): number | undefined {
  if (token.length === 0) return undefined;
  const n = Number(token);
  if (!Number.isNaN(n)) {
    if (token.length > 1 && token.charCodeAt(0) === 48) {
      const c1 = token.charCodeAt(1) | 32; // lower-case
      if (c1 === 120 || c1 === 111 || c1 === 98) return undefined; // x, o, b
    }
    return n;
  }
  switch (token.toLowerCase()) {
    case 'nan':
      return Number.NaN;
    case 'inf':
    case '+inf':
    case 'infinity':
    case '+infinity':
      return Number.POSITIVE_INFINITY;
    case '-inf':
    case '-infinity':
      return Number.NEGATIVE_INFINITY;
    default:
      return undefined;
  }
}

/** Suffix → metric types whose samples may carry it on top of the family name. */
const SUFFIXES: readonly { readonly suffix: string; readonly types: ReadonlySet<MetricType> }[] = [
  { suffix: '_bucket', types: new Set(['histogram']) },
  { suffix: '_sum', types: new Set(['histogram', 'summary']) },
  { suffix: '_count', types: new Set(['histogram', 'summary']) },
  { suffix: '_total', types: new Set(['counter']) },
];

/**
 * Scans `text` once and returns the samples of the wanted families.
 *
 * Contract: never throws on any input string; cost is linear in `text.length`; allocates for
 * wanted samples, plus a few small strings each time the metric name changes between lines.
 */
export function scanMetrics(text: string, wanted: WantedFamilies, options?: ScanOptions): ScanResult {
  // The per-line path is kept inline in this loop; only wanted lines call out to parse labels.
  const prefixes = options?.prefixes ?? [];
  const seen = prefixes.map(() => false);
  const families = new Map<string, Sample[]>();
  const types = new Map<string, MetricType>();
  let malformed = 0;
  let firstMalformed: number | undefined;
  // The last sample name and what it resolved to (family, or undefined = skip).
  let lastName = '';
  let lastFamily: string | undefined;
  let lastSamples: Sample[] | undefined;
  nextBackslash = -1;

  const len = text.length;
  let pos = 0;
  let lineNo = 0;
  while (pos < len) {
    lineNo++;
    let nl = text.indexOf('\n', pos);
    if (nl === -1) nl = len;
    let end = nl;
    if (end > pos && text.charCodeAt(end - 1) === CR) end--;
    let p = pos;
    pos = nl + 1;
    let c = text.charCodeAt(p);
    while (p < end && (c === SPACE || c === TAB)) c = text.charCodeAt(++p);
    if (p >= end) continue;

    let ok = true;
    if (end - p > MAX_LINE_CHARS) {
      ok = false;
    } else if (c === HASH) {
      const status = parseComment(text, p + 1, end, wanted, types);
      if (status === TYPE_RECORDED) lastName = ''; // a new type can change where suffixed names go
      ok = status !== MALFORMED;
    } else {
      const cached = lastName.length;
      let next = cached > 0 && text.startsWith(lastName, p) ? text.charCodeAt(p + cached) : -1;
      let nameEnd = p + cached;
      if (next !== LBRACE && next !== SPACE && next !== TAB) {
        nameEnd = p;
        if (isNameStart(c)) {
          nameEnd++;
          while (nameEnd < end && isNameChar(text.charCodeAt(nameEnd))) nameEnd++;
        }
        next = nameEnd > p && nameEnd < end ? text.charCodeAt(nameEnd) : -1;
        if (next === LBRACE || next === SPACE || next === TAB) {
          lastName = text.slice(p, nameEnd);
          for (let i = 0; i < prefixes.length; i++) {
            if (seen[i] !== true && lastName.startsWith(prefixes[i] as string)) seen[i] = true;
          }
          lastFamily = familyOf(lastName, wanted, types);
          lastSamples = lastFamily === undefined ? undefined : families.get(lastFamily);
        } else {
          ok = false;
        }
      }
      // Not wanted: skipped without looking past the name.
      if (ok && lastFamily !== undefined) {
        const sample = parseRest(text, lastName, nameEnd, end);
        if (sample === undefined) {
          ok = false;
        } else {
          if (lastSamples === undefined) families.set(lastFamily, (lastSamples = []));
          lastSamples.push(sample);
        }
      }
    }
    if (!ok) {
      malformed++;
      firstMalformed ??= lineNo;
    }
  }
  return {
    families,
    types,
    malformedLines: malformed,
    firstMalformedLine: firstMalformed,
    seenPrefixes: prefixes.filter((_, i) => seen[i] === true),
  };
}

function isWanted(wanted: WantedFamilies, name: string): boolean {
  return wanted === 'all' || wanted.has(name);
}

const MALFORMED = 0;
const FINE = 1;
const TYPE_RECORDED = 2;

/** `# HELP`, `# TYPE` or a free comment; `p` is just after `#`. */
function parseComment(
  text: string,
  p: number,
  end: number,
  wanted: WantedFamilies,
  types: Map<string, MetricType>,
): typeof MALFORMED | typeof FINE | typeof TYPE_RECORDED {
  while (p < end && isBlank(text.charCodeAt(p))) p++;
  const isType = text.startsWith('TYPE', p);
  if (!isType && !text.startsWith('HELP', p)) return FINE; // a free comment
  p += 4;
  if (p < end && !isBlank(text.charCodeAt(p))) return FINE; // e.g. "# HELPFUL note": a comment
  while (p < end && isBlank(text.charCodeAt(p))) p++;
  const nameStart = p;
  if (p >= end || !isNameStart(text.charCodeAt(p))) return MALFORMED;
  while (p < end && isNameChar(text.charCodeAt(p))) p++;
  const nameEnd = p;
  if (p < end && !isBlank(text.charCodeAt(p))) return MALFORMED;
  if (!isType) return FINE; // HELP: the docstring is free text
  while (p < end && isBlank(text.charCodeAt(p))) p++;
  let typeEnd = end;
  while (typeEnd > p && isBlank(text.charCodeAt(typeEnd - 1))) typeEnd--;
  const type = text.slice(p, typeEnd);
  if (!METRIC_TYPES.has(type)) return MALFORMED;
  const name = text.slice(nameStart, nameEnd);
  // An OpenMetrics-style counter is declared without `_total` and sampled with it.
  const key = !isWanted(wanted, name) && type === 'counter' && isWanted(wanted, `${name}_total`) ? `${name}_total` : name;
  if (!isWanted(wanted, key) || types.has(key)) return FINE;
  types.set(key, type as MetricType);
  return TYPE_RECORDED;
}

/** The family a sample name belongs to, or undefined when it is not wanted. */
function familyOf(name: string, wanted: WantedFamilies, types: ReadonlyMap<string, MetricType>): string | undefined {
  const all = wanted === 'all';
  // With explicit wants, an exact name wins; in 'all' mode every name is "wanted", so a suffix
  // folds into its base only when the base declared a matching type.
  if (!all && wanted.has(name)) return name;
  for (const { suffix, types: allowed } of SUFFIXES) {
    if (!name.endsWith(suffix)) continue;
    const stem = name.slice(0, name.length - suffix.length);
    const type = types.get(stem);
    if (all ? type !== undefined && allowed.has(type) : wanted.has(stem) && (type === undefined || allowed.has(type))) {
      return stem;
    }
  }
  return all ? name : undefined;
}

/** Labels, value and optional timestamp after the name. Undefined when malformed. */
function parseRest(text: string, name: string, nameEnd: number, end: number): Sample | undefined {
  const labels: Record<string, string> = {};
  let q = nameEnd;
  if (text.charCodeAt(q) === LBRACE) {
    q = parseLabels(text, q + 1, end, labels);
    if (q < 0) return undefined;
  }
  while (q < end && isBlank(text.charCodeAt(q))) q++;
  const valueStart = q;
  while (q < end && !isBlank(text.charCodeAt(q))) q++;
  const value = parseSampleValue(text.slice(valueStart, q));
  if (value === undefined) return undefined;
  while (q < end && isBlank(text.charCodeAt(q))) q++;
  if (q < end) {
    // Optional timestamp: an integer (milliseconds), possibly negative. Validated, not kept:
    // nothing in the gateway reads exporter timestamps.
    if (text.charCodeAt(q) === MINUS) q++;
    const digits = q;
    while (q < end && text.charCodeAt(q) >= 48 && text.charCodeAt(q) <= 57) q++;
    if (q === digits) return undefined;
    while (q < end && isBlank(text.charCodeAt(q))) q++;
    if (q < end) return undefined;
  }
  return { name, labels, value };
}

// Scratch state of one scanMetrics call (scans never interleave: they run to completion).
// Next backslash at or after the last label value looked at: lets values without escapes take
// the fast path without rescanning the page for every value.
let nextBackslash = -1;
// Index just after the closing quote of the last value read by labelValue.
let valueEnd = 0;

/** Parses `name="value",…}` from `q` (just after `{`). Returns the index after `}`, or -1. */
function parseLabels(text: string, q: number, end: number, labels: Record<string, string>): number {
  for (let count = 0; ; count++) {
    while (q < end && isBlank(text.charCodeAt(q))) q++;
    if (q >= end) return -1;
    if (text.charCodeAt(q) === RBRACE) return q + 1;
    if (count >= MAX_LABELS) return -1;
    const keyStart = q;
    if (!isLabelStart(text.charCodeAt(q))) return -1;
    q++;
    while (q < end && isLabelChar(text.charCodeAt(q))) q++;
    const key = text.slice(keyStart, q);
    while (q < end && isBlank(text.charCodeAt(q))) q++;
    if (q >= end || text.charCodeAt(q) !== EQUALS) return -1;
    q++;
    while (q < end && isBlank(text.charCodeAt(q))) q++;
    if (q >= end || text.charCodeAt(q) !== QUOTE) return -1;
    const value = labelValue(text, q + 1, end);
    if (value === undefined) return -1;
    q = valueEnd;
    if (Object.hasOwn(labels, key)) return -1; // a repeated label name is invalid exposition
    if (key === '__proto__') Object.defineProperty(labels, key, { value, enumerable: true, writable: true, configurable: true });
    else labels[key] = value;
    while (q < end && isBlank(text.charCodeAt(q))) q++;
    const c = q < end ? text.charCodeAt(q) : -1;
    if (c === COMMA) q++;
    else if (c === RBRACE) return q + 1;
    else return -1;
  }
}

/** The unescaped label value starting at `s` (just after the opening quote); sets valueEnd. */
function labelValue(text: string, s: number, end: number): string | undefined {
  const close = text.indexOf('"', s);
  if (close === -1 || close >= end) return undefined;
  if (nextBackslash < s) {
    const b = text.indexOf('\\', s);
    nextBackslash = b === -1 ? Number.POSITIVE_INFINITY : b;
  }
  if (nextBackslash > close) {
    valueEnd = close + 1;
    return text.slice(s, close);
  }
  // Slow path: the value holds escapes, and its closing quote may come after an escaped quote.
  let out = '';
  let chunk = s;
  let i = s;
  while (i < end) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      valueEnd = i + 1;
      return out + text.slice(chunk, i);
    }
    if (c === BACKSLASH) {
      if (i + 1 >= end) return undefined;
      out += text.slice(chunk, i);
      const e = text.charCodeAt(i + 1);
      out += e === 110 ? '\n' : e === BACKSLASH ? '\\' : e === QUOTE ? '"' : text.slice(i, i + 2);
      i += 2;
      chunk = i;
    } else {
      i++;
    }
  }
  return undefined;
}
