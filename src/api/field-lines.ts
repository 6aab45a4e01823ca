import { formatPath } from './issues.js';
import type { Source } from './types.js';

/**
 * The lines of a loaded resource's fields, so that what is said about a field after loading (a
 * compile warning: a reference not found, a filter ignored) points at the field's own line as a
 * load error does, not at the document's first line.
 *
 * Kept beside each resource's `source` (a WeakMap: it goes when the resource goes), as a small
 * table of field path → line built while the document's text is at hand; the parsed YAML itself
 * is not kept (tens of bytes per byte of text). Bounded: the kinds read in full get their fields
 * to a depth and count that covers what is warned about; other kinds (Pods, Services, of which a
 * file may hold thousands) only their `metadata`.
 */
const FIELD_LINES = new WeakMap<Source, ReadonlyMap<string, number>>();

/** Fields remembered per resource, and how deep. */
const MAX_ENTRIES = 512;
const MAX_DEPTH = 10;

/**
 * A copy of `source` for one resource, with the line of each of its fields remembered;
 * `lineOf(segments)` is the loader's locator (the field's line, or its nearest enclosing one's).
 */
export function withFieldLines(source: Source, value: Readonly<Record<string, unknown>>, full: boolean, lineOf: (segments: readonly PropertyKey[]) => number | undefined): Source {
  const own: Source = { ...source };
  if (source.line === undefined) return own; // not read from text: no lines to say
  const lines = new Map<string, number>();
  const stack: { value: unknown; segments: readonly PropertyKey[] }[] = [];
  for (const [key, v] of Object.entries(value)) if (full || key === 'metadata') stack.push({ value: v, segments: [key] });
  while (stack.length > 0 && lines.size < MAX_ENTRIES) {
    const { value: v, segments } = stack.pop() as { value: unknown; segments: readonly PropertyKey[] };
    const line = lineOf(segments);
    if (line !== undefined) lines.set(formatPath(segments), line);
    if (segments.length >= MAX_DEPTH || v === null || typeof v !== 'object') continue;
    if (Array.isArray(v)) v.forEach((item, i) => stack.push({ value: item, segments: [...segments, i] }));
    else for (const [key, item] of Object.entries(v)) stack.push({ value: item, segments: [...segments, key] });
  }
  FIELD_LINES.set(own, lines);
  return own;
}

/** `a.b[2]["x.y"]` → `a.b[2]`; `a` → `` (the path of the enclosing field). */
function parentPath(path: string): string {
  const m = /(\[(?:"(?:[^"\\]|\\.)*"|\d+)\]|\.[^.[]+)$/.exec(path);
  return m === null ? '' : path.slice(0, m.index);
}

/**
 * Where `path` (as problems write it: `spec.rules[0].filters[1].type`) is in the resource read
 * from `source`: the field's own line, or its nearest enclosing field's that is in the file; the
 * resource's own source when its lines are not known (not read from a file).
 */
export function fieldSource(source: Source, path: string): Source {
  const lines = FIELD_LINES.get(source);
  if (lines === undefined) return source;
  for (let p = path; p !== '' && p !== '-'; p = parentPath(p)) {
    const line = lines.get(p);
    if (line !== undefined) return { file: source.file, index: source.index, line };
  }
  return source;
}
