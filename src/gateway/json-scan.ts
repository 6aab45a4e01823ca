import { GatewayError } from '../core/errors.js';

/**
 * Deepest nesting of arrays and objects a request body may have, the body's own object included.
 * 128: a chat body is about 6 levels deep (body → messages → message → content → part →
 * image_url) and a tool's JSON Schema adds two per nested property, so real requests stay far
 * below; every walk over the parsed body (prompt rendering, re-serialising a value) then recurses
 * at most this deep, far from V8's call-stack limit (a 10,000-level prompt overflows it). The
 * servers agree in spirit: Python's json module stops at its recursion limit (1,000).
 */
export const MAX_JSON_DEPTH = 128;

/**
 * Most objects and arrays a request body may hold, its own object included. Parsing a body, and
 * every walk over it (prompt text for prefix hashing, chat turns for precise tokenising, the
 * duplicate-key check), costs per value far more than per byte: 14 MB of 390,000 one-word
 * messages held the event loop for every client about a second and took 200 MB, where 14 MB of
 * one string costs nothing. 65,536 is far above any real request (a long chat is hundreds of
 * messages; a tool's schema tens of objects) and costs about a tenth of a second.
 */
export const MAX_JSON_CONTAINERS = 65_536;

/**
 * Most object members (keys) a body may hold in all. A key costs more than an array element (a
 * 1,000,000-entry `logit_bias` took 1.8 s to check and parse); four per object of the limit above.
 */
export const MAX_JSON_KEYS = 262_144;

/**
 * Most values of any kind (strings, numbers, literals, objects, arrays) a body may hold, the body
 * itself not counted. Far higher: a completions `prompt` of token ids is one array of numbers,
 * and a prompt of a million tokens must still pass (16 MiB of `1,` is 8 million, 1 s to parse).
 */
export const MAX_JSON_VALUES = 1_048_576;

/** A member of the body's top-level object: its decoded key and byte spans in the raw body. */
export interface TopLevelMember {
  /** The key as JSON decodes it (`"mod\u0065l"` is `model`). */
  readonly name: string;
  /** Offset of the key's opening quote. */
  readonly keyStart: number;
  /** Offset of the value's first byte. */
  readonly valueStart: number;
  /** Offset just past the value's last byte. */
  readonly valueEnd: number;
}

