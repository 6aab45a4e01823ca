/**
 * Replaces the value of the top-level `"model"` string in a JSON body without re-encoding the rest
 * of it: large prompts pass through byte for byte and the rewrite costs one scan. The input must
 * already be known-valid JSON (the caller parsed it); returns `undefined` if no top-level string
 * `model` is found, so the caller can fall back to re-serialising.
 *
 * Scanning bytes is safe for UTF-8: every structural character is ASCII, and bytes of multi-byte
 * characters are all >= 0x80, so they never look like quotes, braces or backslashes.
 */
export function spliceModel(body: Buffer, newModel: string): Buffer | undefined {
  const span = findTopLevelString(body, 'model');
  if (span === undefined) return undefined;
  const replacement = Buffer.from(JSON.stringify(newModel), 'utf8');
  return Buffer.concat([body.subarray(0, span.start), replacement, body.subarray(span.end)]);
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
const COLON = 0x3a;

/** Byte span [start, end) of the string value (quotes included) of top-level key `key`. */
export function findTopLevelString(buf: Buffer, key: string): { start: number; end: number } | undefined {
  const wanted = Buffer.from(JSON.stringify(key), 'utf8');
  let depth = 0;
  let i = 0;
  const n = buf.length;
  // At depth 1 strings alternate key, value; `expectKey` tracks which one the next string is.
  let expectKey = false;
  while (i < n) {
    const c = buf[i] as number;
    if (c === QUOTE) {
      const end = skipString(buf, i);
      if (depth === 1 && expectKey) {
        const isWanted = end - i === wanted.length && buf.compare(wanted, 0, wanted.length, i, end) === 0;
        expectKey = false;
        if (isWanted) {
          let j = end;
          while (j < n && buf[j] !== COLON) j++;
          j++;
          while (j < n && isSpace(buf[j] as number)) j++;
          if (buf[j] === QUOTE) return { start: j, end: skipString(buf, j) };
          return undefined;
        }
      }
      i = end;
      continue;
    }
    if (c === OPEN_OBJ || c === OPEN_ARR) {
      depth++;
      if (depth === 1) expectKey = c === OPEN_OBJ;
    } else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
      depth--;
    } else if (c === 0x2c /* , */ && depth === 1) {
      expectKey = true;
    }
    i++;
  }
  return undefined;
}

function skipString(buf: Buffer, start: number): number {
  let i = start + 1;
  while (i < buf.length) {
    const c = buf[i] as number;
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) return i + 1;
    else i++;
  }
  return buf.length;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}