/** Where a body's top-level object lies and its members, in order. */
export interface ScannedObject {
  /** Offset of the opening `{`. */
  readonly open: number;
  /** Offset of the closing `}`. */
  readonly close: number;
  readonly members: readonly TopLevelMember[];
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;

interface Frame {
  readonly object: boolean;
  /** Decoded keys seen in this object (objects only). */
  keys: Set<string> | undefined;
  expectKey: boolean;
}

/**
 * One iterative pass over a body that `JSON.parse` accepted as an object: bounds its nesting to
 * MAX_JSON_DEPTH and refuses any object that names a key twice, comparing keys as JSON decodes them
 * (`"model"`, `"mod\u0065l"` and `"\u006dodel"` are one key). With duplicates, parsers disagree:
 * JavaScript and Python keep the last, a byte-level edit finds the first, so the gateway and the
 * model server would read different requests from one body (RFC 8259 §4: "the names within an
 * object SHOULD be unique"; their behaviour is otherwise unpredictable). Refusing is the clearest
 * answer: no serialiser produces such a body, and re-serialising would change the bytes of every
 * prompt. Throws `invalid_body` (400) naming the key or the depth.
 *
 * Scanning bytes is safe for UTF-8: structural characters are ASCII and every byte of a
 * multi-byte character is ≥ 0x80, so none looks like a quote, bracket or backslash.
 */
export function scanJsonObject(buf: Buffer): ScannedObject {
  const n = buf.length;
  const stack: Frame[] = [];
  const members: TopLevelMember[] = [];
  let open = -1;
  let close = -1;
  // The top-level member being read: its key and where its value started.
  let memberName: string | undefined;
  let keyStart = 0;
  let valueStart = -1;
  let lastEnd = 0;
  // Counted as met, so the scan stops at the first value past a bound, before JSON.parse builds any.
  let containers = 0;
  let keys = 0;
  let values = -1; // the body's own object is not a value of it
  let i = 0;
  while (i < n) {
    const c = buf[i] as number;
    const top = stack[stack.length - 1];
    if (c === QUOTE) {
      const end = skipString(buf, i);
      if (top !== undefined && top.object && top.expectKey) {
        const name = decodeKey(buf, i, end);
        top.keys ??= new Set();
        if (top.keys.has(name)) throw new GatewayError('invalid_body', `request body names the key ${JSON.stringify(name.slice(0, 64))} twice in one object; keys must be unique`);
        if (++keys > MAX_JSON_KEYS) throw tooMany(`more than ${MAX_JSON_KEYS} object members (keys)`);
        top.keys.add(name);
        top.expectKey = false;
        if (stack.length === 1) {
          memberName = name;
          keyStart = i;
        }
      } else {
        if (++values > MAX_JSON_VALUES) throw tooMany(`more than ${MAX_JSON_VALUES} values`);
        if (stack.length === 1 && valueStart === -1) valueStart = i;
      }
      i = end;
      lastEnd = end;
      continue;
    }
    if (c === OPEN_OBJ || c === OPEN_ARR) {
      if (stack.length === 1 && valueStart === -1) valueStart = i;
      if (stack.length === 0) open = i;
      if (stack.length >= MAX_JSON_DEPTH) throw tooDeep();
      if (++containers > MAX_JSON_CONTAINERS) throw tooMany(`more than ${MAX_JSON_CONTAINERS} objects and arrays`);
      if (++values > MAX_JSON_VALUES) throw tooMany(`more than ${MAX_JSON_VALUES} values`);
      stack.push({ object: c === OPEN_OBJ, keys: undefined, expectKey: c === OPEN_OBJ });
      i++;
      continue;
    }
    if (c === CLOSE_OBJ || c === CLOSE_ARR) {
      stack.pop();
      if (stack.length === 0) {
        if (memberName !== undefined && valueStart !== -1) members.push({ name: memberName, keyStart, valueStart, valueEnd: lastEnd });
        close = i;
        break;
      }
      lastEnd = i + 1;
      i++;
      continue;
    }
    if (c === COMMA) {
      if (top?.object === true) top.expectKey = true;
      if (stack.length === 1) {
        if (memberName !== undefined && valueStart !== -1) members.push({ name: memberName, keyStart, valueStart, valueEnd: lastEnd });
        memberName = undefined;
        valueStart = -1;
      }
      i++;
      continue;
    }
    if (c === COLON || isSpace(c)) {
      i++;
      continue;
    }
    // A number, true, false or null: up to the next delimiter.
    if (++values > MAX_JSON_VALUES) throw tooMany(`more than ${MAX_JSON_VALUES} values`);
    if (stack.length === 1 && valueStart === -1) valueStart = i;
    while (i < n && !isDelimiter(buf[i] as number)) i++;
    lastEnd = i;
  }
  if (open === -1 || close === -1) throw new GatewayError('invalid_body', 'request body must be a JSON object');
  return { open, close, members };
}

/** The scan's refusals of a body's shape (too deep, too many values), said before JSON.parse runs. */
const SHAPE_REFUSALS = new WeakSet<object>();

function tooDeep(): GatewayError {
  const err = new GatewayError('invalid_body', `request body nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep`);
  SHAPE_REFUSALS.add(err);
  return err;
}

function tooMany(what: string): GatewayError {
  const err = new GatewayError('invalid_body', `request body holds ${what}, the most the gateway accepts in one request: split the work across several requests`);
  SHAPE_REFUSALS.add(err);
  return err;
}

/**
 * Whether `err` is the scan's refusal of a body nested past MAX_JSON_DEPTH or holding more values
 * than MAX_JSON_CONTAINERS, MAX_JSON_KEYS or MAX_JSON_VALUES (found before the scan reads further,
 * so said even when the rest of the body is not JSON: parsing it is what the bound avoids).
 */
export function isShapeRefusal(err: unknown): boolean {
  return typeof err === 'object' && err !== null && SHAPE_REFUSALS.has(err);
}

/** The key's name as JSON decodes it; only escaped keys pay for a parse. */
function decodeKey(buf: Buffer, start: number, end: number): string {
  // Only the key's own bytes are searched: a search to the end of the body for every key made a
  // body of many small keys cost the square of its size (2.4 MB of `{"a":0}` held the event loop 26 s).
  for (let i = start + 1; i < end - 1; i++) if (buf[i] === BACKSLASH) return JSON.parse(buf.toString('utf8', start, end)) as string;
  return buf.toString('utf8', start + 1, end - 1);
}

/** Offset just past the string that opens at `start`. */
function skipString(buf: Buffer, start: number): number {
  let i = start + 1;
  const n = buf.length;
  while (i < n) {
    const q = buf.indexOf(QUOTE, i);
    if (q === -1) return n;
    // The quote ends the string unless an odd number of backslashes precede it.
    let k = q - 1;
    while (k > start && buf[k] === BACKSLASH) k--;
    if ((q - 1 - k) % 2 === 0) return q + 1;
    i = q + 1;
  }
  return n;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

function isDelimiter(c: number): boolean {
  return c === COMMA || c === CLOSE_OBJ || c === CLOSE_ARR || isSpace(c);
}

/**
 * The body with top-level members edited, every other byte as sent (whitespace included): `set`
 * replaces a member's value with the given JSON text, or adds the member right after the opening
 * brace; `remove` drops members (a member both set and removed is set). Values are JSON text the
 * caller serialised.
 */
export function editTopLevel(raw: Buffer, scanned: ScannedObject, set: ReadonlyMap<string, string>, remove: ReadonlySet<string> = NO_KEYS): Buffer {
  if (set.size === 0 && !scanned.members.some((m) => remove.has(m.name))) return raw;
  const parts: Buffer[] = [raw.subarray(0, scanned.open + 1)];
  const present = new Set(scanned.members.map((m) => m.name));
  const added = [...set].filter(([name]) => !present.has(name)).map(([name, value]) => `${JSON.stringify(name)}:${value}`);
  if (added.length > 0) parts.push(Buffer.from(added.join(','), 'utf8'));
  let wrote = added.length > 0;
  let cursor = scanned.open + 1;
  for (const m of scanned.members) {
    // A member's segment runs from the previous member's end: separator, whitespace, key, value.
    const from = cursor;
    cursor = m.valueEnd;
    const value = set.get(m.name);
    if (value === undefined && remove.has(m.name)) continue;
    const comma = raw.indexOf(COMMA, from);
    const hasComma = comma !== -1 && comma < m.keyStart;
    if (hasComma && !wrote) parts.push(raw.subarray(from, comma), raw.subarray(comma + 1, m.keyStart));
    else if (!hasComma && wrote) parts.push(COMMA_BUF, raw.subarray(from, m.keyStart));
    else parts.push(raw.subarray(from, m.keyStart));
    if (value === undefined) parts.push(raw.subarray(m.keyStart, m.valueEnd));
    else parts.push(raw.subarray(m.keyStart, m.valueStart), Buffer.from(value, 'utf8'));
    wrote = true;
  }
  parts.push(raw.subarray(cursor));
  return Buffer.concat(parts);
}

const COMMA_BUF = Buffer.from(',');
const NO_KEYS: ReadonlySet<string> = new Set();
